"""The Python face of the core: volumes, PFSes, paths, stat."""
from __future__ import annotations

import errno
import fcntl
import functools
import os
import re
import stat as _stat
import threading
import time
import uuid
from dataclasses import dataclass

from . import _core
from ._core import CheckError, H2Error

COMP_ALGOS = {"none": 0, "autozero": 1, "lz4": 2, "zlib": 3}
CHECK_ALGOS = {"none": 0, "disabled": 1, "crc32": 2, "iscsi32": 2, "xxhash64": 3,
               "sha192": 4}

PFS_TYPES = {0x00: "NONE", 0x01: "CACHE", 0x03: "SLAVE", 0x04: "SOFT_SLAVE",
             0x05: "SOFT_MASTER", 0x06: "MASTER", 0x08: "SUPROOT", 0x09: "DUMMY"}
PFS_SUBTYPES = {1: "SNAPSHOT", 2: "AUTOSNAP"}

# HAMMER2 object type -> (name, S_IF* bits)
OBJ_TYPES = {1: ("dir", _stat.S_IFDIR), 2: ("file", _stat.S_IFREG),
             4: ("fifo", _stat.S_IFIFO), 5: ("cdev", _stat.S_IFCHR),
             6: ("bdev", _stat.S_IFBLK), 7: ("symlink", _stat.S_IFLNK),
             9: ("socket", _stat.S_IFSOCK)}


def _type_name(h2type: int) -> str:
    return OBJ_TYPES.get(h2type, ("unknown", 0))[0]


@dataclass(frozen=True)
class PfsInfo:
    label: str
    type: str           # MASTER, SLAVE, ..., or SNAPSHOT for snapshots
    pfs_type: int
    pfs_subtype: int
    clid: str
    fsid: str
    inum: int

    @classmethod
    def from_core(cls, d: dict) -> "PfsInfo":
        kind = PFS_TYPES.get(d["pfs_type"] & 0x0F, f"TYPE{d['pfs_type']}")
        if kind == "MASTER" and d["pfs_subtype"]:
            kind = PFS_SUBTYPES.get(d["pfs_subtype"], kind)
        return cls(d["label"], kind, d["pfs_type"], d["pfs_subtype"],
                   _core.uuid_str(d["clid"]), _core.uuid_str(d["fsid"]), d["inum"])


@dataclass(frozen=True)
class Stat:
    inum: int
    type: str
    h2type: int
    mode: int           # permission bits, setuid/setgid/sticky included
    nlinks: int
    size: int
    uid: int
    gid: int
    atime_us: int
    mtime_us: int
    ctime_us: int
    btime_us: int
    comp_algo: int
    check_algo: int
    iparent: int
    embedded: bool      # data lives in the inode itself
    blocks: int         # 512-byte units its data takes on media (st_blocks) at the last commit

    @property
    def st_mode(self) -> int:
        return OBJ_TYPES.get(self.h2type, ("", 0))[1] | self.mode

    @property
    def mtime(self) -> float:
        return self.mtime_us / 1e6

    @classmethod
    def from_meta(cls, m: dict) -> "Stat":
        return cls(m["inum"], _type_name(m["h2type"]), m["h2type"],
                   m["mode"] & 0o7777, m["nlinks"], m["size"], m["uid"], m["gid"],
                   m["atime_us"], m["mtime_us"], m["ctime_us"], m["btime_us"],
                   m["comp_algo"], m["check_algo"], m["iparent"],
                   bool(m["op_flags"] & 0x01), (m["data_bytes"] + 511) // 512)


@dataclass(frozen=True)
class DirEntry:
    name: str
    inum: int
    type: str


def comp_algo(spec: str) -> int:
    """'lz4', 'zlib:9' -> the inode comp_algo byte (level in the high nibble).
    As the real setcomp and makefs: a level (0 or 'default': the algorithm's
    own) is only zlib's, 6..9."""
    name, _, level = spec.lower().partition(":")
    if name not in COMP_ALGOS:
        raise H2Error(errno.EINVAL, f"unknown compression '{spec}' "
                                    f"(one of {', '.join(COMP_ALGOS)})")
    if level in ("", "default"):
        level = "0"
    if not level.isdigit():
        raise H2Error(errno.EINVAL, f"unknown compression level '{level}'")
    if int(level) and (name != "zlib" or not 6 <= int(level) <= 9):
        raise H2Error(errno.EINVAL, f"unsupported comp_level {int(level)} for {name}"
                                    + (" (zlib takes 6..9)" if name == "zlib" else ""))
    return COMP_ALGOS[name] | (int(level) << 4)


def check_algo(spec: str) -> int:
    if spec.lower() not in CHECK_ALGOS:
        raise H2Error(errno.EINVAL, f"unknown check algorithm '{spec}' "
                                    f"(one of {', '.join(CHECK_ALGOS)})")
    return CHECK_ALGOS[spec.lower()]


def _reraise(e: H2Error, context: str):
    """The same error with the caller's object (a path) in front."""
    return type(e)(e.errno, f"{context}: {e.strerror}")


class Pfs:
    """A PFS of an open volume; paths are absolute within the PFS."""

    def __init__(self, volume: "Volume", core: _core.Pfs):
        self.volume = volume
        self._core = core

    @functools.cached_property
    def info(self) -> PfsInfo:
        """Formatted when first asked for (a torture check opens thousands of PFSes)."""
        return PfsInfo.from_core(self._core.info)

    @property
    def label(self) -> str:
        return self.info.label

    def close(self):
        self._core.close()

    def _namei(self, path: str) -> int:
        if not path.startswith("/"):
            raise H2Error(errno.EINVAL, f"{path}: PFS paths are absolute")
        try:
            return _core.namei(self._core, os.fsencode(path))
        except H2Error as e:
            raise _reraise(e, path) from None

    def stat(self, path: str) -> Stat:
        inum = self._namei(path)
        try:
            return Stat.from_meta(self._core.inode(inum)[0])
        except H2Error as e:
            raise _reraise(e, path) from None

    lstat = stat  # symlinks are never followed inside a PFS

    def scandir(self, path: str = "/") -> list[DirEntry]:
        inum = self._namei(path)
        try:
            ents = self._core.readdir(inum)
        except H2Error as e:
            raise _reraise(e, path) from None
        return [DirEntry(os.fsdecode(name), ino, _type_name(t)) for name, ino, t, _ in ents]

    def listdir(self, path: str = "/") -> list[str]:
        return [e.name for e in self.scandir(path)]

    def read(self, path: str, offset: int = 0, size: int | None = None) -> bytes:
        inum = self._namei(path)
        if size is None:
            size = max(0, self._call(path, self._core.inode, inum)[0]["size"] - offset)
        return self._call(path, self._core.read, inum, offset, size)

    def readinto(self, path: str, buf, offset: int = 0) -> int:
        """Read into a writable buffer (no allocation per call)."""
        return self._call(path, self._core.readinto, self._namei(path), offset, buf)

    def next_data(self, path: str, offset: int) -> int:
        """The first offset at or after offset holding data (as SEEK_DATA); the
        file size when only holes follow."""
        return self._call(path, self._core.next_data, self._namei(path), offset)

    def readlink(self, path: str) -> str:
        """The target; H2Error if the one on media could not be a host's (longer
        than PATH_MAX - 1, a NUL inside)."""
        return os.fsdecode(self._call(path, self._core.readlink, self._namei(path)))

    def walk(self, top: str = "/"):
        """Like os.walk, top-down, over this PFS."""
        dirs, files = [], []
        for e in self.scandir(top):
            (dirs if e.type == "dir" else files).append(e.name)
        yield top, dirs, files
        for d in dirs:
            yield from self.walk(os.path.join(top, d))

    # ----------------------------------------------------------- writes
    # Modifications stay in memory until flush() (or a clean exit from the
    # volume's `with`) commits them with a new volume header.

    def _parent(self, path: str) -> tuple[int, bytes]:
        head, _, name = path.rstrip("/").rpartition("/")
        if not path.startswith("/") or not name:
            raise H2Error(errno.EINVAL, f"{path}: not an absolute path to an entry")
        return self._namei(head or "/"), os.fsencode(name)

    def _call(self, path, fn, *args):
        try:
            return fn(*args)
        except H2Error as e:
            raise _reraise(e, path) from None
        except OverflowError as e:          # a negative or oversized number
            raise H2Error(errno.EINVAL, f"{path}: argument out of range: {e}") from None

    def _create(self, path, h2type, mode, uid, gid, mtime_us, rdev=(0, 0)):
        dinum, name = self._parent(path)
        return self._call(path, self._core.create, dinum, name, h2type, mode, uid,
                          gid, mtime_us, None, *rdev)

    def create(self, path: str, data: bytes = b"", mode: int = 0o644, uid: int = 0,
               gid: int = 0, mtime_us: int | None = None) -> int:
        """Create a regular file holding data; returns its inode number."""
        inum = self._create(path, 2, mode, uid, gid, mtime_us)
        if data:
            self._call(path, self._core.write, inum, 0, data)
            if mtime_us is not None:
                self._call(path, self._core.setattr, inum, None, None, None, None, mtime_us)
        return inum

    def mkdir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0,
              mtime_us: int | None = None) -> int:
        return self._create(path, 1, mode, uid, gid, mtime_us)

    def mkfifo(self, path: str, mode: int = 0o644, uid: int = 0, gid: int = 0,
               mtime_us: int | None = None) -> int:
        return self._create(path, 4, mode, uid, gid, mtime_us)

    def symlink(self, target: str, path: str, uid: int = 0, gid: int = 0,
                mtime_us: int | None = None) -> int:
        target = os.fsencode(target)
        self._call(path, _core.check_symlink, target)
        inum = self._create(path, 7, 0o777, uid, gid, mtime_us)
        self._call(path, self._core.write, inum, 0, target)
        if mtime_us is not None:
            self._call(path, self._core.setattr, inum, None, None, None, None, mtime_us)
        return inum

    def write(self, path: str, data, offset: int = 0) -> int:
        return self._call(path, self._core.write, self._namei(path), offset, data)

    def truncate(self, path: str, size: int):
        self._call(path, self._core.truncate, self._namei(path), size)

    def link(self, src: str, dst: str):
        inum = self._namei(src)
        dinum, name = self._parent(dst)
        self._call(dst, self._core.link, inum, dinum, name)

    def unlink(self, path: str):
        dinum, name = self._parent(path)
        self._call(path, self._core.unlink, dinum, name, 0)

    def rmdir(self, path: str):
        dinum, name = self._parent(path)
        self._call(path, self._core.unlink, dinum, name, 1)

    def rename(self, src: str, dst: str, noreplace: bool = False):
        sd, sname = self._parent(src)
        td, tname = self._parent(dst)
        self._call(src, self._core.rename, sd, sname, td, tname, noreplace)

    def chmod(self, path: str, mode: int):
        self._call(path, self._core.setattr, self._namei(path), mode)

    def chown(self, path: str, uid: int | None, gid: int | None):
        self._call(path, self._core.setattr, self._namei(path), None, uid, gid)

    def utime(self, path: str, mtime_us: int, atime_us: int | None = None):
        self._call(path, self._core.setattr, self._namei(path), None, None, None,
                   atime_us, mtime_us)

    def flush(self):
        self._core.flush()

    def _algo(self, path, recursive, comp=-1, check=-1):
        paths = [path]
        if recursive and self.stat(path).type == "dir":
            paths += [os.path.join(d, n) for d, dirs, files in self.walk(path)
                      for n in dirs + files]
        for p in paths:
            self._call(p, self._core.setalgo, self._namei(p), comp, check)
        return len(paths)

    def setcomp(self, path: str, spec: str, recursive: bool = False) -> int:
        """New writes below path use compression spec ('lz4', 'zlib:9'...)."""
        return self._algo(path, recursive, comp=comp_algo(spec))

    def setcheck(self, path: str, spec: str, recursive: bool = False) -> int:
        return self._algo(path, recursive, check=check_algo(spec))

    def destroy(self, path: str):
        """Remove a (possibly damaged) entry without reading its inode."""
        dinum, name = self._parent(path)
        self._call(path, self._core.destroy_dirent, dinum, name)

    def destroy_inum(self, inum: int):
        self._call(f"inode {inum:#x}", self._core.destroy_inum, inum)

    def orphans(self) -> list[Stat]:
        """The files with no name left: a mount's server stopped while they were open
        after their last unlink. destroy_inum() removes one, and a bulkfree then takes
        back its blocks."""
        return [Stat.from_meta(self._call(self.label, self._core.inode, inum)[0])
                for inum in self._call(self.label, self._core.orphans)]

    def blocks(self, path: str) -> list[dict]:
        """Every blockref below the inode at path, depth first."""
        inum = self._namei(path)
        raw = self._core.inode(inum)[1]["raw"]
        out = []

        def collect(depth, bref, data, error):
            if depth:
                out.append({k: bref[k] for k in ("type", "key", "keybits", "data_off",
                                                 "bytes", "comp", "check")} | {"depth": depth})

        stats, errors = self.volume.device.walk_bref(raw, collect)
        if errors:
            raise H2Error(errno.EIO, f"{path}: {errors[0]}")
        return out


# A device URI's own colons (nbd://HOST:PORT/EXPORT, mem:NAME) do not separate volumes.
_URI = re.compile(r"nbd\+unix://[^:]*|[a-z][a-z0-9+.-]*://[^/]*/?|mem:")


def split_volumes(spec: str) -> list[str]:
    """VOL0:VOL1:... -> its parts, each a path or a device URI."""
    parts, i = [], 0
    while True:
        m = _URI.match(spec, i)
        j = spec.find(":", m.end() if m else i)
        parts.append(spec[i:] if j < 0 else spec[i:j])
        if j < 0:
            return parts
        i = j + 1


def volume_paths(path) -> list[str]:
    """The volumes of one filesystem: a list of paths or device URIs, or one of them, or
    VOL0:VOL1:... (DragonFly's way to name a multi-volume filesystem)."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        return [os.fspath(p) for p in path]
    path = os.fspath(path)
    return [path] if os.path.exists(path) else split_volumes(path)


def lock_images(paths, shared: bool = False) -> list[int]:
    """flocks on the local images and devices among paths (a device URI has no local
    file): exclusive for a writer, so there is one per image across pyh2 processes,
    mounts included; shared for a read-only mount, which keeps writers out. Returns the
    descriptors holding them (unlock() lets go)."""
    fds = []
    try:
        for p in (v for spec in paths for v in volume_paths(spec)):
            # only images and devices: the core refuses the rest, naming them
            # (opening a FIFO would wait for a writer, a socket fails)
            try:
                mode = os.stat(p).st_mode
            except (OSError, ValueError):      # absent, a device URI, a NUL inside
                continue
            if not (_stat.S_ISREG(mode) or _stat.S_ISBLK(mode)):
                continue
            fds.append(os.open(p, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK))
            try:
                fcntl.flock(fds[-1], (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) |
                            fcntl.LOCK_NB)
            except BlockingIOError:
                raise H2Error(errno.EBUSY, f"{p}: mounted or opened for writing by another "
                                           f"pyh2 process") from None
    except BaseException:
        unlock(fds)
        raise
    return fds


def unlock(fds: list[int]):
    for fd in fds:
        os.close(fd)
    fds.clear()


def one_at_a_time(method):
    """For the methods that hand the node list to the core: the core takes the nodes'
    locks only once it runs, so a node swapped (and its old device closed) by another
    thread in between (a cluster's resync worker) would leave it a closed device."""
    @functools.wraps(method)
    def run(self, *args, **kw):
        with self._nodes_lock:
            return method(self, *args, **kw)
    return run


class Volume:
    """An opened HAMMER2 image or device: `with pyh2.open(path) as vol:`; a
    multi-volume filesystem by the list of its volumes (or "VOL0:VOL1:...")."""

    def __init__(self, path, writable: bool = False):
        self.volumes = volume_paths(path)
        self.path = ":".join(self.volumes)
        self.writable = writable
        self._nodes_lock = threading.RLock()
        self.locks = lock_images(self.volumes) if writable else []
        try:
            self.device = _core.Device(self.volumes, writable)
        except H2Error as e:
            unlock(self.locks)
            if e.errno == errno.ENOENT:
                raise H2Error(e.errno, e.strerror, self.path) from None
            raise
        self.devices = [self.device]        # the nodes (one; see cluster.py)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        # a clean exit commits; after an error the last flush stands
        try:
            if exc_type is None and self.writable:
                self.flush()
        finally:
            self.close()

    def flush(self):
        """Commit every pending modification (a new volume header)."""
        self.device.flush()

    def close(self):
        """Close without committing: what was not flushed is discarded (the last
        flush stands), as when the `with` block ends with an exception."""
        try:
            self.device.close()
        finally:
            unlock(self.locks)

    @property
    def best_zone(self) -> int:
        return self.device.best_zone

    @property
    def warnings(self) -> list[str]:
        return self.device.warnings

    @property
    def size(self) -> int:
        return self.device.size

    def volume_headers(self) -> list[dict]:
        return self.device.volume_headers()

    @one_at_a_time
    def pfs_list(self) -> list[PfsInfo]:
        return [PfsInfo.from_core(d) for d in _core.pfs_list(self.devices)]

    @one_at_a_time
    def pfs(self, label: str = "DATA") -> Pfs:
        return Pfs(self, _core.Pfs(self.devices, label))

    # ----------------------------------------------------- administration

    @one_at_a_time
    def pfs_create(self, label: str, type: str = "MASTER", clid: str | None = None,
                   comp: str = "lz4", check: str = "xxhash64"):
        codes = {v: k for k, v in PFS_TYPES.items()}
        if type.upper() not in codes or type.upper() in ("NONE", "SUPROOT", "DUMMY"):
            raise H2Error(errno.EINVAL, f"unknown PFS type '{type}'")
        raw = uuid.UUID(clid).bytes_le if clid else None
        _core.pfs_create(self.devices, label, codes[type.upper()], raw,
                         comp_algo(comp), check_algo(check))

    @one_at_a_time
    def pfs_delete(self, label: str):
        if any(p.info["label"] == label for d in self.devices for p in d.open_pfs()):
            raise H2Error(errno.EBUSY, f"PFS '{label}' is in use (open)")
        _core.pfs_delete(self.devices, label)

    @one_at_a_time
    def snapshot(self, source: str = "DATA", label: str | None = None,
                 path: str = "/") -> str:
        """Snapshot PFS source (or its directory path) as a new PFS; the
        default label is SOURCE.YYYYMMDD.HHMMSS."""
        label = label or f"{source}.{time.strftime('%Y%m%d.%H%M%S')}"
        self.flush()                        # a snapshot shares flushed blocks
        pfs = Pfs(self, _core.Pfs(self.devices, source))
        try:
            pfs._call(path, pfs._core.snapshot, label, pfs._namei(path))
        finally:
            pfs.close()
        return label

    def bulkfree(self) -> int:
        """Free every block nothing references; returns the bytes freed."""
        return self.device.bulkfree()

    def growfs(self, size: int):
        self.device.growfs(size)

    def fsck(self, zone: int | None = None) -> dict:
        """Walk and verify the volume and freemap trees of one header copy
        (default: the one in use), what reads check of every blockref,
        inode, directory entry and data block (on the copy in use, each
        PFS's namespace through the read functions too), and the freemap
        against the tree.  Counts are per blockref visit; leaked space is
        reported, not an error (only a bulkfree reclaims it)."""
        zone = self.best_zone if zone is None else zone
        (vstats, verrors), (fstats, ferrors), (fm, fmerrors) = self.device.fsck_zone(zone)
        result = {k: vstats[k] for k in ("total", "inode", "indirect", "data",
                                         "dirent", "bytes")}
        result.update(zone=zone, freemap_node=fstats["freemap_node"],
                      freemap_leaf=fstats["freemap_leaf"],
                      freemap_total=fstats["total"], freemap_bytes=fstats["bytes"],
                      freemap=fm, errors=verrors + ferrors + fmerrors)
        return result


def open(path, writable: bool = False) -> Volume:  # noqa: A001 - mirrors the builtin
    return Volume(path, writable)


def newfs(path, size=0, label: str = "DATA", volhdrs: int = 0,
          comp: str = "lz4", check: str = "xxhash64", aux: int = 0):
    """Format a file (created or resized to size bytes) or a device as a
    HAMMER2 volume holding the PFSes `label` and LOCAL; or several volumes
    (a list, or "VOL0:VOL1:...") as one filesystem, size then a list of
    each volume's size (0: the file's or device's own). aux: the size of
    the aux area, never allocated (newfs_hammer2 -r; 0: nominal)."""
    volumes = volume_paths(path)
    if isinstance(size, int) and len(volumes) > 1 and size:
        raise H2Error(errno.EINVAL, f"{len(volumes)} volumes need a size each")
    locks = lock_images(volumes)
    try:
        _core.newfs(volumes, size if size or len(volumes) == 1 else [0] * len(volumes),
                    label, volhdrs, comp_algo(comp), check_algo(check), aux=aux)
    finally:
        unlock(locks)


__all__ = ["Volume", "Pfs", "PfsInfo", "Stat", "DirEntry", "H2Error", "CheckError", "open",
           "newfs"]
