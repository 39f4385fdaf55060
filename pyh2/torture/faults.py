"""Seeded device faults as ops in the stream ("fault", node, kind, after, probability, limit,
seed) and ("clear",), so a failing sequence replays and shrinks with its faults. With N > 2
nodes only a minority ("faulty" nodes, chosen per run) ever gets faults, so a quorum stays
healthy; with one node, or one of two (no minority), a fault that takes the quorum must
surface as a clean error after which the last flush is intact. With three nodes or more
the stream also carries ("damage", seed, nodes): blocks overwritten at rest on the faulty
nodes, at different places (damage.py)."""
from __future__ import annotations

import random

KINDS = ("read", "write", "corrupt", "disconnect", "enospc")
DAMAGE_RATE = 0.005             # per op, with 3 nodes or more: about two a run


class FaultPlan:
    def __init__(self, seed: int, nnodes: int, rate: float = 0.04, spare: int | None = None):
        """spare: a node of several that never gets faults (the one the crash engine
        watches, which must hold every flush)."""
        self.r = random.Random(seed)
        self.rate = rate
        k = max(1, (nnodes - 1) // 2)
        pool = [n for n in range(nnodes) if n != spare]
        self.faulty = sorted(self.r.sample(pool, k)) if nnodes > 1 else [0]
        self.damages = random.Random(seed ^ 0xDA) if nnodes >= 3 else None  # own stream:
        # the faults of a seed stay what they were
        self.until = None            # op count at which the armed fault is cleared
        self.count = 0

    def next_op(self) -> tuple | None:
        """A fault op to run before the next ordinary op, or None."""
        self.count += 1
        if self.until is not None:
            if self.count < self.until:
                return None
            self.until = None
            return ("clear",)
        if self.damages and self.damages.random() < DAMAGE_RATE:
            return ("damage", self.damages.getrandbits(63), list(self.faulty))
        if self.r.random() >= self.rate:
            return None
        self.until = self.count + self.r.randint(1, 12)
        return ("fault", self.r.choice(self.faulty), self.r.choice(KINDS),
                self.r.randrange(0, 30), self.r.choice((1.0, 0.3)),
                self.r.choice((0, 1, 4)), self.r.getrandbits(63))
