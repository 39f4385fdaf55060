"""Cluster costs, each against its peer measured in the same run:

  - write and read throughput of a 3-node cluster against a single node
    (the same files, written then flushed; read back after a reopen); issue 15
    asks for a write ratio of at least 0.8.  Its ceiling on this machine is
    measured beside it: the same bytes written raw (pwrite, then fdatasync)
    as 3 files side by side against 1, since all nodes share one disk and its
    cores; the cluster's own cost is the ratio of the two ratios;
  - resync of a node that missed 10% of the data against a full copy of
    it (the same node resynced from an empty, freshly formatted image).

    python3 bench/bench_cluster.py [--mib 96] [--runs 3]

The images go to TMPDIR (TMPDIR=/dev/shm puts every node in memory).

(bench_heal.py: resync against nbdcopy, writes during a resync, reads with a slow node.)
"""
import argparse
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import pyh2  # noqa: E402
from pyh2.cluster import newfs_cluster, open_cluster, resync_cluster  # noqa: E402

FILE = 1 << 20
WRITE_TARGET = 0.8


def payload(i):
    """1 MiB that compresses about 2:1, different per file."""
    half = os.urandom(FILE // 2)
    return half + bytes(b ^ (i & 0xFF) for b in half[: FILE // 2])


def write_files(vol, names, data):
    pfs = vol.pfs("DATA")
    for name, d in zip(names, data):
        pfs.create(name, d)
    vol.flush()


def read_files(vol, names):
    pfs = vol.pfs("DATA")
    return sum(len(pfs.read(n)) for n in names)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def throughput(tmp, mib, n_nodes, data):
    names = [f"/f{i:04d}" for i in range(mib)]
    paths = [os.path.join(tmp, f"tp{n_nodes}-{i}.h2") for i in range(n_nodes)]
    newfs_cluster(paths, (mib * 3 + 64) << 20)
    opener = (lambda w: open_cluster(paths, writable=w)) if n_nodes > 1 else \
        (lambda w: pyh2.open(paths[0], writable=w))
    with opener(True) as vol:
        wt, _ = timed(lambda: write_files(vol, names, data))
    with opener(False) as vol:
        rt, n = timed(lambda: read_files(vol, names))
    assert n == mib * FILE
    for p in paths:
        os.unlink(p)
    return mib / wt, mib / rt


def raw_copies(tmp, n, data):
    """MiB/s of writing data as n files side by side (a thread each), synced."""
    def one(path):
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            for i, d in enumerate(data):
                os.pwrite(fd, d, i * FILE)
            os.fdatasync(fd)
        finally:
            os.close(fd)
    paths = [os.path.join(tmp, f"raw{n}-{i}") for i in range(n)]
    threads = [threading.Thread(target=one, args=(p,)) for p in paths]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    took = time.perf_counter() - t
    for p in paths:
        os.unlink(p)
    return len(data) / took


def resync_times(tmp, mib, data):
    names = [f"/f{i:04d}" for i in range(mib)]
    paths = [os.path.join(tmp, f"rs-{i}.h2") for i in range(3)]
    newfs_cluster(paths, (mib * 3 + 64) << 20)
    cut = mib - max(1, mib // 10)
    with open_cluster(paths, writable=True, sync=False) as vol:     # node 2 stays behind
        write_files(vol, names[:cut], data[:cut])
        vol.devices[2].inject_fault("write")        # node 2 misses the last 10%
        write_files(vol, names[cut:], data[cut:])
    inc, stats = timed(lambda: resync_cluster(paths))
    copied = stats[paths[2]]["bytes"]
    # the same node from nothing: a fresh image at an old transaction
    pyh2.newfs(paths[2], (mib * 3 + 64) << 20)
    full, stats = timed(lambda: resync_cluster(paths))
    with open_cluster(paths) as vol:
        assert vol.compare() == []
    for p in paths:
        os.unlink(p)
    return inc, full, copied, stats[paths[2]]["bytes"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=96, help="data written, in MiB")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    data = [payload(i) for i in range(args.mib)]
    with tempfile.TemporaryDirectory(prefix="pyh2-bench-cluster-") as tmp:
        best = {}
        for _ in range(args.runs):
            for n in (1, 3):
                w, r = throughput(tmp, args.mib, n, data)
                bw, br = best.get(n, (0, 0))
                best[n] = (max(bw, w), max(br, r))
                best[f"raw{n}"] = max(best.get(f"raw{n}", 0), raw_copies(tmp, n, data))
            inc, full, inc_bytes, full_bytes = resync_times(tmp, args.mib, data)
            best["resync"] = min(best.get("resync", (1e9, 0, 0, 0, 0)),
                                 (inc, full, inc_bytes, full_bytes, 0))
    (w1, r1), (w3, r3) = best[1], best[3]
    inc, full, inc_bytes, full_bytes, _ = best["resync"]
    raw = best["raw3"] / best["raw1"]
    print(f"write: 3 nodes {w3:7.1f} MiB/s, 1 node {w1:7.1f} MiB/s, ratio {w3 / w1:.2f} "
          f"(target {WRITE_TARGET})")
    print(f"       the same bytes raw: 3 copies {best['raw3']:7.1f} MiB/s, 1 copy "
          f"{best['raw1']:7.1f} MiB/s, ratio {raw:.2f} (this machine's ceiling); "
          f"cluster ratio / ceiling {w3 / w1 / raw:.2f}")
    print(f"read:  3 nodes {r3:7.1f} MiB/s, 1 node {r1:7.1f} MiB/s, ratio {r3 / r1:.2f}")
    print(f"resync of a node that missed 10%: {inc:.3f}s ({inc_bytes >> 20} MiB copied); "
          f"full copy {full:.3f}s ({full_bytes >> 20} MiB); ratio {inc / full:.2f}")
    print(f"resync rate: {args.mib * 0.1 / inc:.1f} MiB/s of missed data, "
          f"{args.mib / full:.1f} MiB/s full")


if __name__ == "__main__":
    main()
