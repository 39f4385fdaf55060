"""Clusters of 1, 2, 3 and 5 nodes: layout, fan-out of writes, quorum,
resync, snapshots and the cluster commands."""
import contextlib
import errno
import os
import threading

import pytest

import pyh2
from pyh2 import _core
from pyh2.cluster import newfs_cluster, open_cluster, resync_cluster

from pyh2.testing.cli import assert_clean_failure, run_pyh2
from pyh2.testing.nodes import assert_all_nodes, node_tree, populate

MiB = 1 << 20


@contextlib.contextmanager
def no_commit(paths):
    """A writable cluster closed without the closing flush (for tests that
    leave it below quorum, where that flush must fail)."""
    vol = open_cluster(paths, writable=True, sync=False)
    try:
        yield vol
    finally:
        vol.close()


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_newfs_cluster_masters_share_one_cluster_id(n, cluster_nodes):
    paths = cluster_nodes(n)
    infos = []
    for p in paths:
        with pyh2.open(p) as vol:
            infos.append({d["label"]: d for d in _core.pfs_list([vol.device])})
    clids = {i["DATA"]["clid"] for i in infos}
    assert len(clids) == 1
    for i in infos:
        assert i["DATA"]["pfs_type"] == 0x06                    # MASTER
        assert i["DATA"]["pfs_nmasters"] == (n if n > 1 else 0)
        assert i["LOCAL"]["clid"] not in clids                  # node-local
    assert len({i["DATA"]["fsid"] for i in infos}) == n         # each node its own


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_writes_reach_every_node(n, cluster_nodes):
    paths = cluster_nodes(n)
    model = {}
    with open_cluster(paths, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        populate(pfs, model, "a")
        pfs.rename("/a/f0", "/a/g0")
        model["/a/g0"] = model.pop("/a/f0")
        pfs.unlink("/a/f1")
        del model["/a/f1"]
        pfs.write("/a/f2", b"XYZ", 10)
        d = bytearray(model["/a/f2"])
        d[10:13] = b"XYZ"
        model["/a/f2"] = bytes(d)
        assert [n_["state"] for n_ in vol.nodes()] == ["live"] * n
    assert_all_nodes(paths, model)
    with open_cluster(paths) as vol:
        assert vol.compare() == []
        assert len({n_["mirror_tid"] for n_ in vol.nodes()}) == 1


def test_flush_needs_a_quorum(cluster_nodes):
    paths = cluster_nodes(3)
    model = {}
    with no_commit(paths) as vol:
        pfs = vol.pfs("DATA")
        populate(pfs, model, "a", 2)
        vol.flush()
        vol.devices[0].inject_fault("write")
        populate(pfs, model, "b", 2)
        vol.flush()                                     # 2 of 3: acknowledged
        nodes = vol.nodes()
        assert [x["state"] for x in nodes] == ["failed", "live", "live"]
        assert "injected" in nodes[0]["why"] and nodes[0]["errno"] == errno.EIO
        assert pfs.read("/b/f1") == model["/b/f1"]      # served by the others
        vol.devices[1].inject_fault("enospc")
        pfs.create("/lost", b"never acknowledged")
        with pytest.raises(pyh2.H2Error) as ei:
            vol.flush()
        assert "1 of 3 nodes, quorum 2" in str(ei.value)
        with pytest.raises(pyh2.H2Error) as ei:
            pfs.create("/refused", b"x")
        assert ei.value.errno == errno.EROFS
        assert "1 of 3 nodes live, quorum 2" in str(ei.value)
        assert pfs.read("/a/f0") == model["/a/f0"]      # reads still served
    # node 2 alone committed the refused transaction: with no quorum the
    # newest node serves reads, none may write; with nothing to commit the
    # closing flush is no error
    with open_cluster(paths, writable=True, sync=False) as vol:
        assert [x["state"] for x in vol.nodes()] == ["stale", "stale", "live"]
        with pytest.raises(pyh2.H2Error) as ei:
            vol.pfs("DATA").create("/refused", b"x")
        assert "quorum 2" in str(ei.value)
        assert vol.pfs("DATA").read("/b/f0") == model["/b/f0"]
    # below quorum a resync refuses, naming it
    with pytest.raises(pyh2.H2Error) as ei:
        resync_cluster(paths)
    assert "quorum 2" in str(ei.value)


def test_five_nodes_survive_two_failures(cluster_nodes):
    paths = cluster_nodes(5)
    model = {}
    with open_cluster(paths, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        populate(pfs, model, "a", 3)
        vol.flush()
        vol.devices[1].inject_fault("disconnect")
        vol.devices[3].inject_fault("write", after=2)
        populate(pfs, model, "b", 3)
        vol.flush()
        assert [x["state"] for x in vol.nodes()] == ["live", "failed", "live", "failed", "live"]
        assert vol.nodes()[1]["errno"] == errno.ENOTCONN
        populate(pfs, model, "c", 2)                    # still 3 of 5
    stats = resync_cluster(paths)
    assert sorted(stats) == [paths[1], paths[3]]
    assert_all_nodes(paths, model)
    with no_commit(paths) as vol:
        for i in (0, 1, 2):
            vol.devices[i].inject_fault("enospc")
        vol.pfs("DATA").create("/x", b"x")
        with pytest.raises(pyh2.H2Error, match="2 of 5 nodes, quorum 3"):
            vol.flush()


def test_resync_copies_only_what_the_node_missed(cluster_nodes):
    paths = cluster_nodes(3)
    model = {}
    with open_cluster(paths, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        for t in "abcdefgh":
            populate(pfs, model, t, 4)
        vol.flush()
    total = sum(len(v) for v in model.values() if v != "dir")
    # node 2 misses a ninth of the data
    with open_cluster(paths, writable=True, sync=False) as vol:
        vol.devices[2].inject_fault("write")
        pfs = vol.pfs("DATA")
        populate(pfs, model, "z", 4)
        pfs.unlink("/a/f0")
        del model["/a/f0"]
        vol.flush()
        assert vol.nodes()[2]["state"] == "failed"
    missed = sum(1000 * (i + 1) for i in range(4))     # zero runs are holes
    stats = resync_cluster(paths)[paths[2]]
    assert stats["skipped"] > 0 and stats["deleted"] >= 1
    assert missed <= stats["bytes"] < total // 4
    assert_all_nodes(paths, model)
    proc = run_pyh2("fsck", "--cluster", ",".join(paths))
    assert proc.returncode == 0, proc.stderr.decode()


def test_online_resync_while_in_use(cluster_nodes):
    """A node opened behind the others is brought back by its sync thread,
    nobody asking, while the cluster is written."""
    paths = cluster_nodes(3)
    model = {}
    with open_cluster(paths, writable=True, sync=False) as vol:
        vol.devices[1].inject_fault("write")
        pfs = vol.pfs("DATA")
        populate(pfs, model, "a", 3)
        vol.flush()
    with open_cluster(paths, writable=True) as vol:
        pfs = vol.pfs("DATA")
        populate(pfs, model, "b", 3)            # concurrently
        nodes = vol.wait_live()
        assert nodes[1]["sync"]["syncs"] == 1 and nodes[1]["sync"]["last_error"] == ""
        assert nodes[0]["sync"]["syncs"] == nodes[2]["sync"]["syncs"] == 0
        populate(pfs, model, "c", 2)            # reaches the rejoined node
        vol.flush()
        assert vol.compare() == []
    assert_all_nodes(paths, model)


@pytest.mark.parametrize("where,kind", [((2,), "write"), ((2,), "enospc"),
                                        ((2,), "disconnect"), ((0,), "read"),
                                        ((0,), "corrupt"), ((0, 1), "read")])
def test_failure_during_resync(where, kind, cluster_nodes):
    """A fault on the node being resynced (2): it is reopened and tried
    again; on one source (0): the other serves what it cannot; on every
    source (0, 1): the node stays out, and a later resync brings it back."""
    paths = cluster_nodes(3)
    model = {}
    with open_cluster(paths, writable=True, sync=False) as vol:
        populate(vol.pfs("DATA"), model, "a", 3)
        vol.flush()
        vol.devices[2].inject_fault("write")
        populate(vol.pfs("DATA"), model, "b", 3)
    with open_cluster(paths, writable=True, sync=False) as vol:
        for i in where:
            vol.devices[i].inject_fault(kind, after=1)
        if len(where) == 2:                         # every source fails
            with pytest.raises(pyh2.H2Error) as ei:
                vol.resync()
            assert paths[2] in str(ei.value)
            assert vol.nodes()[2]["state"] != "live"
            for i in where:
                vol.devices[i].clear_fault()
        else:
            assert list(vol.resync()) == [paths[2]]
            assert vol.devices[2].faults_injected == 0     # reopened, if it had faults
            assert [x["state"] for x in vol.nodes()] == ["live"] * 3
        assert vol.pfs("DATA").read("/b/f2") == model["/b/f2"]
    resync_cluster(paths)
    assert_all_nodes(paths, model)


@pytest.mark.parametrize("kind", ["read", "corrupt", "disconnect"])
def test_lookup_fails_over_to_the_next_node(kind, cluster_nodes):
    paths = cluster_nodes(2)
    model = {}
    with open_cluster(paths, writable=True, sync=False) as vol:
        populate(vol.pfs("DATA"), model, "a", 4)
    with open_cluster(paths) as vol:
        vol.devices[0].inject_fault(kind)
        pfs = vol.pfs("DATA")
        for path, data in model.items():
            if data != "dir":
                assert pfs.read(path) == data
        node0 = vol.nodes()[0]
        assert node0["read_errors"] > 0 and vol.devices[0].faults_injected > 0
        # a bad block spoils one element; a disconnect the whole node
        assert node0["state"] == ("failed" if kind == "disconnect" else "live")


def test_read_failure_while_writing_fails_the_node(cluster_nodes):
    paths = cluster_nodes(3)
    model = {}
    with open_cluster(paths, writable=True, sync=False) as vol:
        populate(vol.pfs("DATA"), model, "a", 4)
    with open_cluster(paths, writable=True, sync=False) as vol:
        vol.devices[1].inject_fault("read")
        pfs = vol.pfs("DATA")
        for i in range(4):                      # modifies need the old blocks
            pfs.write(f"/a/f{i}", b"new", 0)
            model[f"/a/f{i}"] = b"new" + model[f"/a/f{i}"][3:]
        vol.flush()
        assert vol.nodes()[1]["state"] in ("failed", "stale")
    resync_cluster(paths)
    assert_all_nodes(paths, model)


def test_snapshot_on_three_nodes_keeps_old_data(cluster_nodes):
    paths = cluster_nodes(3)
    with open_cluster(paths, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        pfs.create("/f", b"old" * 30_000)
        pfs.mkdir("/d")
        label = vol.snapshot("DATA", "snap")
        pfs.write("/f", b"NEW", 0)
        pfs.create("/d/g", b"later")
    for p in paths:
        with pyh2.open(p) as vol:
            snap = vol.pfs(label)
            assert snap.read("/f") == b"old" * 30_000
            assert snap.listdir("/d") == []
            assert vol.pfs("DATA").read("/f")[:6] == b"NEWold"
            assert vol.pfs("DATA").read("/d/g") == b"later"
    proc = run_pyh2("fsck", "--cluster", ",".join(paths))
    assert proc.returncode == 0, proc.stderr.decode()


def test_cluster_commands(tmp_path):
    paths = [str(tmp_path / f"n{i}.h2") for i in range(3)]
    spec = ",".join(paths)
    proc = run_pyh2("newfs", "--cluster", *paths, "--size", "64M")
    assert proc.returncode == 0, proc.stderr
    src = tmp_path / "src.txt"
    src.write_bytes(b"payload\n")
    assert run_pyh2("put", src, f"{spec}:DATA", "/p").returncode == 0
    assert run_pyh2("mkdir", spec, "/dir").returncode == 0
    out = run_pyh2("ls", spec, "/").stdout.decode().split()
    assert out == ["dir", "p"]
    assert run_pyh2("cat", f"{spec}:DATA", "/p").stdout == b"payload\n"
    assert run_pyh2("fsck", "--cluster", spec).returncode == 0
    info = run_pyh2("info", spec).stdout.decode()
    assert [ln.split()[-1] for ln in info.splitlines() if ln.startswith("  live ")] == paths
    # one node edited alone diverges: fsck names the path, resync repairs
    assert run_pyh2("put", src, paths[1], "/alone").returncode == 0
    proc = run_pyh2("fsck", "--cluster", spec)
    assert proc.returncode == 1 and b"DATA:/alone differs" in proc.stderr
    assert b"stale" in run_pyh2("nodes", spec).stdout
    proc = run_pyh2("cat", spec, "/p")                  # served, with a warning
    assert proc.stdout == b"payload\n"
    assert f"warning: node {paths[1]} is stale".encode() in proc.stderr
    proc = run_pyh2("resync", spec)
    assert proc.returncode == 0, proc.stderr
    assert run_pyh2("fsck", "--cluster", spec).returncode == 0
    assert run_pyh2("nodes", spec).stdout.decode().count("live") == 3
    assert node_tree(paths[1]) == {"/dir": "dir", "/p": b"payload\n"}


def test_cluster_command_errors(tmp_path, cluster_nodes):
    paths = cluster_nodes(3)
    proc = run_pyh2("resync", paths[0])
    assert_clean_failure(proc, "not a cluster")
    proc = run_pyh2("ls", f"{paths[0]},{tmp_path / 'missing.h2'}")
    assert_clean_failure(proc, "missing.h2")
    proc = run_pyh2("fsck", "--cluster", paths[0])
    assert_clean_failure(proc, "--cluster needs")
    with pytest.raises(pyh2.H2Error, match="distinct"):
        newfs_cluster([paths[0], paths[0]], 64 * MiB)
    with pytest.raises(pyh2.H2Error, match="1 to 8 nodes"):
        open_cluster([])


def test_raw_scan_sees_indirect_blocks_on_every_node(cluster_nodes):
    paths = cluster_nodes(3)
    with open_cluster(paths, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        big = pfs.create("/big", os.urandom(65536 * 20))     # > 4 direct blocks
        small = pfs.create("/small", os.urandom(40_000))
        for when in ("modified", "flushed"):
            raw = _core.cluster_scan(pfs._core, big)
            assert [e["type"] for e in raw] == ["indirect"]     # not descended
            assert all(e["nodes"] == [0, 1, 2] and e["parent_ok"] for e in raw)
            # the cluster's bref: no node-local offset, the size kept once on media
            assert all(e["data_off"] == (e["data_off"] & 0x3F) for e in raw)
            assert all((e["bytes"] > 0) == (when == "flushed") for e in raw)
            assert all(e["modified"] == (when == "modified") for e in raw)
            raw = _core.cluster_scan(pfs._core, small)
            assert [(e["type"], e["key"]) for e in raw] == [("data", 0)]
            vol.flush()


def test_two_nodes_resync_at_once_in_background(cluster_nodes):
    paths = cluster_nodes(5)
    model = {}
    with open_cluster(paths, writable=True, sync=False) as vol:
        vol.devices[0].inject_fault("enospc")
        vol.devices[3].inject_fault("disconnect")
        populate(vol.pfs("DATA"), model, "a", 4)
    with open_cluster(paths, writable=True) as vol:
        pfs = vol.pfs("DATA")
        assert pfs.read("/a/f3") == model["/a/f3"]
        populate(pfs, model, "b", 2)
        nodes = vol.wait_live()
        assert [n["sync"]["syncs"] for n in nodes] == [1, 0, 0, 1, 0]
        populate(pfs, model, "c", 2)
    assert_all_nodes(paths, model)


def test_failed_node_is_reopened_and_resynced_in_place(cluster_nodes):
    paths = cluster_nodes(3)
    model = {}
    with open_cluster(paths, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")                   # stays open throughout
        populate(pfs, model, "a", 2)
        vol.flush()
        vol.devices[2].inject_fault("write")
        populate(pfs, model, "b", 2)
        vol.flush()
        assert vol.nodes()[2]["state"] == "failed"
        stats = vol.resync()
        assert list(stats) == [paths[2]] and stats[paths[2]]["copied"] > 0
        assert [x["state"] for x in vol.nodes()] == ["live"] * 3
        assert vol.devices[2].faults_injected == 0       # a fresh open of its media
        populate(pfs, model, "c", 2)            # the open PFS reaches it again
        vol.flush()
        assert vol.compare() == []
    assert_all_nodes(paths, model)


def test_sync_thread_brings_a_failed_node_back(cluster_nodes):
    paths = cluster_nodes(3)
    model = {}
    with open_cluster(paths, writable=True) as vol:
        pfs = vol.pfs("DATA")
        vol.devices[1].inject_fault("disconnect")
        populate(pfs, model, "a", 3)
        vol.flush()                             # node 1 fails here ...
        populate(pfs, model, "b", 2)            # ... and is reopened, resynced
        nodes = vol.wait_live()
        assert nodes[1]["sync"]["syncs"] >= 1
        populate(pfs, model, "c", 1)
    assert_all_nodes(paths, model)


def test_scrub_repairs_a_block_damaged_on_disk(cluster_nodes):
    paths = cluster_nodes(3)
    data = os.urandom(200_000)
    with open_cluster(paths, writable=True, sync=False) as vol:
        vol.pfs("DATA").create("/f", data)
    with pyh2.open(paths[1]) as vol:                    # where node 1 keeps it
        blocks = [b for b in vol.pfs("DATA").blocks("/f") if b["type"] == "data"]
    with open(paths[1], "r+b") as f:                    # rot on the media
        f.seek(blocks[1]["data_off"] + 100)
        f.write(b"\xff" * 64)
    with pyh2.open(paths[1]) as vol:
        with pytest.raises(pyh2.CheckError):
            vol.pfs("DATA").read("/f")
    proc = run_pyh2("fsck", "--cluster", ",".join(paths))
    assert proc.returncode == 1 and b"DATA:/f" in proc.stderr
    with open_cluster(paths) as vol:                    # the others serve it
        assert vol.pfs("DATA").read("/f") == data
    proc = run_pyh2("resync", "--scrub", ",".join(paths))
    assert proc.returncode == 0, proc.stderr
    assert f"{paths[1]}: scrubbed, 1 damaged".encode() in proc.stdout, proc.stdout
    assert_all_nodes(paths, {"/f": data})


def test_a_node_of_another_cluster_is_never_written_until_resynced(cluster_nodes):
    paths = cluster_nodes(3)
    pyh2.newfs(paths[2], 64 * MiB)                  # replaced by a blank image
    with pytest.raises(pyh2.H2Error, match="distinct"):
        open_cluster([paths[0], paths[0]])
    model = {}
    with open_cluster(paths, writable=True, sync=False) as vol:
        states = vol.nodes()
        assert [x["state"] for x in states] == ["live", "live", "stale"]
        assert "another cluster" in states[2]["why"]
        vol.device.record(False)
        vol.devices[2].record(True)
        populate(vol.pfs("DATA"), model, "a", 3)
        vol.flush()
        assert vol.devices[2].take_record() == []   # not one write
    stats = resync_cluster(paths)[paths[2]]
    assert stats["skipped"] == 0 and stats["copied"] >= 4
    assert_all_nodes(paths, model)
    with open_cluster(paths) as vol:
        assert [x["state"] for x in vol.nodes()] == ["live"] * 3
        clids = {p["clid"] for d in vol.devices for p in _core.pfs_list([d])
                 if p["label"] == "DATA"}
        assert len(clids) == 1


def test_concurrent_readers_while_a_node_fails(cluster_nodes):
    paths = cluster_nodes(3)
    model = {}
    with open_cluster(paths, writable=True, sync=False) as vol:
        populate(vol.pfs("DATA"), model, "a", 6)
    files = [p for p, v in model.items() if v != "dir"]
    with open_cluster(paths) as vol:
        pfs = vol.pfs("DATA")
        vol.devices[0].inject_fault("read", probability=0.5, seed=7)
        errors = []

        def reader(k):
            try:
                for r in range(5):
                    for path in files[k % 2::2]:
                        assert pfs.read(path) == model[path], path
            except BaseException as e:      # reported below
                errors.append(e)
        threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert vol.nodes()[0]["read_errors"] > 0


def test_blocks_and_headers_come_from_the_first_live_node(cluster_nodes):
    paths = cluster_nodes(3)
    with open_cluster(paths, writable=True, sync=False) as vol:
        vol.devices[0].inject_fault("write")
        vol.pfs("DATA").create("/f", os.urandom(300_000))
    with open_cluster(paths) as vol:
        assert vol.nodes()[0]["state"] == "stale"
        assert vol.device is vol.devices[1]
        blocks = vol.pfs("DATA").blocks("/f")
        assert sum(b["type"] == "data" for b in blocks) == 5
        assert vol.volume_headers()[vol.best_zone]["mirror_tid"] == vol.nodes()[1]["mirror_tid"]


def test_sync_threads_beside_reader_and_writer_threads(cluster_nodes):
    """Two nodes fail while readers and a writer run; their sync threads
    reopen and resync them meanwhile."""
    paths = cluster_nodes(5)
    model = {}
    with open_cluster(paths, writable=True) as vol:
        pfs = vol.pfs("DATA")
        populate(pfs, model, "a", 4)
        vol.flush()
        stop, errors = threading.Event(), []
        readable = {p: v for p, v in model.items() if v != "dir"}

        def reader():
            try:
                while not stop.is_set():
                    for path, data in readable.items():
                        assert pfs.read(path) == data, path
            except BaseException as e:      # reported below
                errors.append(e)

        def writer():
            try:
                for i in range(20):
                    pfs.create(f"/a/w{i}", bytes([i]) * 3000)
                    if i % 5 == 4:
                        vol.flush()
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=reader) for _ in range(2)]
        threads.append(threading.Thread(target=writer))
        vol.devices[4].inject_fault("enospc")
        vol.devices[3].inject_fault("write")
        for t in threads:
            t.start()
        threads[-1].join()
        stop.set()
        for t in threads:
            t.join()
        assert errors == []
        for i in range(20):
            model[f"/a/w{i}"] = bytes([i]) * 3000
        nodes = vol.wait_live()
        assert nodes[3]["sync"]["syncs"] >= 1 and nodes[4]["sync"]["syncs"] >= 1
    assert_all_nodes(paths, model)
