"""Copy a PFS tree out to a host directory, as a restore would: one call into
the core (csrc/hammer2_export.c), which validates every name and link target
from the untrusted image and writes nothing outside DEST or through a symlink."""
from __future__ import annotations

import os

from . import _core


def export(pfs, dest: str, top: str = "/") -> int:
    """Export files, dirs, symlinks, fifos and hardlinks with modes and
    mtimes (and owners when run as root).  Returns the entry count."""
    inum = pfs._namei(top)
    os.makedirs(dest, exist_ok=True)
    return _core.export_tree(pfs._core, inum, dest)
