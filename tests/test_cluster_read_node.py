"""Cluster reads go through one node, the quickest live one: a slow node holds up
no read (name lookups, inodes and indirect blocks included), and writes still
reach every node."""
import os

from pyh2 import _core
from pyh2.cluster import open_cluster

from pyh2.testing.nodes import assert_all_nodes


def test_a_slow_node_serves_no_read_once_timed(cluster_nodes):
    """Node 0's reads take 250 ms longer (the "slow" test fault).  Once a read
    has timed it (one such read is past the 30 ms below which no node is
    passed over), reading the other files, each under a directory and with an
    indirect block (five data blocks), reads nothing from node 0's device:
    nothing of a read waits on it.  Counted in its DIO loads and slowed reads;
    nothing timed here."""
    paths = cluster_nodes(3)
    model = {"/d": "dir"}
    with open_cluster(paths, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        pfs.mkdir("/d")
        for i in range(8):
            model[f"/d/f{i}"] = os.urandom(300_000)
            pfs.create(f"/d/f{i}", model[f"/d/f{i}"])
    names = sorted(n for n, d in model.items() if d != "dir")
    with open_cluster(paths, writable=True, sync=False) as vol:
        slow = vol.devices[0]
        for dev in vol.devices:
            _core.dio_purge(dev)
        slow.inject_fault("slow", delay_ms=250)
        pfs = vol.pfs("DATA")
        assert pfs.read(names[0]) == model[names[0]]
        assert slow.faults_injected > 0                 # node 0 was read, and timed
        loads, slowed = _core.dio_reads(slow), slow.faults_injected
        others = [_core.dio_reads(d) for d in vol.devices[1:]]
        for name in names[1:]:
            assert pfs.read(name) == model[name], name
        assert (_core.dio_reads(slow), slow.faults_injected) == (loads, slowed)
        assert [_core.dio_reads(d) for d in vol.devices[1:]] != others
        assert [n["state"] for n in vol.nodes()] == ["live"] * 3
        slow.clear_fault()
        # a write after those reads reaches every node
        model["/d/f1"] = b"rewritten"
        pfs.truncate("/d/f1", 0)
        pfs.write("/d/f1", model["/d/f1"], 0)
        pfs.create("/d/new", b"new")
        model["/d/new"] = b"new"
    assert_all_nodes(paths, model)
