"""Healing damage at rest: scrub replaces, element by element, whatever a
node cannot read from any node that can; only what no node can read is
reported (by path and offset)."""
import os
import random

import pytest

import pyh2
from pyh2.cluster import open_cluster

from pyh2.testing.cli import assert_clean_failure, run_pyh2
from pyh2.testing.nodes import assert_all_nodes

TYPES = {"inode", "indirect", "data", "dirent"}


def fill(paths, seed, nfiles=240):
    """A tree of nfiles files in a dozen directories; returns the model."""
    rng = random.Random(seed)
    model = {}
    with open_cluster(paths, writable=True) as vol:
        pfs = vol.pfs("DATA")
        for d in range(12):
            pfs.mkdir(f"/d{d}")
            model[f"/d{d}"] = "dir"
        for i in range(nfiles):
            data = rng.randbytes(rng.choice([100, 3000, 20_000, 70_000]))
            pfs.create(f"/d{i % 12}/f{i}", data)
            model[f"/d{i % 12}/f{i}"] = data
    return model


def live_blocks(path):
    """(media offset, bytes) of every block of the volume tree but the
    volume header: inodes, indirect blocks, data, directory entries."""
    out = []

    def visit(depth, bref, data, error):
        if bref["bytes"] and bref["type"] in TYPES:
            out.append((bref["data_off"], bref["bytes"]))
    with pyh2.open(path) as vol:
        vol.device.walk_zone(vol.best_zone, False, visit)
    return sorted(out)


def rot(path, blocks, rng):
    """512 random bytes (at most the block) at a random place in each block."""
    with open(path, "r+b") as f:
        for off, n in blocks:
            f.seek(off + rng.randrange(0, max(1, n - 512)))
            f.write(rng.randbytes(min(512, n)))


def assert_identical_and_clean(paths, model):
    proc = run_pyh2("fsck", "--cluster", ",".join(paths))
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert_all_nodes(paths, model)


@pytest.mark.parametrize("n,damaged", [(3, 2), (5, 3)])
def test_scrub_heals_damage_spread_over_nodes(n, damaged, cluster_nodes):
    """300 rotten blocks on each of `damaged` nodes, at different places:
    every block still reads on the other nodes, so all of it heals."""
    paths = cluster_nodes(n)
    model = fill(paths, n)
    rng = random.Random(n)
    blocks = live_blocks(paths[1])
    rng.shuffle(blocks)
    per = min(300, len(blocks) // damaged)
    for k in range(damaged):
        rot(paths[1 + k], blocks[k * per:(k + 1) * per], rng)
    with open_cluster(paths) as vol:                    # reads are exact meanwhile
        pfs = vol.pfs("DATA")
        for p in random.Random(0).sample(sorted(model), 40):
            if model[p] != "dir":
                assert pfs.read(p) == model[p], p
    proc = run_pyh2("resync", "--scrub", ",".join(paths))
    assert proc.returncode == 0, proc.stderr.decode()
    repaired = [int(ln.split("scrubbed, ")[1].split()[0])
                for ln in proc.stdout.decode().splitlines() if "scrubbed, " in ln]
    assert repaired[0] == 0 and all(r > 0 for r in repaired[1:1 + damaged]), proc.stdout
    assert_identical_and_clean(paths, model)


def test_online_scrub_heals_while_the_cluster_is_written(cluster_nodes):
    paths = cluster_nodes(3)
    model = fill(paths, 7, nfiles=60)
    rng = random.Random(7)
    blocks = live_blocks(paths[1])
    rng.shuffle(blocks)
    rot(paths[1], blocks[:40], rng)
    rot(paths[2], blocks[40:80], rng)
    with open_cluster(paths, writable=True) as vol:
        pfs = vol.pfs("DATA")
        pfs.mkdir("/new")
        model["/new"] = "dir"
        pfs.create("/new/before", b"b" * 5000)
        model["/new/before"] = b"b" * 5000
        done = vol.scrub()
        nodes = vol.nodes()                         # what reads met healed first
        fixed = [done[p]["repaired"] + n["healed"] for p, n in zip(paths, nodes)]
        assert fixed[0] == 0 and fixed[1] > 0 and fixed[2] > 0, (done, nodes)
        assert [x["state"] for x in nodes] == ["live"] * 3
        pfs.create("/new/after", b"a" * 70_000)
        model["/new/after"] = b"a" * 70_000
        assert pfs.read("/new/before") == b"b" * 5000
    assert_identical_and_clean(paths, model)


def test_a_scrub_the_quorum_cannot_spare_leaves_its_node_live(cluster_nodes):
    # one node of two is no quorum without it: the scrub is refused, naming why, and the
    # node stays in (a refused scrub once left it stale, the cluster read-only)
    paths = cluster_nodes(2)
    model = fill(paths, 2, nfiles=12)
    with open_cluster(paths, writable=True) as vol:
        with pytest.raises(pyh2.H2Error) as ei:
            vol.scrub()
        assert "cannot scrub" in str(ei.value) and "quorum 2" in str(ei.value)
        assert [n["state"] for n in vol.nodes()] == ["live", "live"]
        vol.pfs("DATA").create("/after", b"a" * 5000)
        model["/after"] = b"a" * 5000
    assert_identical_and_clean(paths, model)


def test_an_element_bad_on_every_node_is_reported_by_path(cluster_nodes):
    paths = cluster_nodes(3)
    good = os.urandom(200_000)
    with open_cluster(paths, writable=True) as vol:
        pfs = vol.pfs("DATA")
        pfs.mkdir("/d")
        pfs.create("/d/lost", os.urandom(200_000))
        pfs.create("/good", good)
    for i, p in enumerate(paths):
        with pyh2.open(p) as vol:
            pfs = vol.pfs("DATA")
            lost = [b for b in pfs.blocks("/d/lost") if b["type"] == "data"][1]
            other = [b for b in pfs.blocks("/good") if b["type"] == "data"][2]
        patches = [(lost["data_off"] + 10, b"\xee" * 64)]
        if i == 1:                                      # only node 1: heals
            patches.append((other["data_off"] + 10, b"\xee" * 64))
        with open(p, "r+b") as f:
            for off, data in patches:
                f.seek(off)
                f.write(data)
    proc = run_pyh2("resync", "--scrub", ",".join(paths))
    assert_clean_failure(proc, "unrecoverable: DATA:/d/lost data offset 0x10000")
    assert b"scrubbed, 1 damaged" in proc.stdout, proc.stdout
    with pyh2.open(paths[1]) as vol:
        assert vol.pfs("DATA").read("/good") == good
    with open_cluster(paths) as vol:
        assert [x["state"] for x in vol.nodes()] == ["live"] * 3
        with pytest.raises(pyh2.CheckError):
            vol.pfs("DATA").read("/d/lost")


def data_block(path, file, index, kind="data"):
    with pyh2.open(path) as vol:
        return [b for b in vol.pfs("DATA").blocks(file) if b["type"] == kind][index]


def smash(path, off):
    with open(path, "r+b") as f:
        f.seek(off + 10)
        f.write(b"\xee" * 64)


def test_a_read_heals_what_a_node_could_not_read_at_the_next_commit(cluster_nodes):
    """A data block and an indirect block rotten on node 0, the one reads go
    through (all nodes as quick): each read fails there, is read again through
    every node and served by the others, and the next flush rewrites both."""
    paths = cluster_nodes(3)
    small, big = os.urandom(200_000), os.urandom(600_000)   # big: > 4 blocks
    with open_cluster(paths, writable=True) as vol:
        vol.pfs("DATA").create("/small", small)
        vol.pfs("DATA").create("/big", big)
    smash(paths[0], data_block(paths[0], "/small", 1)["data_off"])
    smash(paths[0], data_block(paths[0], "/big", 0, "indirect")["data_off"])
    with open_cluster(paths, writable=True) as vol:
        pfs = vol.pfs("DATA")
        assert pfs.read("/small") == small and pfs.read("/big") == big
        nodes = vol.nodes()
        assert nodes[0]["read_errors"] >= 2
        assert [n["healed"] for n in nodes] == [0] * 3
        vol.flush()                                         # nothing else to commit
        nodes = vol.nodes()
        assert [n["state"] for n in nodes] == ["live"] * 3
        assert [n["healed"] for n in nodes] == [2, 0, 0]
    assert_identical_and_clean(paths, {"/small": small, "/big": big})


def super_root(path):
    """(media offset) of the super-root inode, the PFS roots' parent."""
    found = []

    def visit(depth, bref, data, error):
        if bref["type"] == "inode" and not found:
            found.append(bref["data_off"])
    with pyh2.open(path) as vol:
        vol.device.walk_zone(vol.best_zone, False, visit)
    return found[0]


@pytest.mark.parametrize("via", ["pfs", "cluster", "other-pfs", "bulkfree"])
def test_a_healed_super_root_keeps_the_node_in_the_pfs(cluster_nodes, via):
    """The super-root rotten on node 1: the PFSes open without node 1's roots, a commit
    (a PFS's flush, the cluster's, a bulkfree's) heals it there, and from then on node 1
    takes every modification again, in every PFS open over it (it went stale, missing
    them, when a PFS kept its root unreadable)."""
    paths = cluster_nodes(3)
    with open_cluster(paths, writable=True) as vol:
        vol.pfs_create("OTHER")
        vol.pfs("DATA").create("/a", b"a" * 5000)
    smash(paths[1], super_root(paths[1]))
    with open_cluster(paths, writable=True) as vol:
        data, other = vol.pfs("DATA"), vol.pfs("OTHER")
        assert data.read("/a") == b"a" * 5000
        {"pfs": data.flush, "cluster": vol.flush, "other-pfs": data.flush,
         "bulkfree": vol.bulkfree}[via]()                  # heals node 1's super-root
        assert vol.nodes()[1]["healed"] == 1
        target = other if via == "other-pfs" else data
        target.create("/b", b"b" * 7000)
        target.flush()
        assert [n["state"] for n in vol.nodes()] == ["live"] * 3, vol.nodes()
    model = {"/a": b"a" * 5000} if via == "other-pfs" else \
        {"/a": b"a" * 5000, "/b": b"b" * 7000}
    assert_identical_and_clean(paths, model)


def test_a_mount_heals_what_it_reads(tmp_path, cluster_nodes):
    from pyh2.testing.fusemount import mounted
    paths = cluster_nodes(3)
    data = os.urandom(300_000)
    with open_cluster(paths, writable=True) as vol:
        vol.pfs("DATA").create("/f", data)
    smash(paths[0], data_block(paths[0], "/f", 2)["data_off"])
    mnt = tmp_path / "mnt"
    with mounted(",".join(paths), mnt):
        assert (mnt / "f").read_bytes() == data
    proc = run_pyh2("nodes", ",".join(paths))
    assert proc.returncode == 0
    assert_identical_and_clean(paths, {"/f": data})
