"""A 3-node cluster whose nodes sit on an image file, a loop device and an nbdkit
export: a tree imported and read back; NBD read errors met by failover, a failed node
and a resync; an nbdkit server killed mid-write met by quorum and a resync."""
import os
import re
import threading
import time

import pytest

from pyh2 import refimages
from pyh2 import _core, newfs_cluster, open_cluster
from pyh2.importer import Importer

MiB = 1 << 20
SIZE = 128 * MiB
BOUND = 60          # seconds: a hang fails the test instead of stalling the run


@pytest.fixture(autouse=True)
def no_hang(watchdog):
    watchdog(BOUND)
@pytest.fixture
def backing(tmp_path):
    """Three sparse files backing the nodes."""
    paths = [tmp_path / f"node{i}.img" for i in range(3)]
    for p in paths:
        with open(p, "wb") as f:
            f.truncate(SIZE)
    return paths


def assert_nodes_identical(uris):
    """Every node live, the same transaction, the same logical tree, fsck clean."""
    with open_cluster(uris) as vol:
        nodes = vol.nodes()
        assert [n["state"] for n in nodes] == ["live"] * len(uris), nodes
        assert len({n["mirror_tid"] for n in nodes}) == 1, nodes
        assert vol.compare() == []
        for node in vol.node_volumes():
            assert node.fsck()["errors"] == []


def write_files(vol, count, seed):
    files = {f"/f{i}": os.urandom(100_000 + (seed * 7919 + i * 65_537) % 300_000)
             for i in range(count)}
    pfs = vol.pfs("DATA")
    for name, data in files.items():
        pfs.create(name, data)
    vol.flush()
    return files


def test_tree_over_file_loop_and_nbd(cluster_nodes, sample_tree):
    uris = cluster_nodes(3, kind=["file", "loop", "nbd"], size=SIZE)
    src = sample_tree
    with open_cluster(uris, writable=True, sync=False) as vol:
        Importer(vol.pfs("DATA")).run(str(src))
        vol.flush()
    with open_cluster(uris) as vol:
        diffs = refimages.compare_trees(refimages.tree_from_dir(src),
                                        refimages.tree_from_volume(vol.pfs("DATA")))
    assert not diffs, "\n".join(diffs[:20])
    assert_nodes_identical(uris)


def test_nbd_read_errors_fail_the_node_then_resync(tmp_path, backing, loop_device,
                                                   nbd_server):
    """nbdkit fails 5% of the NBD node's reads (the first node, where reads go first):
    every read returns the validated data; rewriting reads each node's blocks, so the
    node misses a modification and leaves the cluster (failed, or stale when the
    flush finds it behind); with the filter lifted, a resync makes the nodes
    identical."""
    trigger = tmp_path / "fail-reads"
    srv = nbd_server(backing[0], filters={"error": {
        "error-pread": "EIO", "error-pread-rate": "5%", "error-pread-file": trigger}})
    uris = [srv.uri, str(backing[1]), loop_device(backing[2]).uri]
    newfs_cluster(uris)
    with open_cluster(uris, writable=True, sync=False) as vol:
        files = write_files(vol, 24, 1)
    with open_cluster(uris, writable=True, sync=False) as vol:
        trigger.touch()
        pfs = vol.pfs("DATA")
        for name, data in files.items():
            assert pfs.read(name) == data, name
        for rnd in range(20):
            if vol.nodes()[0]["state"] != "live":
                break
            _core.dio_purge(vol.devices[0])
            for name, data in files.items():
                files[name] = data[:1000] + bytes([rnd]) * 4096 + data[5096:]
                pfs.write(name, files[name][1000:5096], 1000)
            vol.flush()
        node = vol.nodes()[0]
        assert node["state"] in ("failed", "stale") and node["read_errors"] > 0, node
        for name, data in files.items():
            assert pfs.read(name) == data, name
        trigger.unlink()
        vol.resync()
    with open_cluster(uris) as vol:
        pfs = vol.pfs("DATA")
        for name, data in files.items():
            assert pfs.read(name) == data, name
    assert_nodes_identical(uris)


def test_nbd_server_killed_mid_write(backing, loop_device, nbd_server):
    """Writes stall in nbdkit, which is killed: the NBD node is disconnected and
    fails, the flush is acknowledged by the other two (bounded: no hang), the cluster
    goes on; with the server restarted, a resync brings the node back identical."""
    nodes = [str(backing[0]), loop_device(backing[1]).uri]
    plain = nbd_server(backing[2])
    newfs_cluster(nodes + [plain.uri])
    with open_cluster(nodes + [plain.uri], writable=True, sync=False) as vol:
        files = write_files(vol, 4, 2)
    plain.stop()
    slow = nbd_server(backing[2], filters={"delay": {"delay-write": "20"}})
    with open_cluster(nodes + [slow.uri], writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        files.update({f"/late{i}": os.urandom(500_000) for i in range(4)})
        for name in (n for n in files if n.startswith("/late")):
            pfs.create(name, files[name])
        killer = threading.Timer(0.5, slow.kill)
        killer.start()
        vol.flush()
        killer.join()
        node = vol.nodes()[2]
        assert node["state"] == "failed" and "disconnected" in node["why"], node
        files["/after"] = b"written with the NBD node out" * 1000
        pfs.create("/after", files["/after"])
        vol.flush()
        for name, data in files.items():
            assert pfs.read(name) == data, name
    uris = nodes + [nbd_server(backing[2]).uri]
    with open_cluster(uris, writable=True, sync=False) as vol:
        assert [n["state"] for n in vol.nodes()] == ["live", "live", "stale"]
        vol.resync()
        pfs = vol.pfs("DATA")
        for name, data in files.items():
            assert pfs.read(name) == data, name
    assert_nodes_identical(uris)


def test_nbd_node_reconnects_and_catches_up_on_its_own(backing, nbd_server):
    """The NBD node's server dies: the node fails, the cluster goes on; its sync
    thread keeps trying (backing off) and, once the server is back on the same
    socket, reconnects, resyncs what it missed and rejoins, nobody asking."""
    srv = nbd_server(backing[2])
    uris = [str(backing[0]), str(backing[1]), srv.uri]
    newfs_cluster(uris)
    with open_cluster(uris, writable=True, retry_max=0.5) as vol:
        files = write_files(vol, 3, 4)
        srv.kill()
        for i in range(2):
            files[f"/late{i}"] = os.urandom(200_000)
            vol.pfs("DATA").create(f"/late{i}", files[f"/late{i}"])
        vol.flush()                             # the node fails here
        node = vol.nodes()[2]
        assert node["state"] != "live", node
        assert node["sync"]["syncs"] == 0
        srv.start()                             # back, same socket
        nodes = vol.wait_live(30)
        assert nodes[2]["sync"]["syncs"] == 1, nodes[2]
        files["/after"] = b"after the reconnect" * 1000
        vol.pfs("DATA").create("/after", files["/after"])
    assert_nodes_identical(uris)
    with open_cluster(uris) as vol:
        pfs = vol.pfs("DATA")
        for name, data in files.items():
            assert pfs.read(name) == data, name


def test_a_slow_node_does_not_hold_up_reads(backing, nbd_server):
    """Node 0 answers every read 200 ms late (nbdkit's delay filter): reads are
    raced by the next node and then start there, so reading 40 blocks takes far
    less than 40 of its delays."""
    plain = nbd_server(backing[0])
    uris = [plain.uri, str(backing[1]), str(backing[2])]
    newfs_cluster(uris)
    files = {}
    with open_cluster(uris, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        for i in range(40):
            files[f"/f{i}"] = os.urandom(60_000)
            pfs.create(f"/f{i}", files[f"/f{i}"])
    plain.stop()
    slow = nbd_server(backing[0], filters={"delay": {"delay-read": "200ms"}})
    uris[0] = slow.uri
    with open_cluster(uris) as vol:
        pfs = vol.pfs("DATA")
        pfs.listdir("/")                        # the inodes' blocks, once
        t = time.perf_counter()
        for name, data in files.items():
            assert pfs.read(name) == data, name
        took = time.perf_counter() - t
        assert took < 40 * 0.2 / 4, took
        assert vol.nodes()[0]["state"] == "live"


def test_large_reads_pass_over_a_slow_node(backing, nbd_server, tmp_path):
    """Node 0 answers every read 200 ms late.  Whole-block file reads (direct,
    straight into the caller's buffer) time their node like any load, and a
    node known to be slow is passed over for one not timed yet: once the
    first file's read has timed node 0, it serves no more of them (its large
    reads counted by nbdkit's log filter; nothing timed here)."""
    uris = [str(p) for p in backing]
    newfs_cluster(uris)
    files = {f"/f{i}": os.urandom(MiB) for i in range(12)}
    with open_cluster(uris, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        for name, data in files.items():
            pfs.create(name, data)
    log = tmp_path / "node0.log"
    # the log filter first: it sees each request before the delay
    slow = nbd_server(backing[0], filters={"log": {"logfile": str(log)},
                                           "delay": {"delay-read": "200ms"}})

    def node0_large_reads():
        counts = re.findall(r" Read id=\d+ offset=0x[0-9a-f]+ count=0x([0-9a-f]+)",
                            log.read_text())
        return sum(int(c, 16) > 64 * 1024 for c in counts)

    with open_cluster([slow.uri] + uris[1:]) as vol:
        pfs = vol.pfs("DATA")
        names = list(files)
        assert pfs.read(names[0]) == files[names[0]]
        before = node0_large_reads()
        for name in names[1:]:
            assert pfs.read(name) == files[name], name
        assert node0_large_reads() == before, log.read_text()
        assert vol.nodes()[0]["state"] == "live"
