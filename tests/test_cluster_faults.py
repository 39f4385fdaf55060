"""Random faults on random nodes at random points (lookups, writes,
flushes): while a quorum holds, every acknowledged (flushed) write
survives, and after a resync every node holds exactly that."""
import os
import random

import pytest

import pyh2
from pyh2.cluster import open_cluster, resync_cluster

from pyh2.testing.nodes import assert_all_nodes

KINDS = ["read", "write", "corrupt", "disconnect", "enospc"]


def apply_op(rng, pfs, model):
    files = sorted(p for p, v in model.items() if v != "dir")
    op = rng.choice(["create", "write", "unlink", "mkdir"] if files else ["create"])
    if op == "create":
        path = f"/d{rng.randrange(3)}/f{rng.randrange(10**6)}"
        if f"/{path.split('/')[1]}" not in model:
            pfs.mkdir(f"/{path.split('/')[1]}")
            model[f"/{path.split('/')[1]}"] = "dir"
        data = rng.randbytes(rng.choice([10, 3000, 70_000]))
        pfs.create(path, data)
        model[path] = data
    elif op == "write":
        path = rng.choice(files)
        off = rng.randrange(len(model[path]) + 1)
        data = rng.randbytes(rng.randrange(1, 5000))
        pfs.write(path, data, off)
        old = model[path]
        new = bytearray(old.ljust(off, b"\0"))
        new[off:off + len(data)] = data
        model[path] = bytes(new)
    elif op == "unlink":
        path = rng.choice(files)
        pfs.unlink(path)
        del model[path]
    else:
        path = f"/m{rng.randrange(10**6)}"
        pfs.mkdir(path)
        model[path] = "dir"


@pytest.mark.parametrize("n,seed", [(2, 1), (3, 2), (3, 3), (5, 4)])
def test_acknowledged_writes_survive_random_faults(n, seed, cluster_nodes):
    rng = random.Random(seed)
    paths = cluster_nodes(n)
    spare = n - (n // 2 + 1)            # failures the quorum tolerates
    model, acked = {}, {}
    for session in range(2):
        with open_cluster(paths, writable=True, sync=False) as vol:
            pfs = vol.pfs("DATA")
            # reads check what this session starts from, through any node
            for path, data in acked.items():
                if data != "dir" and rng.random() < 0.3:
                    assert pfs.read(path) == data, path
            for rnd in range(6):
                # one armed fault at a time, and only while one more
                # failed node leaves a quorum
                live = [i for i, x in enumerate(vol.nodes()) if x["state"] == "live"]
                for i in live:
                    vol.devices[i].clear_fault()
                if n - len(live) < spare and rng.random() < 0.6:
                    vol.devices[rng.choice(live)].inject_fault(
                        rng.choice(KINDS), after=rng.randrange(6), seed=seed)
                for _ in range(rng.randrange(1, 5)):
                    apply_op(rng, pfs, model)
                vol.flush()                     # quorum holds: must succeed
                acked = dict(model)
                states = [x["state"] for x in vol.nodes()]
                assert states.count("live") >= n // 2 + 1, states
                if rnd == 3 and states != ["live"] * n:
                    for d in vol.devices:       # online: failed nodes reopened
                        d.clear_fault()
                    vol.resync()
                    assert [x["state"] for x in vol.nodes()] == ["live"] * n
            for path, data in acked.items():
                if data != "dir":
                    assert pfs.read(path) == data, path
            for d in vol.devices:
                d.clear_fault()
        resync_cluster(paths)
    assert_all_nodes(paths, acked)


def _leave_behind(paths, behind, change):
    """Commit change(pfs) on every node but `behind` (opened as a cluster of
    the others), which is then stale in a cluster of all."""
    with open_cluster([p for i, p in enumerate(paths) if i != behind],
                      writable=True, sync=False) as vol:
        change(vol.pfs("DATA"))


def test_bulkfree_leaves_a_stale_node_stale(cluster_nodes):
    # bulkfree commits a transaction: on a stale node it would claim one of
    # the cluster's, so a resync (or the next join) would skip what it missed
    paths = cluster_nodes(3)
    _leave_behind(paths, 2, lambda pfs: pfs.create("/missed", b"m" * 5000))
    with open_cluster(paths, writable=True, sync=False) as vol:
        before = [x["mirror_tid"] for x in vol.nodes()]
        vol.bulkfree()
        after = [x["mirror_tid"] for x in vol.nodes()]
        assert after[0] == after[1] > before[0] and after[2] == before[2], (before, after)
        vol.resync()
    assert_all_nodes(paths, {"/missed": b"m" * 5000})


def test_elements_only_a_stale_node_holds_are_gone(cluster_nodes):
    # the live nodes deleted them: the cluster neither shows nor touches them
    paths = cluster_nodes(3)
    with open_cluster(paths, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        pfs.create("/f", os.urandom(200_000))
        pfs.create("/gone", b"g")

    def shrink(pfs):
        pfs.truncate("/f", 70_000)
        pfs.unlink("/gone")
    _leave_behind(paths, 1, shrink)
    with open_cluster(paths, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        assert vol.nodes()[1]["state"] == "stale"
        assert pfs.listdir("/") == ["f"]
        pfs.truncate("/f", 0)
        vol.flush()
        vol.resync()
    assert_all_nodes(paths, {"/f": b""})


def test_a_node_that_cannot_read_what_is_modified_leaves(cluster_nodes):
    # it would miss the change (a block failing its check stays unreadable)
    # yet stay live, diverged, at the same transaction
    paths = cluster_nodes(3)
    files = {f"/d/f{i}": b"f" * 3000 for i in range(40)}     # an inode index on disk
    with open_cluster(paths, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        pfs.mkdir("/d")
        for path, data in files.items():
            pfs.create(path, data)
    with open_cluster(paths, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        vol.devices[1].inject_fault("corrupt", limit=1)
        pfs.chmod("/d/f7", 0o600)
        assert vol.devices[1].faults_injected == 1
        vol.devices[1].clear_fault()
        pfs.rename("/d", "/e")
        vol.flush()
        assert pfs.stat("/e/f7").mode & 0o777 == 0o600
        vol.resync()
    with open_cluster(paths) as vol:
        for node in vol.node_volumes():
            assert node.pfs("DATA").stat("/e/f7").mode & 0o777 == 0o600
    assert_all_nodes(paths, {"/e": "dir", **{"/e" + p[2:]: d for p, d in files.items()}})


@pytest.mark.parametrize("after", [0, 1], ids=["header", "tree"])
def test_bulkfree_frees_nothing_by_what_it_could_not_read(after, cluster_nodes):
    # a read failing under bulkfree (the header, a block of the tree) leaves its
    # map of the blocks in use partial: freeing by it frees blocks still in use
    paths = cluster_nodes(3)
    data = os.urandom(300_000)
    with open_cluster(paths, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        pfs.mkdir("/d")
        pfs.create("/d/f", data)
    with open_cluster(paths, writable=True, sync=False) as vol:
        vol.devices[1].inject_fault("read", after=after, limit=1)
        vol.bulkfree()
        assert vol.devices[1].faults_injected == 1
        vol.devices[1].clear_fault()
        vol.resync()
    for p in paths:
        with pyh2.open(p) as node:
            assert node.fsck()["errors"] == [], p
    assert_all_nodes(paths, {"/d": "dir", "/d/f": data})
