"""An in-memory model of a PFS tree for the write-path tests.

The model takes the same write calls as pyh2.Pfs (create, mkdir, mkfifo, symlink, write,
truncate, link, unlink, rmdir, rename, chmod, chown, utime) and renders itself in the manifest
shape of pyh2.refimages (`manifest()`), so `refimages.compare_trees(model.manifest(),
refimages.tree_from_volume(pfs))` compares a live PFS against it.

Timestamps follow POSIX: creating, removing or renaming an entry sets its directory's mtime
(both directories for a rename), a write or truncate sets the file's mtime, chmod/chown leave it.
Such "now" mtimes are rendered as a `Within` value, equal to any second between the model's
creation and the `manifest()` call.

File contents are immutable bytes, each with its digest (`_core.digest`, what
`_core.digest_tree` reads from a volume) computed once per content: `view()` renders the
model in digest_tree's shape for the torture's checks, and `clone()` copies the tree's
nodes but shares every content and digest.

`Mirror(pfs, model)` applies every call to both.
"""
from __future__ import annotations

import hashlib
import itertools
import time

from pyh2 import _core

NOW = object()  # an mtime set by the filesystem while the test ran
H2TYPES = {"dir": 1, "file": 2, "fifo": 4, "symlink": 7}    # HAMMER2 object types


class Within:
    """Compares equal to an int in [lo, hi] (a time in seconds during the test)."""

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = lo, hi

    def __eq__(self, other):
        if isinstance(other, Within):
            return (self.lo, self.hi) == (other.lo, other.hi)
        return isinstance(other, int) and self.lo <= other <= self.hi

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = None

    def __repr__(self):
        return f"<a time in [{self.lo}, {self.hi}]>"


_ids = itertools.count(1)


class Node:
    __slots__ = ("id", "type", "mode", "mtime_us", "_data", "_digest", "_sha256", "_size",
                 "target", "uid", "gid", "children")

    def __init__(self, ftype: str, mode: int, mtime_us, data=b"", target: str | None = None,
                 sha256: str | None = None, size: int | None = None):
        self.id = next(_ids)
        self.type = ftype
        self.mode = mode & 0o7777
        self.mtime_us = mtime_us          # int, or NOW
        self._data = None if sha256 else bytes(data)
        self._digest = None               # of _data, once asked for
        self._sha256 = sha256             # known digest of data not loaded yet
        self._size = size
        self.target = target
        self.uid = self.gid = 0
        self.children: dict[str, Node] | None = {} if ftype == "dir" else None

    def copy(self) -> "Node":
        """The same node (id, attributes, shared contents), children not copied."""
        c = Node.__new__(Node)
        for k in Node.__slots__:
            setattr(c, k, getattr(self, k))
        return c

    # data is loaded lazily for nodes taken from a manifest (only the digest is known)
    def data(self, loader=None) -> bytes:
        if self._data is None:
            if loader is None:
                raise RuntimeError("model file data is not loaded")
            raw = bytes(loader())
            assert hashlib.sha256(raw).hexdigest() == self._sha256, "loaded data differs"
            self._data, self._sha256 = raw, None
        return self._data

    def set_data(self, data: bytes):
        self._data, self._digest = data, None

    @property
    def size(self) -> int:
        if self.type == "symlink":
            return len(self.target.encode())
        return len(self._data) if self._data is not None else self._size

    @property
    def sha256(self) -> str:
        return self._sha256 or hashlib.sha256(self._data).hexdigest()

    @property
    def digest(self) -> int:
        """_core.digest of the contents (computed once per content)."""
        if self._digest is None:
            self._digest = _core.digest(self.data())
        return self._digest


def _split(path: str) -> tuple[str, str]:
    assert path.startswith("/") and path != "/", path
    head, _, name = path.rstrip("/").rpartition("/")
    return head or "/", name


class Model:
    def __init__(self, loader=None):
        """loader(path) -> bytes of a file whose data the model knows only by digest."""
        self.root = Node("dir", 0o755, NOW)
        self.loader = loader
        self.t0 = int(time.time()) - 1

    # -------------------------------------------------------------- lookup
    def node(self, path: str) -> Node:
        n = self.root
        for part in path.split("/"):
            if part:
                n = n.children[part]
        return n

    def exists(self, path: str) -> bool:
        try:
            self.node(path)
            return True
        except (KeyError, TypeError):
            return False

    def _dir(self, path: str) -> tuple[Node, str]:
        head, name = _split(path)
        d = self.node(head)
        assert d.type == "dir", head
        return d, name

    def _add(self, path: str, node: Node) -> Node:
        d, name = self._dir(path)
        assert name not in d.children, f"model: {path} exists"
        d.children[name] = node
        d.mtime_us = NOW
        return node

    def clone(self) -> "Model":
        """An independent copy (a committed state kept while this one changes): new nodes,
        hardlinks still shared, contents (immutable) shared with this model."""
        m = Model.__new__(Model)
        m.loader, m.t0 = self.loader, self.t0
        copies = {}

        def copy(n):
            c = copies.get(n.id)
            if c is None:
                c = copies[n.id] = n.copy()
                if n.children is not None:
                    c.children = {k: copy(v) for k, v in n.children.items()}
            return c
        m.root = copy(self.root)
        return m

    def filedata(self, path: str) -> bytes:
        return self.node(path).data(lambda: self.loader(path))

    # -------------------------------------------------------------- the Pfs write API
    def create(self, path, data=b"", mode=0o644, uid=0, gid=0, mtime_us=None):
        n = self._add(path, Node("file", mode, NOW if mtime_us is None else mtime_us, data))
        n.uid, n.gid = uid, gid

    def mkdir(self, path, mode=0o755, uid=0, gid=0, mtime_us=None):
        n = self._add(path, Node("dir", mode, NOW if mtime_us is None else mtime_us))
        n.uid, n.gid = uid, gid

    def mkfifo(self, path, mode=0o644, uid=0, gid=0, mtime_us=None):
        n = self._add(path, Node("fifo", mode, NOW if mtime_us is None else mtime_us))
        n.uid, n.gid = uid, gid

    def symlink(self, target, path, uid=0, gid=0, mtime_us=None):
        n = self._add(path, Node("symlink", 0o777, NOW if mtime_us is None else mtime_us,
                                 target=target))
        n.uid, n.gid = uid, gid

    def write(self, path, data, offset=0):
        n = self.node(path)
        buf = n.data(lambda: self.loader(path))
        gap = bytes(max(0, offset - len(buf)))
        n.set_data(b"".join((buf[:offset], gap, data, buf[offset + len(data):])))
        n.mtime_us = NOW

    def truncate(self, path, size):
        n = self.node(path)
        buf = n.data(lambda: self.loader(path))
        n.set_data(buf[:size] if size <= len(buf) else buf + bytes(size - len(buf)))
        n.mtime_us = NOW

    def link(self, src, dst):
        n = self.node(src)
        assert n.type != "dir"
        self._add(dst, n)

    def unlink(self, path):
        d, name = self._dir(path)
        assert d.children[name].type != "dir"
        del d.children[name]
        d.mtime_us = NOW

    def rmdir(self, path):
        d, name = self._dir(path)
        n = d.children[name]
        assert n.type == "dir" and not n.children
        del d.children[name]
        d.mtime_us = NOW

    def rename(self, src, dst, noreplace=False):
        sd, sname = self._dir(src)
        td, tname = self._dir(dst)
        n = sd.children[sname]
        old = td.children.get(tname)
        if old is n:
            return
        assert not (noreplace and old is not None)
        del sd.children[sname]
        td.children[tname] = n
        sd.mtime_us = td.mtime_us = NOW

    def chmod(self, path, mode):
        self.node(path).mode = mode & 0o7777

    def chown(self, path, uid, gid):
        n = self.node(path)
        n.uid = n.uid if uid is None else uid
        n.gid = n.gid if gid is None else gid

    def utime(self, path, mtime_us, atime_us=None):
        self.node(path).mtime_us = mtime_us

    def flush(self):
        pass

    # -------------------------------------------------------------- rendering
    def walk(self):
        """(path, node) for every entry below the root, parents first."""
        stack = [("", self.root)]
        while stack:
            prefix, d = stack.pop()
            for name in sorted(d.children):
                n = d.children[name]
                p = f"{prefix}/{name}"
                yield p, n
                if n.type == "dir":
                    stack.append((p, n))

    def paths(self) -> list[str]:
        return [p for p, _ in self.walk()]

    def view(self) -> dict:
        """{path: (h2type, mode, uid, gid, size, nlinks, data, mtime_us or NOW, node id)},
        data a file's digest, a symlink's target, else None: _core.digest_tree's shape (the
        node id in place of the inode number), for verify.diff_view."""
        entries = list(self.walk())
        nlinks = {}
        for _, n in entries:
            nlinks[n.id] = nlinks.get(n.id, 0) + 1
        return {p: (H2TYPES[n.type], n.mode, n.uid, n.gid, n.size, nlinks[n.id],
                    n.digest if n.type == "file" else n.target, n.mtime_us, n.id)
                for p, n in entries}

    def manifest(self) -> list[dict]:
        """The model as a refimages/NAME.json tree."""
        now = Within(self.t0, int(time.time()) + 1)
        entries = list(self.walk())
        nlinks = {}
        for _, n in entries:
            nlinks[n.id] = nlinks.get(n.id, 0) + 1
        out = []
        for p, n in entries:
            mtime = now if n.mtime_us is NOW else n.mtime_us // 1_000_000
            e = {"path": p, "type": n.type, "mode": n.mode, "mtime": mtime}
            if n.type == "file":
                e["size"] = n.size
                e["sha256"] = n.sha256
                if nlinks[n.id] > 1:
                    e["nlinks"] = nlinks[n.id]
                    e["link_group"] = n.id
            elif n.type == "symlink":
                e["target"] = n.target
                e["size"] = n.size
            out.append(e)
        return out

    @classmethod
    def from_manifest(cls, tree: list[dict], loader=None) -> "Model":
        """A model of a reference image's tree (files known by digest; loader(path) -> bytes
        reads one when a test modifies it)."""
        m = cls(loader)
        groups = {}
        for e in sorted(tree, key=lambda e: e["path"].count("/")):
            mtime_us = e["mtime"] * 1_000_000
            if e["type"] == "file":
                g = e.get("link_group")
                if g is not None and g in groups:
                    m._dir(e["path"])[0].children[_split(e["path"])[1]] = groups[g]
                    continue
                n = Node("file", e["mode"], mtime_us, sha256=e["sha256"], size=e["size"])
                if g is not None:
                    groups[g] = n
            elif e["type"] == "symlink":
                n = Node("symlink", e["mode"], mtime_us, target=e["target"])
            else:
                n = Node(e["type"], e["mode"], mtime_us)
            m._dir(e["path"])[0].children[_split(e["path"])[1]] = n
        return m


class Mirror:
    """Applies each write call to a pyh2.Pfs and to a Model; reads go to the Pfs."""

    WRITES = ("create", "mkdir", "mkfifo", "symlink", "write", "truncate", "link", "unlink",
              "rmdir", "rename", "chmod", "chown", "utime")

    def __init__(self, pfs, model: Model):
        self.pfs, self.model = pfs, model

    def __getattr__(self, name):
        if name not in self.WRITES:
            return getattr(self.pfs, name)

        def both(*args, **kw):
            if name in ("write", "truncate"):
                self.model.filedata(args[0])      # load the data before it changes
            result = getattr(self.pfs, name)(*args, **kw)
            getattr(self.model, name)(*args, **kw)
            return result
        return both


def watchdog(seconds: float):
    """Kill the process (dumping every thread's stack to stderr) if the caller is not done
    within seconds: a deadlock in the core then fails one test (under pytest-xdist the worker
    dies and is replaced) instead of hanging the run. Returns the cancel function."""
    import faulthandler
    import sys
    faulthandler.dump_traceback_later(seconds, exit=True, file=sys.__stderr__)
    return faulthandler.cancel_dump_traceback_later
