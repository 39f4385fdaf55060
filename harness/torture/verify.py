"""What a volume must hold: the DATA tree and each snapshot PFS, against their models."""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.model import Model
from harness.refimages import compare_trees, tree_from_volume

BUILTIN_PFS = {"DATA", "LOCAL"}
MAX_DIFFS = 8


@dataclass
class Expected:
    """A state of the volume: the DATA model and the snapshots (frozen once taken)."""
    data: Model
    snapshots: dict[str, Model] = field(default_factory=dict)

    def clone(self) -> "Expected":
        return Expected(self.data.clone(), dict(self.snapshots))


def diff_tree(pfs, model: Model) -> list[str]:
    """Tree differences, owners included (the manifest shape has no uid/gid)."""
    diffs = compare_trees(model.manifest(), tree_from_volume(pfs))
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
    for label, model in [("DATA", expected.data), *sorted(expected.snapshots.items())]:
        pfs = vol.pfs(label)
        try:
            diffs += [f"{label}: {d}" for d in diff_tree(pfs, model)]
        finally:
            pfs.close()
    return diffs
