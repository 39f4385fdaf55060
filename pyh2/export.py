"""Copy a PFS tree out to a host directory, as a restore would. The image is
untrusted: the core hands out only valid names and link targets, and every
destination is checked to resolve inside DEST, never through a symlink."""
from __future__ import annotations

import errno
import os

from .volume import H2Error

CHUNK = 4 << 20
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


def _inside(root: str, path: str) -> str:
    """path, resolved, must lie in root: a name from the image or a symlink met
    on the way (one exported, or one already in DEST) would lead elsewhere."""
    if os.path.commonpath([root, os.path.realpath(path)]) != root:
        raise H2Error(errno.EINVAL, f"{path}: resolves outside {root}, not exported")
    return path


def _copy_file(pfs, src: str, dst: str, size: int):
    """Copy the data extents only (holes stay holes, however large the size an
    inode claims), all-zero chunks included."""
    buf = bytearray(CHUNK)
    with open(os.open(dst, _CREATE, 0o600), "wb") as f:
        try:
            off = pfs.next_data(src, 0)
            while off < size:
                view = memoryview(buf)[:min(CHUNK, size - off)]
                pfs.readinto(src, view, off)
                if buf.count(0, 0, view.nbytes) != view.nbytes:
                    f.seek(off)
                    f.write(view)
                off = pfs.next_data(src, off + view.nbytes)
            f.truncate(size)
        except OSError as e:
            if isinstance(e, H2Error):
                raise
            raise H2Error(e.errno, f"{dst}: cannot hold {src} ({size} bytes): "
                                   f"{e.strerror}") from None


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
    root = os.path.realpath(dest)
    for dirpath, dirnames, filenames in pfs.walk(top):
        rel = os.path.relpath(dirpath, top)
        out_dir = os.path.normpath(os.path.join(root, rel))
        dirs.append((out_dir, pfs.stat(dirpath)))
        for name in dirnames:
            os.makedirs(_inside(root, os.path.join(out_dir, name)), exist_ok=True)
        for name in filenames:
            src = os.path.join(dirpath, name)
            dst = _inside(root, os.path.join(out_dir, name))
            st = pfs.stat(src)
            count += 1
            if st.nlinks > 1 and st.inum in linked:
                os.link(linked[st.inum], dst, follow_symlinks=False)
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
        _restore_meta(_inside(root, out_dir), st, as_root)
    return count + len(dirs) - 1
