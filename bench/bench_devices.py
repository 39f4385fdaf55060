"""Device backends and the asynchronous DIO layer, beside peers measured in the same run.

1. Sequential read of a large file through pyh2's native NBD client, against
   `nbdcopy` (libnbd) copying the same nbdkit export to null: (target ratio 0.8).
2. 64 KiB random-read IOPS through the DIO layer (asynchronous loads on the worker
   pool) at queue depths 1, 8 and 32 on an image file, against a C-speed peer: the
   same reads as plain preads from Python threads, at the same depth.

    python3 bench/bench_devices.py [--runs N] [--size-mib N]
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import pyh2  # noqa: E402
from pyh2.testing.devices import NbdServer  # noqa: E402
from pyh2 import _core  # noqa: E402

MiB = 1 << 20
CHUNK = 4 * MiB
TARGET = 0.8
IOS = 8192


def build_image(path, file_mib):
    """A volume just larger than one incompressible file of file_mib MiB."""
    pyh2.newfs(path, (file_mib + 96) * MiB, comp="none")
    block = os.urandom(CHUNK)
    with pyh2.open(path, writable=True) as vol:
        pfs = vol.pfs("DATA")
        pfs.create("/big", b"")
        for off in range(0, file_mib * MiB, CHUNK):
            pfs.write("/big", block[off % 7:] + block[:off % 7], off)
    return file_mib * MiB


def pyh2_read(uri, size):
    with pyh2.open(uri) as vol:           # fresh connection and DIO cache
        pfs = vol.pfs("DATA")
        buf = memoryview(bytearray(CHUNK))
        t = time.perf_counter()
        for off in range(0, size, CHUNK):
            pfs.readinto("/big", buf, off)
        return size / (time.perf_counter() - t)


def nbdcopy_read(uri, size):
    t = time.perf_counter()
    subprocess.run(["nbdcopy", "--no-extents", uri, "null:"], check=True)
    return size / (time.perf_counter() - t)


def seq_read(runs, file_mib, tmp):
    img = os.path.join(tmp, "seq.h2")
    size = build_image(img, file_mib)
    export = os.path.getsize(img)
    mine = peer = 0.0
    with NbdServer(img, read_only=True) as srv:
        for _ in range(runs):       # interleaved: load from elsewhere hits both alike
            mine = max(mine, pyh2_read(srv.uri, size))
            peer = max(peer, nbdcopy_read(srv.uri, export))
    ratio = mine / peer
    print(f"sequential read {file_mib} MiB over NBD (unix socket, nbdkit file):  "
          f"pyh2 {mine / MiB:8.1f} MiB/s   nbdcopy {peer / MiB:8.1f} MiB/s   "
          f"ratio {ratio:.2f} (target {TARGET})")
    return ratio


def preads(path, offs, qd):
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = [offs[i::qd] for i in range(qd)]

        def run(part):
            for off in part:
                os.pread(fd, 1 << 16, off)
        t = time.perf_counter()
        with ThreadPoolExecutor(qd) as pool:
            list(pool.map(run, chunks))
        return len(offs) / (time.perf_counter() - t)
    finally:
        os.close(fd)


def iops(runs, tmp):
    img = os.path.join(tmp, "rand.h2")
    size = build_image(img, 256)
    rng = random.Random(1)
    offs = [rng.randrange(0, size >> 16) << 16 for _ in range(IOS)]
    with pyh2.open(img) as vol:
        for qd in (1, 8, 32):
            best = peer = 0.0
            for _ in range(runs):
                _core.dio_purge(vol.device)
                t = time.perf_counter()
                _core.dio_readmany(vol.device, offs, qd)
                best = max(best, len(offs) / (time.perf_counter() - t))
                peer = max(peer, preads(img, offs, qd))
            print(f"64 KiB random reads, queue depth {qd:2d}:  DIO layer {best:9.0f} IOPS   "
                  f"Python preads {peer:9.0f} IOPS   ratio {best / peer:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size-mib", type=int, default=512)
    args = ap.parse_args()
    if not shutil.which("nbdcopy") or not shutil.which("nbdkit"):
        sys.exit("nbdkit and nbdcopy are needed (run scripts/setup.sh)")
    tmp = tempfile.mkdtemp(prefix="pyh2-bench-", dir="/var/tmp")
    try:
        seq_read(args.runs, args.size_mib, tmp)
        iops(args.runs, tmp)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
