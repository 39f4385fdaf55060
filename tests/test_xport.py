"""Export and import in the core (csrc/hammer2_export.c, hammer2_import.c) and the
flush's parallel encoder (csrc/hammer2_encode.c): holes, hardlinks across directories,
owners, modes and times both ways, a planted symlink deep in DEST, ENOSPC, and the
same bytes on media whether blocks are encoded side by side or one at a time."""
import errno
import os
import random
import stat

import pytest

import pyh2
from pyh2 import _core
from pyh2.export import export
from pyh2.importer import Importer

BLOCK = 64 << 10


def make_host_tree(root):
    """Hardlinks across directories, owners, set-id and odd modes, a sparse file, a
    fifo and a symlink, with mtimes set on everything (directories last)."""
    (root / "a" / "deep").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "f").write_bytes(b"linked" * 1000)
    os.link(root / "a" / "f", root / "b" / "g")
    os.link(root / "a" / "f", root / "a" / "deep" / "h")
    with open(root / "b" / "sparse", "wb") as f:
        f.write(b"head" * 100)
        f.seek(5 * BLOCK)
        f.write(b"middle")
        f.truncate(12 * BLOCK + 7)
    os.mkfifo(root / "a" / "fifo", 0o640)
    os.symlink("../b/g", root / "a" / "link")
    if os.geteuid() == 0:
        os.chown(root / "a" / "f", 1234, 5678)
        os.lchown(root / "a" / "link", 4321, 8765)
        os.chown(root / "b", 99, 98)
    os.chmod(root / "a" / "f", 0o4751)      # after chown, which clears set-id bits
    os.chmod(root / "b", 0o2770)
    for n, p in enumerate(sorted(root.rglob("*"), key=lambda p: -len(p.parts))):
        os.utime(p, ns=(1_600_000_000_000_000_000 + n * 1000,) * 2, follow_symlinks=False)
    os.utime(root, ns=(1_500_000_000_000_000_000,) * 2)


def host_view(root):
    out = {}
    for p in [root, *sorted(root.rglob("*"))]:
        st = os.lstat(p)
        out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                         st.st_uid, st.st_gid, st.st_nlink,
                                         st.st_mtime_ns // 1000)
    return out


def test_tree_both_ways_keeps_links_owners_modes_times_and_holes(image, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    make_host_tree(src)
    with pyh2.open(image, writable=True) as vol:
        imp = Importer(vol.pfs("DATA")).run(str(src))
    assert imp.files == 4 and imp.bytes == 6000 + 12 * BLOCK + 7   # links counted once
    with pyh2.open(image) as vol:
        pfs = vol.pfs("DATA")
        f, g, h = (pfs.stat(p) for p in ("/a/f", "/b/g", "/a/deep/h"))
        assert f.inum == g.inum == h.inum and f.nlinks == 3
        assert f.mode == 0o4751
        if os.geteuid() == 0:
            assert (f.uid, f.gid) == (1234, 5678)
            assert (pfs.stat("/a/link").uid, pfs.stat("/a/link").gid) == (4321, 8765)
        # only the two blocks holding data are on media: the rest are holes
        keys = sorted(b["key"] for b in pfs.blocks("/b/sparse") if b["type"] == "data")
        assert keys == [0, 5 * BLOCK]
        n = export(pfs, str(tmp_path / "out"))
    out = tmp_path / "out"
    assert n == len(list(src.rglob("*")))
    assert host_view(out) == host_view(src)
    assert os.stat(out / "a" / "f").st_ino == os.stat(out / "b" / "g").st_ino
    assert (out / "b" / "sparse").read_bytes() == (src / "b" / "sparse").read_bytes()
    assert os.stat(out / "b" / "sparse").st_blocks * 512 <= 3 * BLOCK
    with open(out / "b" / "sparse", "rb") as f:
        assert os.lseek(f.fileno(), BLOCK, os.SEEK_DATA) >= 4 * BLOCK


def test_import_into_a_subdirectory_sets_its_mode_and_time(image, tmp_path):
    src = tmp_path / "src"
    (src / "x").mkdir(parents=True)
    (src / "x" / "y").write_bytes(b"y")
    os.chmod(src, 0o711)
    os.utime(src, ns=(1_234_000_000_000_000_000,) * 2)
    with pyh2.open(image, writable=True) as vol:
        pfs = vol.pfs("DATA")
        pfs.mkdir("/dest")
        Importer(pfs).run(str(src), "/dest")
        st = pfs.stat("/dest")
        assert (st.mode, st.mtime_us) == (0o711, 1_234_000_000_000_000)
        assert pfs.read("/dest/x/y") == b"y"


def test_export_refuses_a_planted_symlink_below_dest(image, tmp_path):
    """DEST already holds a/ (a real directory) with a symlink where the image has a
    directory or a file: nothing goes through it, and the error names the entry; a
    hardlink there to a file outside is replaced."""
    with pyh2.open(image, writable=True) as vol:
        pfs = vol.pfs("DATA")
        pfs.mkdir("/a")
        pfs.mkdir("/a/sub")
        pfs.create("/a/sub/file", b"payload")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "target").write_bytes(b"keep")
    for planted in ("a/sub", "a/sub/file"):
        dest = tmp_path / f"out-{planted.count('/')}"
        (dest / planted).parent.mkdir(parents=True)
        os.symlink(victim / "target" if planted.endswith("file") else victim, dest / planted)
        with pyh2.open(image) as vol, pytest.raises(pyh2.H2Error) as ei:
            export(vol.pfs("DATA"), str(dest))
        assert "outside" in str(ei.value) and "/" + planted in str(ei.value)
        assert sorted(os.listdir(victim)) == ["target"]
        assert (victim / "target").read_bytes() == b"keep"
    # a hardlink planted where the image has a file is replaced, not written through
    dest = tmp_path / "out-link"
    (dest / "a" / "sub").mkdir(parents=True)
    os.link(victim / "target", dest / "a" / "sub" / "file")
    with pyh2.open(image) as vol:
        export(vol.pfs("DATA"), str(dest))
    assert (dest / "a" / "sub" / "file").read_bytes() == b"payload"
    assert (victim / "target").read_bytes() == b"keep"


def test_import_out_of_space_is_refused_cleanly(make_image, tmp_path):
    img = make_image(size=64 << 20)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        (src / f"f{i:02d}").write_bytes(os.urandom(8 << 20))
    with pyh2.open(img, writable=True) as vol:
        pfs = vol.pfs("DATA")
        with pytest.raises(pyh2.H2Error) as ei:
            Importer(pfs).run(str(src))
        assert ei.value.errno == errno.ENOSPC and str(src) in str(ei.value)
        vol.flush()                         # what was admitted commits
        done = [n for n in pfs.listdir("/") if pfs.stat(f"/{n}").size == 8 << 20]
        assert 0 < len(done) < 12
        for n in done:
            assert pfs.read(f"/{n}") == (src / n).read_bytes()
    with pyh2.open(img) as vol:
        assert vol.fsck()["errors"] == []


def test_parallel_encoding_writes_the_same_blocks(make_image, tmp_path):
    """Blocks encoded side by side land where, and as, they do one at a time: every
    data block's place, size, methods, check code and media bytes are the same."""
    rnd = random.Random(5)
    src = tmp_path / "src"
    src.mkdir()
    words = b" ".join(rnd.choice([b"alpha", b"bravo", b"charlie", b"delta"])
                      for _ in range(400_000))
    parts = [words[:3 << 20], os.urandom(2 << 20), bytes(BLOCK * 3), words[:BLOCK + 5]]
    (src / "mixed").write_bytes(b"".join(parts))
    (src / "text").write_bytes(words[:1 << 20])
    results = []
    old = _core.encode_parallel(True)
    try:
        for parallel in (False, True):
            _core.encode_parallel(parallel)
            for comp in ("lz4", "zlib"):
                img = make_image(comp=comp, check="sha192" if comp == "zlib" else "xxhash64")
                with pyh2.open(img, writable=True) as vol:
                    Importer(vol.pfs("DATA")).run(str(src))
                with pyh2.open(img) as vol, open(img, "rb") as f:
                    pfs = vol.pfs("DATA")
                    blocks = []
                    for name in ("/mixed", "/text"):
                        for b in pfs.blocks(name):
                            if b["type"] == "data":
                                f.seek(b["data_off"])
                                blocks.append((b["key"], b["data_off"], b["bytes"],
                                               b["comp"], f.read(b["bytes"])))
                    assert pfs.read("/mixed") == (src / "mixed").read_bytes()
                    results.append(blocks)
    finally:
        _core.encode_parallel(old)
    serial, parallel = results[:2], results[2:]
    assert len(serial[0]) > 64 and any(b[3] == 2 for b in serial[0])  # LZ4 blocks, windows
    assert serial == parallel
