"""What a volume must hold: the DATA tree and each snapshot PFS, against their models.

A PFS is read in one core call (`_core.digest_tree`: per path the inode's type, mode,
owners, size, mtime, link count, inode number and a digest of the file's contents) and
compared with the model's `view()`, whose digests are kept per content."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from pyh2 import _core

from .model import NOW, Model

BUILTIN_PFS = {"DATA", "LOCAL"}
MAX_DIFFS = 8


@dataclass
class Expected:
    """A state of the volume: the DATA model and the snapshots (frozen once taken).
    frozen: a committed state, never changed again, so its views are rendered once for
    all the crash images checked against it."""
    data: Model
    snapshots: dict[str, Model] = field(default_factory=dict)
    frozen: bool = False
    _views: dict = field(default_factory=dict, repr=False)

    def clone(self) -> "Expected":
        return Expected(self.data.clone(), dict(self.snapshots))

    def model(self, label: str) -> Model:
        return self.data if label == "DATA" else self.snapshots[label]

    def view(self, label: str) -> dict:
        v = self._views.get(label) or self.model(label).view()
        if self.frozen:
            self._views[label] = v
        return v


FIELDS = ("type", "mode", "uid", "gid", "size", "nlinks", "data")


def diff_view(expected: dict, actual: dict, t0: int) -> list[str]:
    """Differences between a Model.view() and a _core.digest_tree() as readable lines; []
    means equal. A NOW mtime matches any second from t0 to now; link identity is compared
    as a partition (the paths of one model node are the paths of one inode)."""
    now = int(time.time()) + 1
    diffs = [f"missing: {p}" for p in sorted(expected.keys() - actual.keys())]
    diffs += [f"unexpected: {p}" for p in sorted(actual.keys() - expected.keys())]
    inums, nodes = {}, {}
    for p in expected.keys() & actual.keys():
        e, a = expected[p], actual[p]
        mtime, nid, amtime, inum = e[7], e[8], a[7], a[8]
        if e[:7] != a[:7]:
            diffs += [f"{p}: {name} expected {want!r}, got {got!r}"
                      for name, want, got in zip(FIELDS, e, a) if want != got]
        if mtime is NOW:
            if not t0 <= amtime // 1_000_000 <= now:
                diffs.append(f"{p}: mtime expected a time in [{t0}, {now}] s, got "
                             f"{amtime // 1_000_000} s")
        elif mtime != amtime:
            diffs.append(f"{p}: mtime_us expected {mtime}, got {amtime}")
        if inums.setdefault(nid, inum) != inum or nodes.setdefault(inum, nid) != nid:
            diffs.append(f"{p}: hardlinked with "
                         f"{sorted(q for q, x in expected.items() if x[8] == nid)}, got "
                         f"{sorted(q for q, x in actual.items() if x[8] == inum)}")
    return sorted(diffs)


def diff_tree(pfs, model: Model, view: dict | None = None) -> list[str]:
    """How the PFS (a pyh2.Pfs) differs from model (view: model.view(), if at hand)."""
    actual = _core.digest_tree(pfs._core)
    return diff_view(model.view() if view is None else view, actual, model.t0)[:MAX_DIFFS]


def diff_volume(vol, expected: Expected, fsck: bool = True) -> list[str]:
    """Every way the opened volume differs from expected: fsck errors first."""
    if fsck:
        errors = vol.fsck()["errors"]
        if errors:
            return [f"fsck: {e}" for e in errors[:MAX_DIFFS]]
    labels = {p.label for p in vol.pfs_list()} - BUILTIN_PFS
    if labels != set(expected.snapshots):
        return [f"snapshots: expected {sorted(expected.snapshots)}, got {sorted(labels)}"]
    diffs = []
    for label in ["DATA", *sorted(expected.snapshots)]:
        pfs = vol.pfs(label)
        try:
            diffs += [f"{label}: {d}" for d in diff_tree(pfs, expected.model(label),
                                                         expected.view(label))]
        finally:
            pfs.close()
    return diffs
