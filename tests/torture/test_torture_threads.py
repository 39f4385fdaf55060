"""Threaded torture: several threads on one PFS, volume ops exclusive."""
import threading
import time

import pytest

from pyh2.torture import Config, Run, TortureFailure, run_ops
from pyh2.torture.threads import RWLock, run_threaded
from pyh2 import _core


def _threaded(tmp_path, cfg, nthreads, nops):
    run, ops = Run(tmp_path / "t", cfg), []
    try:
        run_threaded(run, cfg.seed, nthreads, nops, {}, ops.append, time.monotonic() + 120,
                     time.monotonic)
        run.finish()
    finally:
        run.close()
    return run, ops


@pytest.mark.parametrize("seed", [51, 52])
def test_threads_on_one_pfs_match_the_model(tmp_path, seed):
    (tmp_path / "t").mkdir()
    run, ops = _threaded(tmp_path, Config(seed=seed, crash=True), 3, 60)
    assert len(ops) == 3 + 3 * 60 and run.crash_points > 0
    assert {op[1].split("/")[1] for op in ops if op[0] == "create"} <= {"t0", "t1", "t2"}
    # the journal, replayed serially, is a valid run too
    (tmp_path / "r").mkdir()
    assert run_ops(tmp_path / "r", Config(seed=seed), ops).ops == len(ops)


def test_threaded_planted_bug_is_caught(tmp_path):
    (tmp_path / "t").mkdir()
    _core.set_planted_bug("nobarrier")
    try:
        with pytest.raises(TortureFailure) as ei:
            _threaded(tmp_path, Config(seed=53, crash=True), 3, 100)
        assert ei.value.kind == "crash"
    finally:
        _core.set_planted_bug(None)


def test_rwlock_excludes_writers():
    lock, inside, bad, count = RWLock(), [0], [], threading.Lock()

    def reader():
        for _ in range(200):
            with lock.shared():
                with count:
                    inside[0] += 1
                with count:
                    inside[0] -= 1

    def writer():
        for _ in range(50):
            with lock.exclusive():
                if inside[0]:
                    bad.append(inside[0])
    ts = [threading.Thread(target=f) for f in (reader, reader, writer)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert bad == []
