"""A torture node's filesystem over N volumes (`--volumes N`): laid out, copied, its media
offsets found in its volume files, and where its live blocks are.

Every volume but the last is a whole GiB (the format's rule), so a run's few MiB would stay
in volume 0. As newfs_hammer2 -r can, volume 0 gets an aux area (never allocated, a hole in
the file) leaving the allocator only a few MiB there: the run's blocks spill into volume 1,
and a volume past that gets blocks once the ones before it are full (a run writing more
than a GiB)."""
from __future__ import annotations

import bisect
import errno
import os
from pathlib import Path

import pyh2
from pyh2 import _core

MiB = 1 << 20
GiB = 1 << 30
# volume 0's allocator room: its GiB less the reserved segment (4 MiB), the nominal boot
# area (64 MiB: the set is over 1.25 GiB) and 12 MiB, which newfs's inodes, rounded up to a
# 4 MiB segment, leave at 8 MiB
AUX = GiB - 4 * MiB - 64 * MiB - 12 * MiB


def check_count(n: int):
    if not 1 <= n <= _core.MAX_VOLUMES:
        raise pyh2.H2Error(errno.EINVAL, f"--volumes: a filesystem has 1 to "
                                         f"{_core.MAX_VOLUMES} volumes, not {n}")


def paths(workdir, name: str, n: int) -> list[Path]:
    """The volume files of a filesystem called name: NAME.h2, or NAME.vK.h2 for each K."""
    d = Path(workdir)
    return [d / f"{name}.h2"] if n == 1 else [d / f"{name}.v{k}.h2" for k in range(n)]


def spec(vols) -> str:
    """The node as one name: VOL0:VOL1:..."""
    return ":".join(map(os.fspath, vols))


def newfs(vols, last_size: int):
    """One volume of last_size, or GiB volumes ended by one of last_size."""
    check_count(len(vols))
    if len(vols) == 1:
        pyh2.newfs(vols[0], last_size)
    else:
        pyh2.newfs(vols, [GiB] * (len(vols) - 1) + [last_size], aux=AUX)


def starts(vols) -> list[int]:
    """Each volume's first media offset: the volumes lie end to end (newfs sized the
    files to the volumes)."""
    out, at = [], 0
    for v in vols:
        out.append(at)
        at += os.path.getsize(v)
    return out


def locate(vols, off: int) -> tuple[Path, int]:
    """The volume file holding media offset off, and the offset in it."""
    first = starts(vols)
    k = bisect.bisect_right(first, off) - 1
    return vols[k], off - first[k]


def usage(vols) -> list[tuple[int, int]]:
    """(blocks, bytes) of the volume tree's blocks on each volume, by its best header."""
    first = starts(vols)
    out = [[0, 0] for _ in vols]

    def visit(depth, bref, data, error):
        if bref["bytes"]:
            k = bisect.bisect_right(first, bref["data_off"]) - 1
            out[k][0] += 1
            out[k][1] += bref["bytes"]
    with pyh2.open(vols) as vol:
        vol.device.walk_zone(vol.best_zone, False, visit)
    return [tuple(x) for x in out]
