"""Cluster writes share a data block's copy between the nodes and encode
it once (csrc/hammer2_dbuf.c): the other nodes copy the first one's
encoding, and a block written again takes a private copy first, so what
every node commits is exactly what was written."""
import os

from pyh2.cluster import open_cluster

from pyh2.testing.cli import run_pyh2
from pyh2.testing.nodes import assert_all_nodes

KiB = 1 << 10


def test_each_block_is_encoded_once_for_all_nodes(cluster_nodes):
    paths = cluster_nodes(3)
    model = {}
    with open_cluster(paths, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        for i in range(4):      # 4 blocks each, compressible and not
            data = os.urandom(128 * KiB) + bytes([i]) * (128 * KiB)
            pfs.create(f"/f{i}", data)
            model[f"/f{i}"] = data
        vol.flush()
        copied = [n["encodes_copied"] for n in vol.nodes()]
    # one node encoded each of the 16 blocks, the two others copied it
    assert sum(copied) == 2 * 16 and max(copied) <= 16, copied
    assert_all_nodes(paths, model)
    proc = run_pyh2("fsck", "--cluster", ",".join(paths))
    assert proc.returncode == 0, proc.stderr.decode()


def test_a_block_written_again_before_the_commit(cluster_nodes):
    """Rewrites, growth and truncation of blocks the nodes share, all in
    one transaction: each node commits the last version."""
    paths = cluster_nodes(3)
    with open_cluster(paths, writable=True, sync=False) as vol:
        pfs = vol.pfs("DATA")
        data = bytearray(os.urandom(300 * KiB))
        pfs.create("/f", bytes(data))
        for off in (0, 70 * KiB, 299 * KiB):
            pfs.write("/f", b"again" * 100, off)
            data[off:off + 500] = b"again" * 100
        pfs.truncate("/f", 200 * KiB + 10)
        del data[200 * KiB + 10:]
        pfs.write("/f", b"tail", 400 * KiB)
        data += bytes(400 * KiB - len(data)) + b"tail"
        small = os.urandom(3000)
        pfs.create("/g", small)             # a short block, then grown
        pfs.write("/g", b"x" * 5000, 3000)
        vol.flush()
        assert pfs.read("/f") == bytes(data)
    assert_all_nodes(paths, {"/f": bytes(data), "/g": small + b"x" * 5000})
    proc = run_pyh2("fsck", "--cluster", ",".join(paths))
    assert proc.returncode == 0, proc.stderr.decode()
