"""Crash consistency: rebuild the image a crash would leave at points of a flush's write log
and require each to be fsck clean and equal to a committed state.

A shadow copy of the image is kept one record behind the live image. For each record (the
writes and barriers of one flush) it is advanced write by write, and opened read-only at a
seeded sample of prefixes. Before each barrier epoch is applied, random subsets of its writes
in random order (what a disk may persist of unordered writes) are applied, checked and undone.
Expected: the state of the last completed flush until the volume header write of the new one
is in, that state afterwards. At the end the shadow must equal the live image byte for byte
(every device write went through the log)."""
from __future__ import annotations

import os
import random
import subprocess

import pyh2

from .errors import TortureFailure
from .verify import Expected, diff_volume

ZONE = 2 << 30                       # volume header copies sit at n * 2 GiB
VOLHDR_BYTES = 64 << 10


def is_header(off: int, data: bytes) -> bool:
    return off % ZONE == 0 and len(data) == VOLHDR_BYTES


def sparse_copy(src, dst):
    subprocess.run(["cp", "--sparse=always", os.fspath(src), os.fspath(dst)], check=True)


class CrashEngine:
    def __init__(self, image, shadow, seed: int, prefix_points: int = 12, torn_points: int = 4):
        self.image, self.shadow = os.fspath(image), os.fspath(shadow)
        self.rng = random.Random(seed)
        self.prefix_points, self.torn_points = prefix_points, torn_points
        self.checked = 0
        sparse_copy(self.image, self.shadow)
        self.fd = os.open(self.shadow, os.O_RDWR)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # ------------------------------------------------------------ shadow writes
    def _put(self, off: int, data: bytes) -> bytes:
        old = os.pread(self.fd, len(data), off)
        os.pwrite(self.fd, data, off)
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

    # ------------------------------------------------------------ one record
    def check(self, record, states: list[Expected], tag: str = "") -> int:
        """Check the crash points of record; states[j] is the state after j header writes.
        Returns the number of points checked. Leaves the shadow equal to the live image."""
        before = self.checked
        epochs, cur = [], []
        for op, off, data in record:
            if op == "write":
                cur.append((off, data))
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
            for off, data in writes:
                self._put(off, data)
                done += 1
                headers += is_header(off, data)
                if done in picks:
                    self._check(state(headers), f"{tag} after write {done}/{nwrites}")
        return self.checked - before

    def _prefix_sample(self, epochs, nwrites) -> set[int]:
        """Write counts to stop at: around every header write, the rest seeded at random."""
        must, n = {0, nwrites}, 0
        for writes in epochs:
            for off, data in writes:
                n += 1
                if is_header(off, data):
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
        undo = [(off, self._put(off, data)) for off, data in sub]
        try:
            self._check(state(headers + sum(is_header(o, d) for o, d in sub)),
                        f"{where} ({len(sub)} of {len(writes)} writes)")
        finally:
            for off, old in reversed(undo):
                os.pwrite(self.fd, old, off)

    def absorb(self, record):
        """Follow a record without checking it (a flush that failed on an injected fault)."""
        for op, off, data in record:
            if op == "write":
                self._put(off, data)

    def assert_in_sync(self):
        """The shadow equals the live image: no device write escaped the log."""
        with open(self.image, "rb") as a, open(self.shadow, "rb") as b:
            pos = 0
            while True:
                x, y = a.read(1 << 20), b.read(1 << 20)
                if x != y:
                    raise TortureFailure("crash", f"shadow image differs from the live image "
                                                  f"near offset {pos:#x}: a write bypassed the log")
                if not x:
                    return
                pos += len(x)
