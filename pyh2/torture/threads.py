"""Threaded runs: T threads share one PFS, each with its own op stream in its own directory
/tK (so the model of each is exact whatever the interleaving), while flush, reopen, bulkfree
and verify take the run exclusively (the model then is one consistent state, for the crash
engine too). The journal holds the ops in the order they ran: replayed serially it is the
same interleaving at op granularity."""
from __future__ import annotations

import threading
from contextlib import contextmanager

from .model import Model

from .errors import TortureFailure, failure
from .ops import VOLUME_OPS, Generator, apply_path_op

THREAD_WEIGHTS = {"snapshot": 0}       # labels are per stream: keep snapshots serial


class RWLock:
    """Many path ops at once, or one volume op alone (writers first)."""

    def __init__(self):
        self.cond = threading.Condition()
        self.readers = 0
        self.writer = False

    @contextmanager
    def shared(self):
        with self.cond:
            while self.writer:
                self.cond.wait()
            self.readers += 1
        try:
            yield
        finally:
            with self.cond:
                self.readers -= 1
                if not self.readers:
                    self.cond.notify_all()

    @contextmanager
    def exclusive(self):
        with self.cond:
            while self.writer:
                self.cond.wait()
            self.writer = True
            while self.readers:
                self.cond.wait()
        try:
            yield
        finally:
            with self.cond:
                self.writer = False
                self.cond.notify_all()


def run_threaded(run, seed: int, nthreads: int, nops: int, weights: dict, record,
                 stop_at: float, clock) -> None:
    """nops ops per thread on run (a Run); record(op) journals an op before it runs; stops
    at clock() > stop_at. Raises the first TortureFailure of any thread."""
    lock, failures, idx = RWLock(), [], [0]
    journal = threading.Lock()
    models = []
    for k in range(nthreads):
        top = f"/t{k}"
        record(("mkdir", top, 0o755))
        run.step(idx[0], ("mkdir", top, 0o755))
        idx[0] += 1
        m = Model()
        m.root.children[top[1:]] = run.model.node(top)      # shared with the run's model
        models.append(m)

    def one(k):
        gen = Generator(seed * 31 + k, {**weights, **THREAD_WEIGHTS}, root=f"/t{k}")
        for n in range(nops):
            if failures or clock() > stop_at:
                return
            op = gen.next_op(models[k])
            if k == 0 and run.cfg.verify_every and \
                    n % run.cfg.verify_every == run.cfg.verify_every - 1:
                op = ("verify",)
            volume = op[0] in VOLUME_OPS
            with (lock.exclusive() if volume else lock.shared()):
                with journal:
                    i = idx[0]
                    idx[0] += 1
                    record(op)
                    run.ops += not volume
                try:
                    if volume:
                        run.step(i, op)
                    else:
                        apply_path_op(run.pfs, models[k], op)
                except TortureFailure as f:
                    failures.append(f)
                except Exception as e:
                    failures.append(failure(op, e, i, f"thread {k}: "))
    threads = [threading.Thread(target=one, args=(k,), name=f"torture-{k}")
               for k in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
