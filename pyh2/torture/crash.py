"""Crash consistency: rebuild the image a crash would leave at points of a flush's write log
and require each to be fsck clean and equal to a committed state.

A shadow copy of the image (of each of its volumes) is kept one record behind the live
image. For each record (the writes and barriers of one flush, each write logged with its
volume and its offset there) it is advanced write by write, and opened read-only at a
seeded sample of prefixes. Before each barrier epoch is applied, random subsets of its writes
in random order (what a disk may persist of unordered writes) are applied, checked and undone.
Expected: the state of the last completed flush until the volume header write of the new one
is in, that state afterwards. With several header copies, a header write torn after a few
sectors is checked too (the previous copy must take over). At the end the shadow must equal
the live image byte for byte, volume by volume (every device write went through the log)."""
from __future__ import annotations

import os
import random

import pyh2
from pyh2 import _core

from .errors import TortureFailure
from .ops import apply_path_op
from .verify import Expected, diff_volume

ZONE = 2 << 30                       # volume header copies sit at n * 2 GiB
VOLHDR_BYTES = 64 << 10
SECTOR = 512
# what a resumed volume does after a crash: new data in new blocks, a new directory
RESUME_OPS = (("mkdir", "/after-crash", 0o755),
              ("create", "/after-crash/f", 200 * 1024, 99, 0o644),
              ("write", "/after-crash/f", 70 * 1024, 5000, 98))


def is_header(vol: int, off: int, data: bytes) -> bool:
    """A root volume header write (a flush rewrites those of volume 0 only)."""
    return vol == 0 and off % ZONE == 0 and len(data) == VOLHDR_BYTES


def sparse_copy(src, dst):
    """dst: src's size, holding src's data extents only (its holes stay holes), copied in
    the kernel (no child process: a crash image is copied at every resume)."""
    with open(src, "rb") as a, open(dst, "wb") as b:
        for start, end in _extents(a.fileno()):
            while start < end:
                n = os.copy_file_range(a.fileno(), b.fileno(), end - start, start, start)
                if n == 0:
                    raise OSError(f"{src}: ended at {start} while copied")
                start += n
        os.ftruncate(b.fileno(), os.fstat(a.fileno()).st_size)


class CrashEngine:
    def __init__(self, image, shadow, seed: int, prefix_points: int = 12, torn_points: int = 4,
                 resume_share: float = 0.05):
        """image, shadow: the volume files of the live image and of its shadow."""
        self.image, self.shadow = list(map(os.fspath, image)), list(map(os.fspath, shadow))
        self.rng = random.Random(seed)
        self.prefix_points, self.torn_points = prefix_points, torn_points
        self.resume_share = resume_share
        self.checked = self.torn_headers = self.resumed = 0
        self.replayed = [0] * len(self.image)      # the records' writes, per volume
        self.fds = []
        for src, dst in zip(self.image, self.shadow):
            sparse_copy(src, dst)
            self.fds.append(os.open(dst, os.O_RDWR))
        # header copies the root volume has: with one, a torn header write is fatal by design
        self.zones = min(4, (os.fstat(self.fds[0]).st_size - 1) // ZONE + 1)

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    # ------------------------------------------------------------ shadow writes
    def _put(self, vol: int, off: int, data: bytes) -> bytes:
        old = os.pread(self.fds[vol], len(data), off)
        os.pwrite(self.fds[vol], data, off)
        return old

    def _check(self, expected: Expected, where: str):
        self.checked += 1
        try:
            with pyh2.open(self.shadow) as vol:
                diffs = diff_volume(vol, expected)
        except pyh2.H2Error as e:
            diffs = [f"unreadable: {e}"]
        if diffs:
            raise TortureFailure("crash", f"crash image {where}: " + "; ".join(diffs))
        if self.rng.random() < self.resume_share:
            self._resume(expected, where)

    def _resume(self, expected: Expected, where: str):
        """Carry on after the crash: write and flush on a copy of the crash image, which
        must then hold the recovered state plus the new writes (the allocator must not
        hand out what the recovered tree still uses). The copy is a memory device mapping
        the shadow copy-on-write: it holds the shadow's bytes, copies only the pages the
        resume writes, and leaves the shadow as it was (one such device per volume)."""
        self.resumed += 1
        after = expected.clone()               # (not frozen: the resume ops change it)
        names = [f"pyh2-resume-{os.getpid()}-{id(self)}-{k}" for k in range(len(self.shadow))]
        made = []
        try:
            for name, shadow in zip(names, self.shadow):
                _core.mem_create_from(name, shadow)
                made.append(name)
            vols = [f"mem:{name}" for name in names]
            with pyh2.open(vols, writable=True) as vol:
                pfs = vol.pfs("DATA")
                for op in RESUME_OPS:
                    apply_path_op(pfs, after.data, op)
                pfs.close()
            with pyh2.open(vols) as vol:
                diffs = diff_volume(vol, after)
        except (pyh2.H2Error, AssertionError) as e:
            diffs = [str(e)]
        finally:
            for name in made:
                _core.mem_delete(name)
        if diffs:
            raise TortureFailure("crash", f"resumed after crash image {where}: " +
                                 "; ".join(diffs))

    # ------------------------------------------------------------ one record
    def check(self, record, states: list[Expected], tag: str = "") -> int:
        """Check the crash points of record; states[j] is the state after j header writes.
        Returns the number of points checked. Leaves the shadow equal to the live image."""
        before = self.checked
        epochs, cur = [], []
        for op, vol, off, data in record:
            if op == "write":
                cur.append((vol, off, data))
            else:
                epochs.append(cur)
                cur = []
        if cur:
            epochs.append(cur)
        nwrites = sum(map(len, epochs))
        picks = self._prefix_sample(epochs, nwrites)
        done = headers = 0

        def state(n):
            return states[min(n, len(states) - 1)]
        for e, writes in enumerate(epochs):
            if len(writes) > 1:
                for _ in range(self.torn_points):
                    self._torn(writes, headers, state, f"{tag} epoch {e} torn")
            for w in writes:
                if is_header(*w) and self.zones > 1:
                    self._torn_header(w, state(headers), f"{tag} header {headers}")
                self._put(*w)
                self.replayed[w[0]] += 1
                done += 1
                headers += is_header(*w)
                if done in picks:
                    self._check(state(headers), f"{tag} after write {done}/{nwrites}")
        return self.checked - before

    def _prefix_sample(self, epochs, nwrites) -> set[int]:
        """Write counts to stop at: around every header write, the rest seeded at random."""
        must, n = {0, nwrites}, 0
        for writes in epochs:
            for w in writes:
                n += 1
                if is_header(*w):
                    must |= {n - 1, n}
        rest = sorted(set(range(nwrites + 1)) - must)
        k = max(0, min(len(rest), self.prefix_points - len(must)))
        picks = must | set(self.rng.sample(rest, k))
        if 0 in picks and self.checked:    # the state before is the last record's end state
            picks.discard(0)
        return picks

    def _torn(self, writes, headers, state, where):
        sub = [w for w in writes if self.rng.random() < 0.5]
        if not sub or len(sub) == len(writes):
            return
        self.rng.shuffle(sub)
        undo = [(vol, off, self._put(vol, off, data)) for vol, off, data in sub]
        try:
            self._check(state(headers + sum(is_header(*w) for w in sub)),
                        f"{where} ({len(sub)} of {len(writes)} writes)")
        finally:
            for vol, off, old in reversed(undo):
                os.pwrite(self.fds[vol], old, off)

    def absorb(self, record):
        """Follow a record without checking it (a flush that failed on an injected fault)."""
        for op, vol, off, data in record:
            if op == "write":
                self._put(vol, off, data)

    def _torn_header(self, write, expected, where):
        """A header write cut short after some sectors: its CRCs fail, and the volume must
        mount from the previous copy (another zone), holding the last completed flush."""
        vol, off, data = write
        cut = self.rng.randrange(1, len(data) // SECTOR) * SECTOR
        old = self._put(vol, off, data[:cut])
        self.torn_headers += 1
        try:
            self._check(expected, f"{where} torn after {cut} bytes")
        finally:
            os.pwrite(self.fds[vol], old, off)

    def assert_in_sync(self):
        """The shadow equals the live image, volume by volume: no device write escaped
        the log. Only the data extents of either file are read (holes read as zeros in
        both)."""
        for k, (image, shadow) in enumerate(zip(self.image, self.shadow)):
            with open(image, "rb") as a, open(shadow, "rb") as b:
                if os.fstat(a.fileno()).st_size != os.fstat(b.fileno()).st_size:
                    raise TortureFailure("crash", f"volume {k}: shadow and live image "
                                                  f"sizes differ")
                for start, end in _merge(_extents(a.fileno()) + _extents(b.fileno())):
                    for pos in range(start, end, 1 << 20):
                        n = min(1 << 20, end - pos)
                        if os.pread(a.fileno(), n, pos) != os.pread(b.fileno(), n, pos):
                            raise TortureFailure("crash", f"volume {k}: shadow image differs "
                                                 f"from the live image in [{pos:#x}, "
                                                 f"{pos + n:#x}): a write bypassed the log")


def _extents(fd) -> list[tuple[int, int]]:
    """The data (non-hole) extents of a file."""
    out, pos, size = [], 0, os.fstat(fd).st_size
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:               # ENXIO: only a hole is left
            break
        end = os.lseek(fd, start, os.SEEK_HOLE)
        out.append((start, end))
        pos = end
    return out


def _merge(extents):
    merged = []
    for start, end in sorted(extents):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
