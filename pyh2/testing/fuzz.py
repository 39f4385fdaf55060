"""Hostile images: metadata damaged in ways no check code catches.

An image formatted without check codes (or compression) accepts any
bytes; on one with check codes and compression, the damage is followed by
`imagepatch.fix_checks`, so it passes verification either way.  Structural
damage — blockrefs pointing anywhere, with any type, radix, key range or
compression, inodes claiming absurd sizes or names, directory entries
named `../../../ESCAPED`, `a/b`, `.`, `..` or holding a NUL — then reaches
the chain, inode and file code directly.

The invariant (`check`): if fsck passes, a full read (export of every PFS
to a temporary directory: every directory listed, every file stat'ed and
read, every symlink read) succeeds and writes nothing outside the
destination.  Whatever fsck says, `exercise` reads the whole volume the way
a user would and `modify` writes into it and flushes: they may raise
H2Error for what they find, but the process must never crash or hang.

Run as `python -m pyh2.testing.fuzz IMAGE SEED COUNT PROGRESS_FILE [--checked]`:
damages COUNT copies of IMAGE (seeds SEED...), checking and exercising
each, and writes the seed under test to PROGRESS_FILE first, so a crash
names its seed; `--checked` repairs check codes after each damage.  A
broken invariant exits 2 naming the seed.  `python -m pyh2.testing.fuzz --long
[RUNS]` builds both kinds of image and runs RUNS (default 2000) of each.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import pyh2
from pyh2.export import export

from . import imagepatch

BREF = 128
INODE_BLOCKSET = 0x200          # the inode's 512-byte union: 4 blockrefs or data
INODE_BYTES = 1024
TYPE_INODE, TYPE_INDIRECT, TYPE_DIRENT = 1, 2, 4
DIRENT_NAMLEN, DIRENT_NAME = 56, 64     # in a dirent blockref: embed, check area
HOSTILE_NAMES = (b"../../../ESCAPED", b"a/b", b".", b"..", b"nul\0name", b"")


class InvariantBroken(Exception):
    """fsck passed, yet a full read failed or wrote outside its destination."""


def build_image(path: Path, seed: int = 1, checked: bool = False) -> None:
    """A small volume (without check codes and compression unless checked)
    whose tree has inodes, indirect blocks, dirent blocks (long names),
    embedded and multi-block files."""
    rnd = random.Random(seed)
    pyh2.newfs(path, 64 << 20, comp="lz4" if checked else "none",
               check="xxhash64" if checked else "none")
    with pyh2.open(path, writable=True) as vol:
        pfs = vol.pfs("DATA")
        for d in range(3):
            pfs.mkdir(f"/d{d}")
            for f in range(40):
                pfs.create(f"/d{d}/f{f}", rnd.randbytes(rnd.choice((100, 3000, 70_000))))
            pfs.create(f"/d{d}/" + "n" * 200, b"long name")
            pfs.symlink("../d0/f0", f"/d{d}/link")
        pfs.create("/big", rnd.randbytes(1 << 20))


def metadata_blocks(path: Path) -> list[tuple[int, int, int]]:
    """(offset, bytes, type) of every inode and indirect block of the live tree."""
    found = []

    def visit(depth, bref, data, error):
        if bref["type_id"] in (TYPE_INODE, TYPE_INDIRECT) and bref["bytes"]:
            found.append((bref["data_off"], bref["bytes"], bref["type_id"]))

    with pyh2.open(path) as vol:
        vol.device.walk_zone(vol.best_zone, False, visit)
    return found


def _hostile_bref(rnd: random.Random, old: bytes) -> bytes:
    b = bytearray(old)
    field = rnd.randrange(7)
    if field == 0:                                  # type
        b[0] = rnd.choice((0, 1, 2, 3, 4, 5, 6, 7, rnd.randrange(256)))
    elif field == 1:                                # methods: any comp/check
        b[1] = rnd.randrange(256)
    elif field == 2:                                # keybits
        b[3] = rnd.choice((0, 1, 10, 63, 64, 200))
    elif field == 3:                                # key
        b[8:16] = rnd.randbytes(8)
    elif field == 4:                                # data_off with any radix
        b[32:40] = (rnd.getrandbits(64) & ~0x3F | rnd.randrange(64)).to_bytes(8, "little")
    elif field == 5:                                # data_off: a real block, wrong kind
        b[32:40] = ((rnd.randrange(64 << 20) & ~0x3FF) | rnd.choice((10, 14, 16, 20))
                    ).to_bytes(8, "little")
    else:
        b[:] = rnd.randbytes(BREF)
    return bytes(b)


def _hostile_inode(rnd: random.Random, ino: bytearray) -> None:
    field = rnd.randrange(5)
    if field == 0:          # size: beyond any offset, shrunk, or grown by what reads fast
        size = int.from_bytes(ino[0x60:0x68], "little")
        ino[0x60:0x68] = rnd.choice((2**63, 2**64 - 1, rnd.randrange(size + 1),
                                     size + rnd.randrange(16 << 20))).to_bytes(8, "little")
    elif field == 1:                                # type, op_flags (DIRECTDATA)
        ino[0x50] = rnd.randrange(256)
        ino[0x51] = rnd.randrange(256)
    elif field == 2:                                # name_len
        ino[0x80:0x82] = rnd.randrange(65536).to_bytes(2, "little")
    elif field == 3:                                # inum / iparent
        ino[0x58:0x60] = rnd.randbytes(8)
        ino[0x70:0x78] = rnd.randbytes(8)
    else:                                           # the union
        ino[INODE_BLOCKSET:INODE_BYTES] = rnd.randbytes(INODE_BYTES - INODE_BLOCKSET)


def _hostile_name(rnd: random.Random, blk: bytearray, slots: list[int]) -> str:
    """Rename a short-named dirent (the name sits in its blockref)."""
    slot = rnd.choice(slots)
    name = rnd.choice(HOSTILE_NAMES)
    blk[slot + DIRENT_NAMLEN:slot + DIRENT_NAMLEN + 2] = len(name).to_bytes(2, "little")
    blk[slot + DIRENT_NAME:slot + DIRENT_NAME + len(name)] = name
    return f"dirent at +0x{slot:x} named {name!r}"


def _dirent_slots(blk: bytearray, btype: int) -> list[int]:
    base = INODE_BLOCKSET if btype == TYPE_INODE else 0
    end = INODE_BYTES if btype == TYPE_INODE else len(blk)
    return [at for at in range(base, end, BREF)
            if blk[at] == TYPE_DIRENT and blk[at + DIRENT_NAMLEN] <= BREF - DIRENT_NAME]


def damage(path: Path, blocks, rnd: random.Random, count: int = 3) -> list[str]:
    """Apply `count` hostile edits in place; returns what was done."""
    done = []
    with open(path, "r+b") as f:
        for _ in range(count):
            off, nbytes, btype = rnd.choice(blocks)
            f.seek(off)
            blk = bytearray(f.read(nbytes))
            slots = _dirent_slots(blk, btype)
            if slots and rnd.random() < 0.3:
                what = _hostile_name(rnd, blk, slots)
            elif btype == TYPE_INODE and rnd.random() < 0.4:
                _hostile_inode(rnd, blk)
                what = "inode fields"
            else:
                base = INODE_BLOCKSET if btype == TYPE_INODE else 0
                nslots = (len(blk) - base) // BREF if btype == TYPE_INDIRECT else 4
                slot = base + rnd.randrange(nslots) * BREF
                blk[slot:slot + BREF] = _hostile_bref(rnd, bytes(blk[slot:slot + BREF]))
                what = f"blockref at +0x{slot:x}"
            f.seek(off)
            f.write(blk)
            done.append(f"{what} of block 0x{off:x}")
    return done


def exercise(path: Path) -> dict:
    """Read everything reachable; count what was refused. Never raises H2Error."""
    counts = {"files": 0, "errors": 0}

    def guarded(fn, *args):
        try:
            return fn(*args)
        except pyh2.H2Error:
            counts["errors"] += 1
            return None

    vol = guarded(pyh2.open, path)
    if vol is None:
        return counts
    with vol:
        for info in guarded(vol.pfs_list) or []:
            pfs = guarded(vol.pfs, info.label)
            if pfs is None:
                continue
            stack, seen = ["/"], 0
            while stack and seen < 5000:
                d = stack.pop()
                for ent in guarded(pfs.scandir, d) or []:
                    seen += 1
                    p = d.rstrip("/") + "/" + ent.name
                    st = guarded(pfs.stat, p)
                    if st is None:
                        continue
                    if ent.type == "dir":
                        stack.append(p)
                    elif ent.type == "symlink":
                        guarded(pfs.readlink, p)
                    elif guarded(pfs.read, p, 0, 4 << 20) is not None:
                        counts["files"] += 1
        guarded(vol.fsck)
    return counts


def _outside(root: Path, dest: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*")
                  if p != dest and dest not in p.parents and p not in dest.parents)


def check(path: Path) -> bool:
    """The invariant; returns whether fsck passed.  Raises InvariantBroken."""
    try:
        with pyh2.open(path) as vol:
            if vol.fsck()["errors"]:
                return False
    except pyh2.H2Error:
        return False
    with tempfile.TemporaryDirectory(prefix="h2fuzz-") as tmp:
        root = Path(tmp)
        dest = root / "a" / "b" / "c" / "dest"
        try:
            with pyh2.open(path) as vol:
                for i, info in enumerate(vol.pfs_list()):
                    pfs = vol.pfs(info.label)
                    try:
                        export(pfs, str(dest / f"pfs{i}"))
                    finally:
                        pfs.close()
        except OSError as e:            # H2Error, or the host refusing what was read
            raise InvariantBroken(f"fsck passed, export failed: {e}") from None
        stray = _outside(root, dest)
        if stray:
            raise InvariantBroken(f"fsck passed, export wrote outside its destination: "
                                  f"{stray[:5]}")
    return True


def modify(path: Path) -> int:
    """Write into a damaged volume and flush; returns the errors refused."""
    errors = 0
    vol = None
    try:
        vol = pyh2.open(path, writable=True)
        pfs = vol.pfs("DATA")
        for op in (lambda: pfs.create("/d0/new", b"n" * 5000),
                   lambda: pfs.write("/d1/f1", b"w" * 70_000, 30_000),
                   lambda: pfs.truncate("/big", 100_000),
                   lambda: pfs.rename("/d2/f2", "/d0/moved"),
                   lambda: pfs.unlink("/d1/f3"),
                   lambda: pfs.mkdir("/d2/sub"),
                   vol.flush):
            try:
                op()
            except pyh2.H2Error:
                errors += 1
    except pyh2.H2Error:
        errors += 1
    finally:
        if vol is not None:
            vol.close()
    return errors


def main(argv: list[str]) -> int:
    if argv[:1] == ["--long"]:
        return _long(int(argv[1]) if len(argv) > 1 else 2000)
    image, seed, count, progress = Path(argv[0]), int(argv[1]), int(argv[2]), Path(argv[3])
    checked = "--checked" in argv[4:]
    blocks = metadata_blocks(image)
    scratch = progress.with_suffix(".img")
    totals = {"runs": 0, "files": 0, "errors": 0, "fsck_clean": 0}
    for s in range(seed, seed + count):
        shutil.copyfile(image, scratch)
        edits = damage(scratch, blocks, random.Random(s))
        if checked:
            imagepatch.fix_checks(scratch)
        progress.write_text(json.dumps({"seed": s, "edits": edits}))
        try:
            totals["fsck_clean"] += check(scratch)
        except InvariantBroken as e:
            print(json.dumps({"seed": s, "edits": edits, "broken": str(e)}), file=sys.stderr)
            return 2
        c = exercise(scratch)
        if s % 2:
            c["errors"] += modify(scratch)
            c["files"] += exercise(scratch)["files"]
        totals["runs"] += 1
        totals["files"] += c["files"]
        totals["errors"] += c["errors"]
    os.unlink(scratch)
    print(json.dumps(totals))
    return 0


def _long(runs: int) -> int:
    """Both kinds of image, `runs` damaged copies each, in this process."""
    with tempfile.TemporaryDirectory(prefix="h2fuzz-long-") as tmp:
        for checked in (False, True):
            image = Path(tmp) / f"base-{int(checked)}.h2"
            build_image(image, checked=checked)
            argv = [str(image), "1", str(runs), str(Path(tmp) / "progress.json")]
            rc = main(argv + ["--checked"] * checked)
            if rc:
                return rc
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
