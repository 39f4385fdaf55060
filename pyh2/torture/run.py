"""One torture run: a fresh image (or N node images), a stream of ops applied to the PFS
and to the model, checked at every verify point, flush (crash engine) and at the end."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyh2
from pyh2 import _core
from pyh2.cluster import open_cluster
from pyh2.volume import Pfs

from .model import Model

from . import damage, volset
from .crash import CrashEngine, sparse_copy
from .errors import TortureFailure, failure
from .ops import VOLUME_OPS, applicable, apply_path_op
from .verify import Expected, diff_volume

MiB = 1 << 20
KiB = 1 << 10
DIRECT_READ_MIN = (1 * MiB, 128 * KiB)  # by seed: odd ones read small files directly too


@dataclass
class Config:
    seed: int = 0
    nodes: int = 1
    volumes: int = 1                # each node's filesystem: this many volumes (volset.py)
    crash: bool = False
    faults: bool = False            # the op stream carries device faults (see faults.py)
    image_size: int = 256 * MiB
    verify_every: int = 25
    prefix_points: int = 12         # crash points per flush taken from the write prefixes
    torn_points: int = 4            # random subsets per barrier epoch
    sync_threads: bool = True       # see autosync; off: nodes behind resync at reopen

    @property
    def rolls_back(self) -> bool:
        """A fault may take the quorum (the one node, or one node of two): the run then
        recovers to the last flush and the model is rolled back (Run._recover)."""
        return self.faults and self.nodes <= 2

    @property
    def autosync(self) -> bool:
        """Nodes a fault took out come back through the core's sync threads, on their own
        (sync_threads). Not with crash points, or where a fault may take the quorum: a sync
        thread's commit lands between the run's flushes, where neither expects a new state."""
        return self.sync_threads and self.nodes > 2 and not self.crash


class ClusterView:
    """The read side diff_volume needs, over the PFS's nodes (the healthy ones fsck'ed)."""

    def __init__(self, run: "Run"):
        self.run = run

    def fsck(self):
        errors = []
        for i, vol in enumerate(self.run.vols):
            if i not in self.run.tainted():
                errors += [f"node {i}: {e}" for e in vol.fsck()["errors"]]
        return {"errors": errors}

    def pfs_list(self):
        return (self.run.cluster or self.run.vols[0]).pfs_list()

    def pfs(self, label):
        return (self.run.cluster or self.run.vols[0]).pfs(label)


class Run:
    def __init__(self, workdir, cfg: Config):
        self.cfg = cfg
        self.dir = Path(workdir)
        # each node's volume files (one, or cfg.volumes)
        self.images = [volset.paths(self.dir, f"node{i}", cfg.volumes) for i in range(cfg.nodes)]
        volset.newfs(self.images[0], cfg.image_size)
        for img in self.images[1:]:
            _copy(self.images[0], img)
        self.model = Model()
        self.snaps: dict[str, Model] = {}
        self.committed = Expected(self.model.clone(), frozen=True)
        self.crash = CrashEngine(self.images[0], volset.paths(self.dir, "shadow", cfg.volumes),
                                 cfg.seed, cfg.prefix_points, cfg.torn_points) \
            if cfg.crash else None
        self.volumes_used = []          # finish(): node 0's (blocks, bytes) per volume
        self.armed = None               # the node with an armed fault
        self._armed_syncs = -1          # its sync thread's syncs when armed
        self.injected = 0               # faults injected by cleared arms
        self.faulted: set[int] = set()  # nodes that had a fault injected
        self.damaged: set[int] = set()  # nodes whose media was damaged at rest
        self.ops = self.flushes = self.recoveries = self.resyncs = 0
        self._pending = None           # the state a failing flush was committing
        self.result = None             # finish(): {"resynced": [nodes], "damaged": [nodes]}
        self.vols, self.devices, self.pfs, self.cluster = [], [], None, None
        self._direct_min = _core.direct_read_min(DIRECT_READ_MIN[cfg.seed % 2])
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ nodes
    def _open(self):
        if self.cfg.nodes == 1:
            self.vols = [pyh2.open(self.images[0], writable=True)]
            self.devices = [self.vols[0].device]
            self.pfs = Pfs(None, _core.Pfs(self.devices, "DATA"))
        else:
            self.cluster = open_cluster([volset.spec(v) for v in self.images], writable=True,
                                        sync=self.cfg.autosync, retry_max=0.5)
            self.vols = self.cluster.node_volumes()
            self.devices = self.cluster.devices
            self.pfs = self.cluster.pfs("DATA")
            self._rejoin()
        if self.crash:
            self.devices[0].record(True)

    def _rejoin(self):
        """Nodes a fault took out of the cluster missed its later flushes: found stale at
        open, they are resynced from the quorum (by their sync threads, or here) and must
        hold every flush again."""
        out = [i for i, n in enumerate(self.cluster.nodes()) if n["state"] != "live"]
        for i in out:
            if not self.cfg.autosync:
                self.cluster._resync_node(i)
            self.faulted.discard(i)
            self.resyncs += 1
        if out and self.cfg.autosync:
            self.cluster.wait_live(120)

    def _close(self):
        if self.devices:
            self._clear()       # count what the armed fault injected before it goes
        if self.pfs is not None:
            self.pfs.close()
        for v in self.vols if self.cluster is None else [self.cluster]:
            v.close()
        self.vols, self.devices, self.pfs, self.cluster = [], [], None, None

    def tainted(self) -> set[int]:
        """Nodes that had a fault injected, have one armed now, or were damaged."""
        return self.faulted | self.damaged | ({self.armed} if self.armed is not None else set())

    def pending(self) -> int:
        """Faults injected by the armed fault so far."""
        return self.devices[self.armed].faults_injected if self.armed is not None else 0

    @property
    def crash_points(self) -> int:
        return self.crash.checked if self.crash else 0

    @property
    def faults_injected(self) -> int:
        return self.injected + (self.pending() if self.devices else 0)

    # ------------------------------------------------------------ ops
    def step(self, index: int, op):
        try:
            if op[0] in VOLUME_OPS:
                getattr(self, "_" + op[0])(*op[1:])
            else:
                apply_path_op(self.pfs, self.model, op)
            self.ops += 1
            if self.cfg.verify_every and self.ops % self.cfg.verify_every == 0:
                self._verify()
        except TortureFailure as f:
            f.index = index
            raise
        except pyh2.H2Error as e:
            if self._quorum_lost_to_faults():
                self._recover(f"{op!r}: {e}")
            elif self.tainted() and self.cfg.nodes > 1:
                raise TortureFailure("cluster", f"{op!r} failed although only a minority of "
                                     f"nodes {sorted(self.tainted())} had faults: {e}", index)
            else:
                raise failure(op, e, index) from e
        except AssertionError as e:
            raise failure(op, e, index) from None

    def _quorum_lost_to_faults(self) -> bool:
        """Faults took the quorum (the one node, or one node of two): ops may then fail,
        cleanly, and the run recovers as from a fault on a single node. One node stays
        exposed after its fault is cleared: a block read corrupted meanwhile may sit in
        the cache unverified, and fails when first used."""
        if self.cfg.nodes == 1:
            return bool(self.pending() or self.faulted)
        hit = self.faulted | ({self.armed} if self.pending() else set())
        out = {i for i, dev in enumerate(self.devices)
               if _core.node_status(dev)["state"] != "live"}
        return len(out) > self.cfg.nodes - (self.cfg.nodes // 2 + 1) and out <= hit

    def _flush(self):
        new = Expected(self.model.clone(), dict(self.snaps), frozen=True)
        try:
            self.pfs.flush()    # a quorum of nodes commits; a faulted minority drops out
        except pyh2.H2Error:
            self._pending = new
            raise
        if self.crash:
            record = self.devices[0].take_record()
            self.crash.check(record, [self.committed, new], f"flush {self.flushes}")
        self.flushes += 1
        self.committed = new

    def _reopen(self):
        self._flush()
        self._close()
        self._open()
        self._verify()

    def _fault(self, node, kind, after, probability, limit, seed):
        if node < len(self.devices):
            self._clear()
            self.devices[node].inject_fault(kind, after=after, probability=probability,
                                            limit=limit, seed=seed)
            self.armed = node
            self._armed_syncs = self._syncs(node)

    def _syncs(self, node) -> int:
        """Times node's sync thread brought it back (-1: none runs)."""
        return self.cluster.nodes()[node]["sync"]["syncs"] if self.cfg.autosync else -1

    def _clear(self):
        if self.armed is not None:
            node = self.armed
            n = self.devices[node].clear_fault()
            self.injected += n
            # a sync thread that reopened the node took the fault's count with the old device
            if n or (self.cfg.autosync and (self._syncs(node) != self._armed_syncs or
                                            self.cluster.nodes()[node]["state"] != "live")):
                self.faulted.add(node)
            self.armed = None

    def _snapshot(self, label):
        self._flush()
        self.pfs._call("/", self.pfs._core.snapshot, label, self.pfs._core.root_inum)
        self.snaps[label] = self.model.clone()
        self._flush()

    def _bulkfree(self):
        self._flush()
        if self.cluster:
            self.cluster.bulkfree()             # every live node, faulted or not
        else:
            _core.cluster_bulkfree(self.devices)
        self._flush()

    def _damage(self, seed, nodes):
        """Damage at rest (damage.py) on nodes, a minority, at different places, after a
        flush (a node behind is resynced onto its damaged media); reads must go on exact
        from the good copies. Once a run, with no fault armed."""
        if self.cfg.nodes < 3 or self.armed is not None or self.damaged:
            return
        self._flush()
        self._close()
        for node, spots in damage.plan(self.images, seed, nodes).items():
            damage.apply(self.images[node], spots, seed ^ node)
            self.damaged.add(node)
        self._open()
        self._verify()

    def _verify(self):
        diffs = diff_volume(ClusterView(self), Expected(self.model, self.snaps))
        if diffs:
            raise TortureFailure("model", "live tree: " + "; ".join(diffs))

    # ------------------------------------------------------------ faults on one node
    def _recover(self, why: str):
        """A fault surfaced as an error: drop the node's memory, reopen it from the device,
        and require the last completed flush (or the one that failed, if its header got
        written) with nothing torn."""
        pending, self._pending = self._pending, None
        self._clear()
        record = self.devices[0].take_record() if self.crash else None
        self._close()
        if record:
            self.crash.absorb(record)
        try:
            self._reseed()
            self._open()
            diffs = diff_volume(ClusterView(self), self.committed)
            if diffs and pending is not None and not diff_volume(ClusterView(self), pending):
                self.committed, diffs = pending, []
        except pyh2.H2Error as e:
            diffs = [f"unreadable: {e}"]
        if diffs:
            raise TortureFailure("fault", f"after {why}, reopened: " + "; ".join(diffs))
        self.model = self.committed.data.clone()
        self.snaps = dict(self.committed.snapshots)
        self.recoveries += 1

    def _reseed(self):
        """A cluster whose quorum faults took (one node of two) may not resync: as an
        operator would, replace each faulted node, once it passed fsck, by a copy of a
        healthy one. The copies must then hold the last flush like the original."""
        if self.cfg.nodes == 1:
            self.faulted.clear()    # reopened alone, the node is checked in full again
            return
        healthy = min(set(range(self.cfg.nodes)) - self.faulted)
        for i in sorted(self.faulted):
            self._check_node(i, "faulted", exact=False)
            _copy(self.images[healthy], self.images[i])
        self.faulted.clear()

    # ------------------------------------------------------------ the end
    def finish(self) -> dict:
        """Flush and close. A node that had faults (and no damage at rest) must be fsck
        clean on its own; the nodes are then reopened (those behind resynced) and the
        faulted and damaged ones scrubbed: after that every node must hold the last flush
        exactly."""
        self._clear()
        try:
            self._flush()
        except pyh2.H2Error as e:
            self._recover(f"final flush: {e}")
        if self.crash:
            self.crash.assert_in_sync()
        self._close()
        resynced = sorted(self.faulted) if self.cfg.nodes > 1 else []
        damaged = sorted(self.damaged)
        if resynced or damaged:
            for i in sorted(self.faulted - self.damaged):
                self._check_node(i, "faulted", exact=False)
            self._open()
            self.cluster.wait_live(120)     # a scrub needs a quorum without its node
            # ... which one of two nodes never has: the reopen resynced what was behind,
            # and each node's exact check below stands for the scrub
            for i in sorted(self.faulted | self.damaged) if not self.cfg.rolls_back else ():
                self.cluster._resync_node(i, True)
                self.resyncs += 1
            self.cluster.wait_live(120)
            self._close()
            self.faulted.clear()
            self.damaged.clear()
        for i in range(len(self.images)):
            self._check_node(i, "resynced" if i in resynced else
                             "scrubbed" if i in damaged else "reopened")
        self.result = {"resynced": resynced, "damaged": damaged}
        self.volumes_used = volset.usage(self.images[0])
        return self.result

    def _check_node(self, i: int, what: str, exact: bool = True):
        """Node i opened alone: fsck clean, and (exact) equal to the last flush."""
        try:
            with pyh2.open(self.images[i]) as vol:
                diffs = diff_volume(vol, self.committed) if exact else \
                    vol.fsck()["errors"]
        except pyh2.H2Error as e:
            diffs = [f"unreadable: {e}"]
        if diffs:
            raise TortureFailure("model" if exact else "fsck",
                                 f"node {i} {what}: " + "; ".join(diffs[:20]))

    def close(self):
        self._close()
        if self.crash:
            self.crash.close()
        _core.direct_read_min(self._direct_min)


def _copy(src, dst):
    """A node's volumes copied onto another's."""
    for a, b in zip(src, dst):
        sparse_copy(a, b)


def run_ops(workdir, cfg: Config, ops) -> Run:
    """Apply ops (skipping those the model says no longer apply) and finish."""
    run = Run(workdir, cfg)
    try:
        for i, op in enumerate(ops):
            if applicable(run.model, op):
                run.step(i, op)
        run.finish()
    finally:
        run.close()
    return run
