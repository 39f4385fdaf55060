"""A resync in passes: the cluster takes writes while a node is brought
back (the resync lets the locks go between its steps), and what those
writes change reaches the node by a later pass before it rejoins."""
import os
import threading
import time

import pyh2
from pyh2 import _core
from pyh2.cluster import open_cluster

from pyh2.testing.cli import run_pyh2
from pyh2.testing.nodes import assert_all_nodes, populate


def behind(paths, model):
    """Node 2 misses directory b (it is stale at the next open)."""
    with open_cluster(paths, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        populate(pfs, model, "a", 4)
        vol.flush()
        vol.devices[2].inject_fault("write")
        populate(pfs, model, "b", 10)
        vol.flush()


def change_everything(pfs, model, tag):
    """Every file of a and b rewritten in part, one removed, one renamed,
    one made: wherever the resync has been and has not."""
    for name in sorted(p for p, v in model.items() if v != "dir"):
        data = bytearray(model[name])
        data[:7] = tag.encode().ljust(7, b"-")
        pfs.write(name, bytes(data[:7]))
        model[name] = bytes(data)
    pfs.unlink(f"/b/f{len(tag)}")
    del model[f"/b/f{len(tag)}"]
    pfs.rename("/a/f0", f"/b/{tag}")
    model[f"/b/{tag}"] = model.pop("/a/f0")
    model["/a/f0"] = pfs_new(pfs, "/a/f0", tag)


def pfs_new(pfs, path, tag):
    data = tag.encode() * 5000
    pfs.create(path, data)
    return data


def wrote_ahead(dev, within=30.0):
    """Whether dev takes a write request while the resync waits, paused:
    the writes it queued go out on their own (the writers run apart)."""
    end = time.monotonic() + within
    while _core.dio_writes(dev) == 0 and time.monotonic() < end:
        time.sleep(0.01)
    return _core.dio_writes(dev) > 0


def resync_in_thread(vol, errors):
    """vol.resync() started in a thread of its own, its error kept in errors."""
    def resync():
        try:
            vol.resync()
        except pyh2.H2Error as e:
            errors.append(e)
    t = threading.Thread(target=resync)
    t.start()
    return t


def test_writes_between_passes_reach_the_node(cluster_nodes):
    paths = cluster_nodes(3)
    model = {}
    behind(paths, model)
    with open_cluster(paths, writable=True, sync=False) as vol:
        assert vol.nodes()[2]["state"] == "stale"
        vol.nodeset.sync_pause(2, 6)        # stop after 6 elements copied
        done = {}
        t = threading.Thread(target=lambda: done.update(vol.resync()))
        t.start()
        try:
            assert vol.nodeset.sync_paused(2)
            node = vol.nodes()[2]
            assert node["state"] == "stale" and node["sync"]["passes"] == 1
            pfs = vol.pfs("DATA")
            # not committed: the resync goes on copying some of these
            # versions, which change again under the same transaction id
            change_everything(pfs, model, "one")
            vol.nodeset.sync_pause(2, 20)
            assert vol.nodeset.sync_paused(2)
            change_everything(pfs, model, "second")
        finally:
            vol.nodeset.sync_pause(2, -1)
            t.join()
        node = vol.nodes()[2]
        assert node["state"] == "live", node
        assert node["sync"]["passes"] >= 2          # a pass caught up the writes
        assert done[paths[2]]["copied"] > 20
        vol.flush()
        assert vol.compare() == []
    assert_all_nodes(paths, model)
    proc = run_pyh2("fsck", "--cluster", ",".join(paths))
    assert proc.returncode == 0, proc.stderr.decode()


def test_closing_during_a_paused_resync_keeps_the_node_as_it_was(cluster_nodes):
    """Given up half way (the cluster closes), the node's copy so far is
    let go: its media still holds its last transaction, and a later resync
    brings it back."""
    paths = cluster_nodes(3)
    model = {}
    behind(paths, model)
    with open_cluster(paths) as vol:
        tid = vol.nodes()[2]["mirror_tid"]
    vol = open_cluster(paths, writable=True, sync=False)
    errors = []
    try:
        vol.nodeset.sync_pause(2, 6)
        t = resync_in_thread(vol, errors)
        assert vol.nodeset.sync_paused(2)
        pfs = vol.pfs("DATA")
        change_everything(pfs, model, "gone")
        vol.flush()
    finally:
        vol.nodeset.close()      # wakes the paused resync, which gives up
        t.join()
        vol.close()
    assert len(errors) == 1 and "closing" in str(errors[0])
    with open_cluster(paths) as vol:
        node = vol.nodes()[2]
        assert node["state"] == "stale" and node["mirror_tid"] == tid
    assert run_pyh2("fsck", paths[2]).returncode == 0
    with open_cluster(paths, writable=True, sync=False) as vol:
        vol.resync()
        assert vol.compare() == []
    assert_all_nodes(paths, model)


def test_a_resync_writes_what_it_copied_before_it_commits(cluster_nodes):
    """The data blocks a resync copies go to the node's device while it walks
    on (written ahead), not all at its commit."""
    paths = cluster_nodes(3)
    big = os.urandom(8 << 20)                   # 128 data blocks
    with open_cluster(paths, writable=True, sync=False) as vol:
        vol.devices[2].inject_fault("write")
        vol.pfs("DATA").create("/big", big)
        vol.flush()
    with open_cluster(paths, writable=True, sync=False) as vol:
        assert vol.nodes()[2]["state"] == "stale"
        vol.nodeset.sync_pause(2, 100)          # past one write-ahead batch
        t = threading.Thread(target=vol.resync)
        t.start()
        try:
            assert vol.nodeset.sync_paused(2)
            assert vol.nodes()[2]["state"] == "stale"
            assert wrote_ahead(vol.devices[2])
        finally:
            vol.nodeset.sync_pause(2, -1)
            t.join()
        assert vol.nodes()[2]["state"] == "live"
        assert vol.compare() == []
    with pyh2.open(paths[2]) as node:
        assert node.pfs("DATA").read("/big") == big
        assert node.fsck()["errors"] == []


def test_a_resync_writes_the_sources_encoding_as_it_is(cluster_nodes):
    """A copied data block is written as the sources hold it (compression
    and check code), not encoded again by the node's own settings."""
    paths = cluster_nodes(3)
    text = b"hammer2 " * (1 << 17)               # 1 MiB that compresses well
    with open_cluster(paths, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        pfs.setcomp("/", "none")
        vol.flush()
        vol.devices[2].inject_fault("write")
        pfs.create("/f", text)                  # stored uncompressed
        vol.flush()
        pfs.setcomp("/f", "lz4")                # its new writes would compress
        vol.flush()
    with open_cluster(paths, writable=True, sync=False) as vol:
        vol.resync()
        assert vol.compare() == []

    def data_blocks(path):
        with pyh2.open(path) as node:
            assert node.pfs("DATA").read("/f") == text
            return [(b["key"], b["bytes"], b["comp"], b["check"])
                    for b in node.pfs("DATA").blocks("/f") if b["type"] == "data"]

    source = data_blocks(paths[0])
    assert len(source) == 16 and all(n == 65536 for _, n, _, _ in source)
    assert data_blocks(paths[2]) == source


def test_a_resync_given_up_after_writing_ahead_is_retried_from_the_media(cluster_nodes):
    """The cluster changes under a paused resync that wrote data ahead: the
    copy is given up and the node reopened from its media (what the copy did
    to its freemap and to an open PFS's chains goes with it); the retry
    brings it back whole."""
    paths = cluster_nodes(5)
    big = os.urandom(8 << 20)
    with open_cluster(paths, writable=True, sync=False) as vol:
        vol.devices[4].inject_fault("write")
        vol.pfs("DATA").create("/big", big)
        vol.flush()
    errors = []
    with open_cluster(paths, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        assert pfs.read("/big") == big
        vol.nodeset.sync_pause(4, 100)
        t = resync_in_thread(vol, errors)
        try:
            assert vol.nodeset.sync_paused(4)
            assert wrote_ahead(vol.devices[4])
            vol.devices[3].inject_fault("write")        # node 3 fails meanwhile
            pfs.create("/small", b"x" * 100_000)
            vol.flush()
            assert vol.nodes()[3]["state"] == "failed"
        finally:
            vol.nodeset.sync_pause(4, -1)
            t.join()
        assert errors == [] and vol.nodes()[4]["state"] == "live", (errors, vol.nodes())
        assert pfs.read("/big") == big
        vol.devices[3].clear_fault()
        vol.resync()                                    # node 3 back too
        assert vol.compare() == []
    with pyh2.open(paths[4]) as node:
        assert node.pfs("DATA").read("/big") == big
        assert node.pfs("DATA").read("/small") == b"x" * 100_000
        assert node.fsck()["errors"] == []


def test_a_second_resync_of_a_node_waits_for_the_first(cluster_nodes):
    """Two resyncs of one node (its sync thread's and an explicit one) take
    turns: the second copies nothing while the first is paused between its
    steps, then finds the node back and has nothing left to copy."""
    paths = cluster_nodes(3)
    model = {}
    behind(paths, model)
    done = {}

    def resync(name):
        done[name] = vol.nodeset.resync(2)

    with open_cluster(paths, writable=True, sync=False) as vol:
        vol.nodeset.sync_pause(2, 6)
        first = threading.Thread(target=resync, args=("first",))
        first.start()
        second = threading.Thread(target=resync, args=("second",))
        try:
            assert vol.nodeset.sync_paused(2)
            copied = vol.nodes()[2]["sync"]["done_elems"]
            second.start()
            second.join(0.3)
            assert second.is_alive()                    # waiting its turn
            assert vol.nodes()[2]["sync"]["done_elems"] == copied
        finally:
            vol.nodeset.sync_pause(2, -1)
            first.join()
            if second.ident:
                second.join()
        assert vol.nodes()[2]["state"] == "live"
        assert done["first"]["copied"] > 6 and done["second"]["copied"] == 0, done
        assert vol.compare() == []
    assert_all_nodes(paths, model)
