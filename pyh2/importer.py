"""Copy a host directory tree into a PFS: the job makefs -t hammer2 does, in one
call into the core (csrc/hammer2_import.c)."""
from __future__ import annotations

from . import _core

FLUSH_EVERY = 256 << 20          # commit at least this often (bounds memory)


class Importer:
    """Files, dirs, symlinks, fifos and hardlinks (from st_dev, st_ino) with
    modes, owners and mtimes; all-zero 64 KiB blocks are left as holes."""

    def __init__(self, pfs, flush_every: int = FLUSH_EVERY):
        self.pfs = pfs
        self.flush_every = flush_every
        self.files = 0
        self.bytes = 0

    def run(self, src: str, dst: str = "/") -> "Importer":
        self.files, self.bytes = _core.import_tree(self.pfs._core, src,
                                                   self.pfs._namei(dst), self.flush_every)
        return self
