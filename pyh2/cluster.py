"""Clusters: one PFS kept on N nodes (images or devices) as masters.

`newfs_cluster` formats every node with the same cluster id; `open_cluster`
opens them as one volume whose PFSes read through the first valid node
and write to every node.  Quorum, node failures and resync are the C
core's (hammer2_quorum.c, hammer2_resync.c); this module drives them."""
from __future__ import annotations

import errno
import hashlib
import os
import time

from . import _core
from .volume import (H2Error, Volume, check_algo, comp_algo, lock_images, one_at_a_time,
                     unlock, volume_paths)


def _node_paths(paths) -> list[str]:
    """1 to MAX_NODES distinct nodes (one file given twice would be
    written as two)."""
    paths = [os.fspath(p) for p in paths]
    if not 1 <= len(paths) <= _core.MAX_NODES:
        raise H2Error(errno.EINVAL, f"a cluster has 1 to {_core.MAX_NODES} nodes, "
                                    f"not {len(paths)}")
    volumes = [os.path.realpath(v) for p in paths for v in volume_paths(p)]
    if len(set(volumes)) != len(volumes):
        raise H2Error(errno.EINVAL, f"{','.join(paths)}: a cluster's nodes must be distinct")
    return paths


def newfs_cluster(paths, size: int = 0, label: str = "DATA", volhdrs: int = 0,
                  comp: str = "lz4", check: str = "xxhash64") -> str:
    """Format every node with PFS `label` as a MASTER of one cluster
    (same cluster id, pfs_nmasters = number of nodes); returns the id."""
    paths = _node_paths(paths)
    clid = os.urandom(16)
    for p in paths:
        _core.newfs(volume_paths(p), size, label, volhdrs, comp_algo(comp), check_algo(check),
                    len(paths), clid)
    return _core.uuid_str(clid)


class ClusterVolume(Volume):
    """N nodes opened as one volume: `with pyh2.open_cluster([...]) as vol:`.
    The Volume API applies to the cluster; vol.devices are the nodes,
    vol.device the first live one, vol.nodes() their state.  The node list,
    its lock and a sync thread per node (writable, with sync=True) are the
    core's: a node that leaves the cluster is brought back on its own."""

    def __init__(self, paths, writable: bool = False, sync: bool = True,
                 retry_max: float = 10.0):
        self.paths = _node_paths(paths)
        self.path = ",".join(self.paths)
        self.writable = writable
        self.devices = []
        self.nodeset = None
        self.locks = lock_images(self.paths) if writable else []
        try:
            for p in self.paths:
                try:
                    self.devices.append(_core.Device(volume_paths(p), writable))
                except H2Error as e:
                    raise H2Error(e.errno, e.strerror, p) from None
            self.nodeset = _core.NodeSet(self.devices, writable and sync,
                                         int(retry_max * 1000))
        except BaseException:
            self.close()
            raise
        self._nodes_lock = self.nodeset

    @property
    def device(self):
        """The first live node (the one elements are read from): what the
        single-device parts of the Volume API (headers, blocks) look at."""
        for d, n in zip(self.devices, self.nodes()):
            if n["state"] == "live":
                return d
        return self.devices[0]

    def flush(self):
        """Commit on every live node; fails below quorum."""
        self.nodeset.flush()

    def close(self):
        try:
            if self.nodeset is not None:
                self.nodeset.close()
            for d in self.devices:
                d.close()
        finally:
            unlock(self.locks)

    def nodes(self) -> list[dict]:
        """Per node: path, state ('live', 'stale', 'failed'), errno, why,
        read_errors (elements it could not serve), healed (of those,
        rewritten from another node at a commit), encodes_copied (data
        blocks whose encoding its commits copied from another node's),
        mirror_tid, and 'sync', its sync thread: running, paused, passes
        (of the resync under way or last), syncs (times it brought the node back),
        done_elems/done_bytes and left_elems/left_bytes of the sync under
        way (left: at most), last_error."""
        return [self.nodeset.status(i) for i in range(len(self.devices))]

    def node_volumes(self) -> list[Volume]:
        """A Volume view of each node (sharing the cluster's devices)."""
        return [_node_volume(self, d) for d in self.devices]

    def bulkfree(self) -> int:
        """bulkfree on every live node; the bytes freed."""
        return self.nodeset.bulkfree()

    @one_at_a_time
    def growfs(self, size: int):
        for d in self.devices:
            d.growfs(size)

    # ------------------------------------------------------------ resync

    def reopen_failed(self) -> list[str]:
        """Reopen every failed node from its media (its in-memory state is
        not trusted), in place under the open PFSes; it comes back stale."""
        failed = [i for i, n in enumerate(self.nodes()) if n["state"] == "failed"]
        for i in failed:
            self.nodeset.reopen(i)
        return [self.paths[i] for i in failed]

    def resync(self) -> dict:
        """Bring every stale or failed node back now, one after the other
        (what the sync threads do on their own); returns {path: counts}."""
        return {n["path"]: self._resync_node(i)
                for i, n in enumerate(self.nodes()) if n["state"] != "live"}

    def _resync_node(self, i: int, scrub: bool = False) -> dict:
        """Resync node i (reopened first if failed), each element from the
        first live node that serves it; a failure leaves it half copied,
        so the core reopens it from its media and tries once more."""
        return self.nodeset.resync(i, scrub)

    def wait_live(self, timeout: float = 60.0) -> list[dict]:
        """Wait until the sync threads have every node live (H2Error
        ETIMEDOUT naming those still out); returns nodes()."""
        end = time.monotonic() + timeout
        while True:
            nodes = self.nodes()
            out = [n for n in nodes if n["state"] != "live"]
            if not out:
                return nodes
            if time.monotonic() > end:
                raise H2Error(errno.ETIMEDOUT, "nodes still out of the cluster: " + "; ".join(
                    f"{n['path']} {n['state']} ({n['sync']['last_error'] or n['why']})"
                    for n in out))
            time.sleep(0.02)

    def scrub(self) -> dict:
        """Read back every node in turn (its check codes verified) and
        replace what fails from any other live node that reads it; returns
        {path: counts} (counts['repaired']; counts['lost']: what no node
        could read, each with its 'path').  Needs a quorum without the
        node scrubbed."""
        done = {self.paths[i]: self._resync_node(i, True)
                for i in range(len(self.devices))}
        for st in done.values():
            for lost in st["lost"]:
                lost["path"] = self._lost_path(lost)
        return done

    def _lost_path(self, lost: dict) -> str:
        """Where an element no node could read lies: PFS:path (of the inode
        holding it), and the key (a file offset for data)."""
        where = "super-root" if not lost["pfs"] else f"{lost['pfs']}:inode {lost['inum']}"
        if lost["pfs"]:
            try:
                pfs = self.pfs(lost["pfs"])
            except H2Error:
                pfs = None
            if pfs is not None:
                try:
                    for path in _inode_paths(pfs, lost["inum"]):
                        where = f"{lost['pfs']}:{path}"
                        break
                finally:
                    pfs.close()
        what = "offset" if lost["type"] == "data" else "key"
        return f"{where} {lost['type']} {what} {lost['key']:#x}"

    def compare(self) -> list[str]:
        """Differences between the nodes' logical trees (every PFS but the
        node-local LOCAL): one message per path that differs."""
        trees = [_logical_tree(v) for v in self.node_volumes()]
        problems = []
        for path in sorted(set().union(*trees)):
            values = [t.get(path) for t in trees]
            if any(v != values[0] for v in values):
                who = ", ".join(f"{p}: {_describe(v)}" for p, v in zip(self.paths, values))
                problems.append(f"{path} differs ({who})")
        return problems


def _node_volume(cluster: ClusterVolume, device) -> Volume:
    """A Volume view of one node of an open cluster (shares its device)."""
    v = Volume.__new__(Volume)
    v.path, v.writable, v.device, v.devices = device.path, cluster.writable, device, [device]
    v._nodes_lock, v.locks = cluster._nodes_lock, []     # the cluster's lock; none of its own
    return v


def _logical_tree(vol: Volume) -> dict:
    """{PFS:path: what a reader sees} of every PFS but LOCAL."""
    tree = {}
    for info in vol.pfs_list():
        if info.label == "LOCAL":
            continue
        pfs = vol.pfs(info.label)
        try:
            for top, dirs, files in pfs.walk("/"):
                for name in [""] + dirs + files:
                    path = os.path.join(top, name) if name else top
                    if name == "" and top != "/":
                        continue
                    st = pfs.stat(path)
                    entry = (st.type, st.mode, st.uid, st.gid, st.size, st.nlinks,
                             st.mtime_us, st.inum)
                    if st.type == "file":
                        entry += (_digest(pfs, path, st.size),)
                    elif st.type == "symlink":
                        entry += (pfs.readlink(path),)
                    tree[f"{info.label}:{path}"] = entry
        except H2Error as e:
            tree[f"{info.label}:"] = ("unreadable", str(e))
        finally:
            pfs.close()
    return tree


def _inode_paths(pfs, inum: int):
    """The paths naming inode inum (a PFS walk)."""
    if inum == 1:
        yield "/"
    for top, dirs, files in pfs.walk("/"):
        for name in dirs + files:
            path = os.path.join(top, name)
            if pfs.stat(path).inum == inum:
                yield path


def _digest(pfs, path: str, size: int, chunk: int = 4 << 20) -> str:
    h = hashlib.sha256()
    for off in range(0, size, chunk):
        h.update(pfs.read(path, off, min(chunk, size - off)))
    return h.hexdigest()


def _describe(v) -> str:
    if v is None:
        return "absent"
    if v[0] == "unreadable":
        return v[1]
    return f"{v[0]} mode {v[1]:o} size {v[4]} mtime {v[6]}" + (f" sha256 {v[8][:12]}"
                                                            if len(v) > 8 else "")


def resync_cluster(paths, scrub: bool = False) -> dict:
    """`pyh2 resync`: open the cluster, resync every stale node to
    completion (then scrub every node), commit."""
    with open_cluster(paths, writable=True, sync=False) as vol:     # done here, to completion
        done = vol.resync()
        if scrub:
            for path, st in vol.scrub().items():
                done[path] = {k: v + done.get(path, {}).get(k, 0) for k, v in st.items()}
        return done


def open_cluster(paths, writable: bool = False, sync: bool = True,
                 retry_max: float = 10.0) -> ClusterVolume:
    """sync: a thread per node brings back a node that leaves the cluster
    (writable clusters); retry_max: the longest wait, in seconds, between
    attempts at a node that cannot come back (an NBD server gone)."""
    return ClusterVolume(paths, writable, sync, retry_max)
