"""Copy a PFS tree out to a host directory, as a restore would."""
from __future__ import annotations

import os

CHUNK = 4 << 20


def _copy_file(pfs, src: str, dst: str, size: int):
    """Copy out, leaving all-zero chunks as holes (sparse files stay sparse)."""
    buf = bytearray(CHUNK)
    with open(dst, "wb") as f:
        for off in range(0, size, CHUNK):
            view = memoryview(buf)[:min(CHUNK, size - off)]
            pfs.readinto(src, view, off)
            if view.nbytes and buf.count(0, 0, view.nbytes) == view.nbytes:
                f.seek(view.nbytes, os.SEEK_CUR)
            else:
                f.write(view)
        f.truncate(size)


def _restore_meta(dst: str, st, as_root: bool):
    if as_root:
        os.lchown(dst, st.uid, st.gid)
    if st.type != "symlink":
        os.chmod(dst, st.mode)
    os.utime(dst, ns=(st.atime_us * 1000, st.mtime_us * 1000), follow_symlinks=False)


def export(pfs, dest: str, top: str = "/") -> int:
    """Export files, dirs, symlinks, fifos and hardlinks with modes and
    mtimes (and owners when run as root).  Returns the entry count."""
    as_root = os.geteuid() == 0
    linked: dict[int, str] = {}     # inum -> first exported path, for hardlinks
    dirs = []
    count = 0
    os.makedirs(dest, exist_ok=True)
    for dirpath, dirnames, filenames in pfs.walk(top):
        rel = os.path.relpath(dirpath, top)
        out_dir = os.path.normpath(os.path.join(dest, rel))
        dirs.append((out_dir, pfs.stat(dirpath)))
        for name in dirnames:
            os.makedirs(os.path.join(out_dir, name), exist_ok=True)
        for name in filenames:
            src = os.path.join(dirpath, name)
            dst = os.path.join(out_dir, name)
            st = pfs.stat(src)
            count += 1
            if st.nlinks > 1 and st.inum in linked:
                os.link(linked[st.inum], dst)
                continue
            if st.type == "symlink":
                os.symlink(pfs.readlink(src), dst)
            elif st.type == "fifo":
                os.mkfifo(dst)
            elif st.type in ("cdev", "bdev", "socket"):
                continue    # device nodes and sockets are not recreated
            else:
                _copy_file(pfs, src, dst, st.size)
            _restore_meta(dst, st, as_root)
            linked[st.inum] = dst
    # directory times last: creating children changes them
    for out_dir, st in reversed(dirs):
        _restore_meta(out_dir, st, as_root)
    return count + len(dirs) - 1
