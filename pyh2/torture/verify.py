"""What a volume must hold: the DATA tree and each snapshot PFS, against their models."""
from __future__ import annotations

from dataclasses import dataclass, field

from .model import Model
from ..refimages import compare_trees, tree_from_volume

BUILTIN_PFS = {"DATA", "LOCAL"}
MAX_DIFFS = 8


@dataclass
class Expected:
    """A state of the volume: the DATA model and the snapshots (frozen once taken).
    frozen: a committed state, never changed again, so its manifests (digests of every
    file) are computed once for all the crash images checked against it."""
    data: Model
    snapshots: dict[str, Model] = field(default_factory=dict)
    frozen: bool = False
    _manifests: dict = field(default_factory=dict, repr=False)

    def clone(self) -> "Expected":
        return Expected(self.data.clone(), dict(self.snapshots))

    def model(self, label: str) -> Model:
        return self.data if label == "DATA" else self.snapshots[label]

    def manifest(self, label: str) -> list[dict]:
        m = self._manifests.get(label) or self.model(label).manifest()
        if self.frozen:
            self._manifests[label] = m
        return m


def diff_tree(pfs, model: Model, manifest: list[dict] | None = None) -> list[str]:
    """Tree differences, owners included (the manifest shape has no uid/gid)."""
    diffs = compare_trees(manifest or model.manifest(), tree_from_volume(pfs))
    if not diffs:
        for path, n in model.walk():
            st = pfs.stat(path)
            if (st.uid, st.gid) != (n.uid, n.gid):
                diffs.append(f"{path}: owner expected {n.uid}:{n.gid}, got {st.uid}:{st.gid}")
    return diffs[:MAX_DIFFS]


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
                                                         expected.manifest(label))]
        finally:
            pfs.close()
    return diffs
