"""Copy a host directory tree into a PFS: the job makefs -t hammer2 does."""
from __future__ import annotations

import os
import stat as _stat

CHUNK = 4 << 20                  # read size
BLOCK = 64 << 10                 # HAMMER2 logical block
FLUSH_EVERY = 256 << 20          # commit at least this often (bounds memory)


class Importer:
    """Walks src top-down creating entries; hardlinks are recreated from
    (st_dev, st_ino); all-zero blocks are left as holes."""

    def __init__(self, pfs, flush_every: int = FLUSH_EVERY):
        self.pfs = pfs
        self.flush_every = flush_every
        self.dirty = 0
        self.files = 0
        self.bytes = 0
        self.linked: dict[tuple[int, int], str] = {}

    def _account(self, n: int):
        self.dirty += n
        if self.dirty >= self.flush_every:
            self.pfs.flush()
            self.dirty = 0

    def _copy_data(self, src: str, dst: str, size: int):
        with open(src, "rb") as f:
            off = 0
            while chunk := f.read(CHUNK):
                # write around all-zero 64 KiB blocks: they stay holes
                for b in range(0, len(chunk), BLOCK):
                    piece = chunk[b:b + BLOCK]
                    if piece.count(0) != len(piece):
                        self.pfs.write(dst, piece, off + b)
                off += len(chunk)
                self._account(len(chunk))
        if size:
            self.pfs.truncate(dst, size)
        self.bytes += size

    def _entry(self, src: str, dst: str, st: os.stat_result):
        key = (st.st_dev, st.st_ino)
        mtime = st.st_mtime_ns // 1000
        mode = _stat.S_IMODE(st.st_mode)
        if not _stat.S_ISDIR(st.st_mode) and st.st_nlink > 1 and key in self.linked:
            self.pfs.link(self.linked[key], dst)
            return
        if _stat.S_ISREG(st.st_mode):
            self.pfs.create(dst, b"", mode, st.st_uid, st.st_gid)
            self._copy_data(src, dst, st.st_size)
        elif _stat.S_ISLNK(st.st_mode):
            self.pfs.symlink(os.readlink(src), dst, st.st_uid, st.st_gid)
        elif _stat.S_ISFIFO(st.st_mode):
            self.pfs.mkfifo(dst, mode, st.st_uid, st.st_gid)
        else:
            return          # device nodes and sockets are not imported
        self.pfs.utime(dst, mtime)
        self.files += 1
        if st.st_nlink > 1:
            self.linked[key] = dst

    def run(self, src: str, dst: str = "/") -> "Importer":
        dirs = []
        for dirpath, dirnames, filenames in os.walk(src):
            rel = os.path.relpath(dirpath, src)
            here = dst if rel == "." else os.path.join(dst, rel)
            dirs.append((dirpath, here))
            for name in dirnames:
                st = os.lstat(os.path.join(dirpath, name))
                if _stat.S_ISLNK(st.st_mode):
                    continue    # os.walk lists symlinks to dirs here; handled below
                self.pfs.mkdir(os.path.join(here, name), _stat.S_IMODE(st.st_mode),
                               st.st_uid, st.st_gid)
            for name in filenames + [d for d in dirnames
                                     if os.path.islink(os.path.join(dirpath, d))]:
                s = os.path.join(dirpath, name)
                self._entry(s, os.path.join(here, name), os.lstat(s))
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        # directory times last: adding entries moves them
        for hostdir, here in reversed(dirs):
            st = os.lstat(hostdir)
            if here != "/":
                self.pfs.chmod(here, _stat.S_IMODE(st.st_mode))
            self.pfs.utime(here, st.st_mtime_ns // 1000)
        return self
