"""Clusters: one PFS kept on N nodes (images or devices) as masters.

`newfs_cluster` formats every node with the same cluster id; `open_cluster`
opens them as one volume whose PFSes read through the first valid node
and write to every node.  Quorum, node failures and resync are the C
core's (hammer2_quorum.c, hammer2_resync.c); this module drives them."""
from __future__ import annotations

import errno
import os

from . import _core
from .volume import H2Error, Volume, check_algo, comp_algo


def newfs_cluster(paths, size: int = 0, label: str = "DATA", volhdrs: int = 0,
                  comp: str = "lz4", check: str = "xxhash64") -> str:
    """Format every node with PFS `label` as a MASTER of one cluster
    (same cluster id, pfs_nmasters = number of nodes); returns the id."""
    paths = [os.fspath(p) for p in paths]
    if not 1 <= len(paths) <= _core.MAX_NODES:
        raise H2Error(errno.EINVAL, f"a cluster has 1 to {_core.MAX_NODES} nodes, "
                                    f"not {len(paths)}")
    if len(set(map(os.path.realpath, paths))) != len(paths):
        raise H2Error(errno.EINVAL, "a cluster's nodes must be distinct")
    clid = os.urandom(16)
    for p in paths:
        _core.newfs(p, size, label, volhdrs, comp_algo(comp), check_algo(check),
                    len(paths), clid)
    return _core.uuid_str(clid)


class ClusterVolume(Volume):
    """N nodes opened as one volume: `with pyh2.open_cluster([...]) as vol:`.
    The Volume API applies to the cluster; vol.device is the first node,
    vol.devices all of them, vol.nodes() their state."""

    def __init__(self, paths, writable: bool = False):
        self.paths = [os.fspath(p) for p in paths]
        if not 1 <= len(self.paths) <= _core.MAX_NODES:
            raise H2Error(errno.EINVAL, f"a cluster has 1 to {_core.MAX_NODES} nodes, "
                                        f"not {len(self.paths)}")
        self.path = ",".join(self.paths)
        self.writable = writable
        self.devices = []
        try:
            for p in self.paths:
                try:
                    self.devices.append(_core.Device(p, writable))
                except H2Error as e:
                    raise H2Error(e.errno, e.strerror, p) from None
            _core.cluster_join(self.devices)
        except BaseException:
            self.close()
            raise
        self.device = self.devices[0]

    def flush(self):
        """Commit on every live node; fails below quorum."""
        _core.cluster_flush(self.devices)

    def close(self):
        for d in self.devices:
            d.close()

    def nodes(self) -> list[dict]:
        """Per node: path, state ('live', 'stale', 'failed'), errno, why,
        read_errors, mirror_tid."""
        return [_core.node_status(d) for d in self.devices]

    def fsck(self, zone: int | None = None) -> dict:
        """fsck of the first node (Volume.fsck); fsck_nodes() checks all."""
        return Volume.fsck(self, zone)

    def fsck_nodes(self) -> list[dict]:
        return [_node_volume(self, d).fsck() for d in self.devices]


def _node_volume(cluster: ClusterVolume, device) -> Volume:
    """A Volume view of one node of an open cluster (shares its device)."""
    v = Volume.__new__(Volume)
    v.path, v.writable, v.device, v.devices = device.path, cluster.writable, device, [device]
    return v


def open_cluster(paths, writable: bool = False) -> ClusterVolume:
    return ClusterVolume(paths, writable)
