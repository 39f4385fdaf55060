"""What a volume must hold: the DATA tree and each snapshot PFS, against their models.

A PFS is read in one core call (`_core.digest_tree`: per path the inode's type, mode,
owners, size, mtime, link count, inode number and a digest of the file's contents) and
compared with the model's `view()`, whose digests are kept per content."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from pyh2 import _core
from pyh2.volume import _type_name

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


def diff_view(expected: dict, actual: dict, t0: int) -> list[str]:
    """Differences between a Model.view() and a _core.digest_tree() as readable lines; []
    means equal. A NOW mtime matches any second from t0 to now; link identity is compared
    as a partition (the paths of one model node are the paths of one inode)."""
    now = int(time.time()) + 1
    diffs = [f"missing: {p}" for p in sorted(expected.keys() - actual.keys())]
    diffs += [f"unexpected: {p}" for p in sorted(actual.keys() - expected.keys())]
    nlinks, inums, nodes = {}, {}, {}
    for e in expected.values():
        nlinks[e[6]] = nlinks.get(e[6], 0) + 1
    for p in expected.keys() & actual.keys():
        ftype, mode, uid, gid, size, mtime, nid, data = expected[p]
        h2type, amode, auid, agid, asize, amtime, anlinks, inum, adata = actual[p]
        fields = [("type", ftype, _type_name(h2type)), ("mode", mode, amode & 0o7777),
                  ("owner", (uid, gid), (auid, agid))]
        if ftype == "file":
            fields += [("size", size, asize), ("nlinks", nlinks[nid], anlinks),
                       ("contents digest", data, adata)]
        elif ftype == "symlink":
            fields += [("size", size, asize), ("target", data, adata)]
        if mtime is NOW:
            if not t0 <= amtime // 1_000_000 <= now:
                fields.append(("mtime (s)", f"a time in [{t0}, {now}]", amtime // 1_000_000))
        else:
            fields.append(("mtime_us", mtime, amtime))
        diffs += [f"{p}: {name} expected {want!r}, got {got!r}"
                  for name, want, got in fields if want != got]
        if inums.setdefault(nid, inum) != inum or nodes.setdefault(inum, nid) != nid:
            diffs.append(f"{p}: hardlinked with "
                         f"{sorted(q for q, e in expected.items() if e[6] == nid)}, got "
                         f"{sorted(q for q, a in actual.items() if a[7] == inum)}")
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
