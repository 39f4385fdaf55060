"""`pyh2 export` speed beside the limit measured in the same run: `cp -a`
of the exported tree to another tmpfs directory (/dev/shm).

The workload is bench_import's 13,000-file tree (12,000 small files in one
directory, 400 directories of 3) plus 200 symlinks: ~13,800 entries.
Medians of the runs, export and cp taking turns (the machine may be
shared).  Target: at most 2.5 times the time of cp -a.

    python3 bench/bench_export.py [--runs N]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import pyh2  # noqa: E402
from pyh2.export import export  # noqa: E402
from pyh2.importer import Importer  # noqa: E402
from bench_import import make_tree  # noqa: E402


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    with tempfile.TemporaryDirectory(prefix="pyh2-bench-") as work, \
            tempfile.TemporaryDirectory(prefix="pyh2-bench-", dir=shm) as out:
        tree = os.path.join(work, "tree")
        entries = make_tree(tree)
        for i in range(200):
            os.symlink(f"../flat/file-{i:05d}", os.path.join(tree, "nest", f"l{i:03d}"))
        entries += 200
        img = os.path.join(work, "bench.h2")
        pyh2.newfs(img, 1 << 30)
        with pyh2.open(img, writable=True) as vol:
            Importer(vol.pfs("DATA")).run(tree)
        ours, peer = [], []
        for run in range(args.runs):
            dst, cp = os.path.join(out, f"x{run}"), os.path.join(out, f"c{run}")
            with pyh2.open(img) as vol:
                pfs = vol.pfs("DATA")
                ours.append(timed(lambda: export(pfs, dst)))
            peer.append(timed(lambda: subprocess.run(["cp", "-a", dst, cp], check=True)))
            shutil.rmtree(dst)
            shutil.rmtree(cp)
        exp, cpa = statistics.median(ours), statistics.median(peer)
        print(f"{entries}-entry tree: pyh2 export {entries / exp:10.1f} entries/s   "
              f"cp -a to tmpfs {entries / cpa:10.1f} entries/s   "
              f"ratio {exp / cpa:.2f}x the time of cp -a (target <= 2.5, "
              f"median of {args.runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
