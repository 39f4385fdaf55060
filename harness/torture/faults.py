"""Seeded device faults during a run. With N > 1 nodes only a minority ("faulty" nodes,
chosen per run) ever gets faults, so a quorum of nodes stays healthy; with one node every
fault is expected to surface as a clean error after which the last flush must be intact."""
from __future__ import annotations

import random

KINDS = ("read", "write", "corrupt", "disconnect", "enospc")


class FaultPlan:
    def __init__(self, seed: int, nnodes: int, rate: float = 0.04):
        self.r = random.Random(seed)
        self.rate = rate
        k = max(1, (nnodes - 1) // 2)
        self.faulty = sorted(self.r.sample(range(nnodes), k)) if nnodes > 1 else [0]
        self.armed = None            # (node, op index at which it is cleared)
        self.injected = 0            # over the run, cleared arms included
        self.tainted: set[int] = set()   # nodes that had at least one fault injected

    def before_op(self, devices, index: int):
        """Clear an expired fault, or arm a new one on a faulty node."""
        if self.armed is not None:
            if index >= self.armed[1]:
                self.clear(devices)
            return
        if self.r.random() >= self.rate:
            return
        node = self.r.choice(self.faulty)
        devices[node].inject_fault(self.r.choice(KINDS), after=self.r.randrange(0, 30),
                                   probability=self.r.choice((1.0, 0.3)),
                                   limit=self.r.choice((0, 1, 4)), seed=self.r.getrandbits(63))
        self.armed = (node, index + self.r.randint(1, 12))

    def pending(self, devices) -> int:
        """Faults injected by the armed fault so far."""
        if self.armed is None:
            return 0
        return devices[self.armed[0]].faults_injected

    def clear(self, devices):
        if self.armed is None:
            return
        node = self.armed[0]
        n = devices[node].faults_injected
        devices[node].clear_fault()
        self.injected += n
        if n:
            self.tainted.add(node)
        self.armed = None

    def total(self, devices) -> int:
        return self.injected + self.pending(devices)
