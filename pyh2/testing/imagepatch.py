"""Edit an image's bytes, then make its check codes agree with them again.

`locate` finds bytes in the live tree's blocks, `patch` rewrites bytes at a
media offset; `fix_checks` recomputes every
blockref check code bottom-up (each block's children before the block)
over the volume and freemap trees of every header copy, then the header
CRCs.  Damage anywhere then passes check verification and reaches the
code that interprets the bytes, which is what hostile-input tests need.
Blockrefs are followed as the media says, bounded by the image's size and
the valid size radixes, each block once (a loop is cut where it closes).
"""
from __future__ import annotations

import os
from pathlib import Path

import pyh2
from pyh2 import _core

BREF = 128
ZONE_BYTES = 2 << 30                # a header copy starts each of the first 4 zones
NUM_VOLHDRS = 4
VOLUME_BYTES = 65536
VOLUME_MAGIC = 0x48414D3205172011.to_bytes(8, "little")
SROOT_BLOCKSET, FREEMAP_BLOCKSET = 0x200, 0x800
ICRC_SECT0, ICRC_SECT1, ICRC_VOLHEADER = 0x1FC, 0x1F8, 0xFFFC
INODE_BYTES, INODE_BLOCKSET, OP_FLAGS, DIRECTDATA = 1024, 0x200, 0x51, 0x01
TYPE_INODE, TYPE_INDIRECT, TYPE_FREEMAP_NODE = 1, 2, 5
RADIX_MIN, RADIX_MAX = 10, 16
DEPTH_MAX = 64


def patch(path: str | os.PathLike, media_off: int, data: bytes) -> None:
    """Write data at byte offset media_off of the image."""
    with open(path, "r+b") as f:
        f.seek(media_off)
        f.write(data)


def locate(path: str | os.PathLike, needle: bytes, btype: int | None = None,
           start: int = 0) -> list[int]:
    """Media offsets of needle in the blocks of the live volume tree (of
    type btype if given), from byte `start` of each block on."""
    found = []

    def visit(depth, bref, data, error):
        if data is None or bref["bytes"] == 0 or btype not in (None, bref["type_id"]):
            return
        at = data.find(needle, start)
        while at >= 0:
            found.append(bref["data_off"] + at)
            at = data.find(needle, at + 1)

    with pyh2.open(path) as vol:
        vol.device.walk_zone(vol.best_zone, False, visit)
    return sorted(set(found))


def _u64(b, off: int) -> int:
    return int.from_bytes(b[off:off + 8], "little")


def _children(btype: int, blk: bytes) -> tuple[int, int]:
    """(offset, count) of the blockrefs a block holds, as the walk reads them."""
    if btype == TYPE_INODE:
        if len(blk) != INODE_BYTES or blk[OP_FLAGS] & DIRECTDATA:
            return 0, 0
        return INODE_BLOCKSET, 4
    if btype in (TYPE_INDIRECT, TYPE_FREEMAP_NODE):
        return 0, len(blk) // BREF
    return 0, 0


class _Fixer:
    def __init__(self, fd: int):
        self.fd = fd
        self.size = os.fstat(fd).st_size
        self.done: set[tuple[int, int]] = set()
        self.active: set[tuple[int, int]] = set()
        self.rewritten = 0

    def blockset(self, buf: bytearray, base: int, count: int, depth: int) -> None:
        for i in range(count):
            at = base + i * BREF
            old = bytes(buf[at:at + BREF])
            new = self.bref(old, depth)
            if new != old:
                buf[at:at + BREF] = new
                self.rewritten += 1

    def bref(self, raw: bytes, depth: int) -> bytes:
        data_off = _u64(raw, 32)
        radix = data_off & 0x3F
        if raw[0] == 0 or not RADIX_MIN <= radix <= RADIX_MAX:
            return raw
        off, nbytes = data_off & ~0x3F, 1 << radix
        if off + nbytes > self.size:
            return raw
        key = (off, nbytes)
        if key not in self.done and key not in self.active and depth < DEPTH_MAX:
            self.active.add(key)
            blk = bytearray(os.pread(self.fd, nbytes, off))
            base, count = _children(raw[0], blk)
            if count:
                self.blockset(blk, base, count, depth + 1)
                os.pwrite(self.fd, blk, off)
            self.active.discard(key)
            self.done.add(key)
        return _core.check_set(raw, os.pread(self.fd, nbytes, off))


def _set_crc(hdr: bytearray, at: int, lo: int, hi: int) -> None:
    hdr[at:at + 4] = _core.icrc32(bytes(hdr[lo:hi])).to_bytes(4, "little")


def fix_checks(path: str | os.PathLike) -> int:
    """Recompute every check code of the image (header copies with the
    volume magic); returns how many blockrefs changed."""
    fd = os.open(Path(path), os.O_RDWR)
    try:
        fixer = _Fixer(fd)
        for zone in range(NUM_VOLHDRS):
            at = zone * ZONE_BYTES
            if at + VOLUME_BYTES > fixer.size:
                break
            hdr = bytearray(os.pread(fd, VOLUME_BYTES, at))
            if hdr[:8] != VOLUME_MAGIC:
                continue
            fixer.blockset(hdr, SROOT_BLOCKSET, 4, 0)
            fixer.blockset(hdr, FREEMAP_BLOCKSET, 4, 0)
            # sector 1 first: sector 0's CRC covers the slot holding it
            _set_crc(hdr, ICRC_SECT1, 512, 1024)
            _set_crc(hdr, ICRC_SECT0, 0, 508)
            _set_crc(hdr, ICRC_VOLHEADER, 0, VOLUME_BYTES - 4)
            os.pwrite(fd, hdr, at)
        return fixer.rewritten
    finally:
        os.close(fd)
