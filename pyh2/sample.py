"""A small host tree covering what HAMMER2 stores in different ways, made on the spot so
that `pyh2 demo` and tests need no data files."""
from __future__ import annotations

import os
import random
from pathlib import Path

# around the 512-byte embedded-data limit, the 1 KiB minimum block and the 64 KiB block
SIZES = (0, 1, 511, 512, 513, 4095, 65535, 65536, 65537, 300_000)


def make_tree(root, seed: int = 0) -> Path:
    """Under root (created): files of SIZES with random data, compressible text, a file
    with a hole, a 7-deep directory, a 255-byte name, a UTF-8 name, a short and a
    1000-byte symlink target, a dangling symlink, a hardlink, a fifo, an empty directory.
    The same seed gives the same tree."""
    rnd = random.Random(seed)
    root = Path(root)
    (root / "a" / "b").mkdir(parents=True)
    for i, size in enumerate(SIZES):
        (root / "a" / f"f{i}").write_bytes(rnd.randbytes(size))
    (root / "a" / "b" / "text").write_text("hello hammer2\n" * 5000)
    (root / "a" / "b" / "holes").write_bytes(bytes(200_000) + b"tail")
    deep = root.joinpath(*"1234567")
    deep.mkdir(parents=True)
    (deep / "leaf").write_bytes(rnd.randbytes(100))
    (root / ("n" * 255)).write_text("long name\n")
    (root / "ünïcødé").write_text("utf-8 name\n")
    os.symlink("../f1", root / "a" / "b" / "link")
    os.symlink("x" * 1000, root / "a" / "long-link")
    os.symlink("nowhere", root / "dangling")
    os.link(root / "a" / "f2", root / "a" / "hard")
    os.mkfifo(root / "fifo")
    (root / "empty").mkdir()
    return root
