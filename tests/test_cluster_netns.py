"""A cluster across hosts: two nodes are nbdkit exports inside network namespaces
joined to this one by veth pairs, the cluster mounted here through FUSE. One
node's link is cut while a writer fsyncs, then restored: the node reconnects and
catches up on its own; nothing fsync acknowledged is lost, and every node ends
identical and fsck clean."""
import os
import random
import shutil
import socket
import subprocess
import threading
import time

import pytest

import pyh2
from pyh2.testing.fusemount import mounted
from pyh2 import newfs_cluster, open_cluster

MiB = 1 << 20
PORT = 10809


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Host:
    """A network namespace joined to this one by a veth pair, serving `image`
    with nbdkit on its side of the link."""

    def __init__(self, name, net, base, image):
        self.ns, self.image = name, image
        self.outside, self.inside = f"{name}o", f"{name}i"
        self.here, self.addr = f"{net}.{base + 1}", f"{net}.{base + 2}"
        self.server = None

    def up(self):
        ip("netns", "add", self.ns)
        ip("link", "add", self.outside, "type", "veth", "peer", "name", self.inside)
        ip("link", "set", self.inside, "netns", self.ns)
        ip("addr", "add", f"{self.here}/30", "dev", self.outside)
        ip("link", "set", self.outside, "up")
        ip("-n", self.ns, "addr", "add", f"{self.addr}/30", "dev", self.inside)
        ip("-n", self.ns, "link", "set", self.inside, "up")
        ip("-n", self.ns, "link", "set", "lo", "up")
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "nbdkit", "--foreground", "-i", self.addr,
             "-p", str(PORT), "file", str(self.image)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:                             # reached over the link
            try:
                socket.create_connection((self.addr, PORT), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nbdkit did not start"
                time.sleep(0.05)

    def uri(self):
        return f"nbd://{self.addr}:{PORT}/?timeout=2"

    def link(self, state):
        ip("link", "set", self.outside, state)

    def down(self):
        if self.server is not None:
            self.server.kill()
            self.server.wait()
        ip("netns", "del", self.ns, check=False)          # takes its veth pair along
        ip("link", "del", self.outside, check=False)


@pytest.fixture
def hosts(tmp_path):
    """Two namespaced hosts (skipped where namespaces cannot be made)."""
    tag = f"h2{os.getpid() % 100000}"
    probe = ip("netns", "add", f"{tag}p", check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace: {probe.stderr.strip()}")
    ip("netns", "del", f"{tag}p", check=False)
    net = f"10.{random.randrange(64, 250)}.{random.randrange(0, 250)}"
    made = []
    try:
        for i in range(2):
            image = tmp_path / f"remote{i}.img"
            with open(image, "wb") as f:
                f.truncate(256 * MiB)
            made.append(Host(f"{tag}{i}", net, 4 * i, image))
            made[-1].up()
        yield made
    finally:
        for h in made:
            h.down()


def mirror_tid(image):
    with pyh2.open(str(image)) as vol:
        return next(h["mirror_tid"] for h in vol.volume_headers() if h["best"])


def test_cluster_across_hosts_survives_a_cut_link(tmp_path, hosts):
    local = tmp_path / "local.h2"
    uris = [str(local)] + [h.uri() for h in hosts]
    newfs_cluster(uris, 256 * MiB)
    tree = tmp_path / "tree"
    for d in range(4):
        os.makedirs(tree / f"d{d}")
        for i in range(10):
            (tree / f"d{d}" / f"f{i}").write_bytes(os.urandom(1000 * (i + 1)))
    mnt = tmp_path / "mnt"
    acked, errors = {}, []
    with mounted(",".join(uris), mnt, "--retry-max", "1"):
        shutil.copytree(tree, mnt / "tree")

        def writer(stop):
            i = 0
            try:
                while not stop.is_set():
                    data = os.urandom(20_000)
                    with open(mnt / f"w{i}", "wb") as f:
                        f.write(data)
                        f.flush()
                        os.fsync(f.fileno())
                    acked[f"w{i}"] = data
                    i += 1
            except OSError as e:
                errors.append(e)

        stop = threading.Event()
        t = threading.Thread(target=writer, args=(stop,))
        t.start()
        try:
            time.sleep(1)
            hosts[1].link("down")                   # node 2 cut off
            time.sleep(5)
            behind = mirror_tid(hosts[1].image) < mirror_tid(local)
            hosts[1].link("up")
            before = len(acked)
            time.sleep(3)
        finally:
            stop.set()
            t.join()
        assert errors == [] and len(acked) > before, (errors, len(acked))
        assert behind, "the cut did not stop the node's commits"
        os.sync()
        deadline = time.monotonic() + 30            # its sync thread catches up
        while mirror_tid(hosts[1].image) != mirror_tid(local):
            assert time.monotonic() < deadline, "the cut-off node never caught up"
            time.sleep(0.2)
    with open_cluster(uris) as vol:
        assert [n["state"] for n in vol.nodes()] == ["live"] * 3
        assert vol.compare() == []
        for node in vol.node_volumes():
            assert node.fsck()["errors"] == []
        pfs = vol.pfs("DATA")
        for name, data in acked.items():
            assert pfs.read(f"/{name}") == data, name
        for d in range(4):
            for i in range(10):
                assert pfs.read(f"/tree/d{d}/f{i}") == (tree / f"d{d}" / f"f{i}").read_bytes()
