"""Sequential read of the largest file of the `bigfile` reference image
through the C core, beside the limit measured in the same run: the same
media blocks, already in memory, verified and decompressed in-process with
the same libraries (decode_block: xxhash64 + liblz4/zlib).

    python3 bench/bench_read.py [--runs N]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import pyh2  # noqa: E402
from pyh2 import refimages  # noqa: E402
from pyh2 import _core  # noqa: E402

TARGET = 0.7
CHUNK = 4 << 20


def largest_file(pfs):
    """The file with the most stored data (not the largest sparse one)."""
    best = None
    for dirpath, _, files in pfs.walk():
        for name in files:
            path = os.path.join(dirpath, name)
            stored = sum(b["bytes"] for b in pfs.blocks(path) if b["type"] == "data")
            if best is None or stored > best[1]:
                best = (path, stored, pfs.stat(path).size)
    return best


def core_read(img, path, size):
    with pyh2.open(img) as vol:     # fresh volume: cold DIO cache
        pfs = vol.pfs("DATA")
        buf = bytearray(CHUNK)
        t = time.perf_counter()
        for off in range(0, size, CHUNK):
            pfs.readinto(path, memoryview(buf)[:min(CHUNK, size - off)], off)
        return time.perf_counter() - t


def media_blocks(img, path):
    """(raw blockref, raw media) of every data block of the file."""
    out = []
    with pyh2.open(img) as vol:
        raw = vol.pfs("DATA")._core.inode(vol.pfs("DATA")._namei(path))[1]["raw"]

        def grab(depth, bref, data, error):
            if bref["type"] == "data":
                out.append((bref["raw"], data, 1 << bref["keybits"]))

        vol.device.walk_bref(raw, grab)
    return out


def limit_decode(blocks):
    t = time.perf_counter()
    for raw, data, lsize in blocks:
        _core.decode_block(raw, data, lsize)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    img = refimages.decompressed("bigfile")
    with pyh2.open(img) as vol:
        path, stored, size = largest_file(vol.pfs("DATA"))
    blocks = media_blocks(img, path)
    logical = sum(lsize for _, _, lsize in blocks)
    core_read(img, path, size)      # warm the page cache once
    core, limit = [], []
    for _ in range(args.runs):      # interleaved, so load shifts hit both alike
        core.append(core_read(img, path, size))
        limit.append(limit_decode(blocks))
    core, limit = min(core), min(limit)
    core_mbs = size / core / 1e6
    limit_mbs = logical / limit / 1e6
    ratio = core_mbs / limit_mbs
    print(f"file: bigfile:{path}, {size} bytes, {len(blocks)} blocks, {stored} bytes on media")
    print(f"core read (pfs.readinto, {CHUNK >> 20} MiB):  {core_mbs:8.1f} MB/s")
    print(f"limit (verify + decompress in-process):          {limit_mbs:8.1f} MB/s")
    print(f"ratio core/limit: {ratio:.2f} (target >= {TARGET}) "
          f"{'OK' if ratio >= TARGET else 'BELOW TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
