"""`pyh2 import` throughput beside the limit measured in the same run:
`cp -a` of the same source to a tmpfs directory (/dev/shm).

Two workloads, as the bigdir and bigfile reference images hold them:
13,000 small files (12,000 in one directory, 400 directories of 3 --
1,000 small files more) and one 40 MiB text file.  Medians of the runs,
import and cp taking turns (the machine may be shared).  Targets: the
tree at 0.6 of cp -a or more, the file at 0.3 or more.

    python3 bench/bench_import.py [--runs N]
"""
import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import pyh2  # noqa: E402
from pyh2.importer import Importer  # noqa: E402

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima "
         "mike november oscar papa quebec romeo sierra tango").split()


def make_tree(root):
    flat = os.path.join(root, "flat")
    os.makedirs(flat)
    for i in range(12000):
        with open(os.path.join(flat, f"file-{i:05d}"), "wb") as f:
            f.write(b"x" * (i % 200))
    for d in range(400):
        sub = os.path.join(root, "nest", f"d{d:03d}")
        os.makedirs(sub)
        for j in range(3):
            with open(os.path.join(sub, f"f{j}"), "wb") as f:
                f.write(os.urandom(100 + j * 700))
    return 12000 + 400 * 3 + 401 + 1     # files + directories


def make_bigfile(root):
    os.makedirs(root)
    rnd = random.Random(1)
    text = " ".join(rnd.choice(WORDS) for _ in range(8 << 20)).encode()
    with open(os.path.join(root, "text40m.txt"), "wb") as f:
        f.write((text * 2)[:40 << 20])
    return 40 << 20


def time_import(src, work, size):
    img = os.path.join(work, "bench.h2")
    pyh2.newfs(img, size)
    t = time.perf_counter()
    with pyh2.open(img, writable=True) as vol:
        Importer(vol.pfs("DATA")).run(src)
    dt = time.perf_counter() - t
    os.unlink(img)
    return dt


def time_cp(src, shm):
    dst = tempfile.mkdtemp(prefix="pyh2-bench-", dir=shm)
    t = time.perf_counter()
    subprocess.run(["cp", "-a", src + "/.", dst], check=True)
    dt = time.perf_counter() - t
    shutil.rmtree(dst)
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    with tempfile.TemporaryDirectory(prefix="pyh2-bench-") as work:
        tree, big = os.path.join(work, "tree"), os.path.join(work, "big")
        entries = make_tree(tree)
        nbytes = make_bigfile(big)
        for name, src, unit, amount, target in (
                ("13,000-file tree", tree, "entries/s", entries, 0.6),
                ("40 MiB file", big, "MB/s", nbytes / 1e6, 0.3)):
            runs = [(time_import(src, work, 2 << 30), time_cp(src, shm))
                    for _ in range(args.runs)]
            imp = statistics.median(r[0] for r in runs)
            cp = statistics.median(r[1] for r in runs)
            print(f"{name}: pyh2 import {amount / imp:10.1f} {unit}   "
                  f"cp -a to tmpfs {amount / cp:10.1f} {unit}   "
                  f"ratio {cp / imp:.2f} of the tmpfs limit (target >= {target}, "
                  f"median of {args.runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
