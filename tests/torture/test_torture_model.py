"""The op generator and the run engine against the tree model (no crash points, no faults)."""
import collections

import pytest

from pyh2.torture.model import Model
from pyh2.torture import Config, Run, TortureFailure
from pyh2.torture.ops import NEUTRAL_OPS, Generator, applicable, applied, apply_path_op
from pyh2.torture.shrink import ddmin, unrename


class _Null:
    """A Pfs that accepts every call: drives the model alone."""

    def __getattr__(self, name):
        return lambda *a, **k: None


def _generate(seed, n):
    model, gen, ops = Model(), Generator(seed), []
    for _ in range(n):
        op = gen.next_op(model)
        assert applicable(model, op), op
        ops.append(op)
        if op[0] not in NEUTRAL_OPS:
            apply_path_op(_Null(), model, op)
    return ops


def test_generation_is_reproducible_from_the_seed():
    assert _generate(11, 500) == _generate(11, 500)
    assert _generate(11, 500) != _generate(12, 500)


def test_generator_covers_the_write_api():
    kinds = collections.Counter(op[0] if op[0] != "expect" else op[1] for op in _generate(3, 3000))
    for k in ("create", "write", "read", "mkfifo", "truncate", "mkdir", "rmdir", "unlink", "rename", "link",
              "symlink", "chmod", "chown", "utime", "flush", "reopen", "snapshot",
              "bulkfree", "EEXIST", "ENOENT", "ENOTEMPTY", "EISDIR", "ENOTDIR", "EINVAL"):
        assert kinds[k] > 0, (k, kinds)
    ops = _generate(3, 3000)
    writes = [op for op in ops if op[0] == "write"]
    assert any(op[3] == 65536 for op in writes)                  # whole 64 KiB buffers
    assert any(op[2] % 65536 == 0 and op[2] for op in writes)    # at block boundaries
    assert any(op[4] == 0 for op in writes)                      # zeros (holes)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_generated_runs_match_the_model(run_generated, seed):
    run = run_generated(Config(seed=seed * 7919), 300)
    assert run.ops >= 290 and run.flushes > 5
    assert run.result == {"resynced": [], "damaged": []}


def test_a_change_behind_the_models_back_is_caught(tmp_path):
    run = Run(tmp_path, Config(seed=5, verify_every=0))
    try:
        run.step(0, ("mkdir", "/d", 0o755))
        run.pfs.create("/d/stray", b"not in the model")
        with pytest.raises(TortureFailure) as ei:
            run.step(1, ("verify",))
        assert ei.value.kind == "model" and "unexpected: /d/stray" in ei.value.detail
        assert ei.value.index == 1
    finally:
        run.close()


def test_a_wrong_errno_is_caught(tmp_path):
    run = Run(tmp_path, Config(seed=6))
    try:
        run.step(0, ("create", "/f", 10, 3, 0o644))
        with pytest.raises(TortureFailure) as ei:   # /f exists: unlink succeeds instead
            run.step(1, ("expect", "ENOENT", ("unlink", "/f")))
        assert ei.value.kind == "errno" and "succeeded, expected ENOENT" in ei.value.detail
        with pytest.raises(TortureFailure) as ei:   # the core's ENOENT, not the EEXIST expected
            run.step(2, ("expect", "EEXIST", ("unlink", "/none")))
        assert ei.value.kind == "errno" and "expected EEXIST, got ENOENT" in ei.value.detail
        with pytest.raises(TortureFailure) as ei:   # a valid op the core refuses
            run.step(3, ("unlink", "/none"))
        assert ei.value.kind == "exception", ei.value
    finally:
        run.close()


def test_applied_drops_ops_that_no_longer_apply():
    ops = [("mkdir", "/d", 0o755), ("create", "/d/f", 1, 1, 0o644), ("unlink", "/x"),
           ("rename", "/d/f", "/g"), ("write", "/d/f", 0, 1, 1), ("flush",)]
    assert applied(ops, Model()) == [ops[0], ops[1], ops[3], ops[5]]


def test_ddmin_finds_the_minimal_failing_subset():
    ops = list(range(40))
    calls = []

    def fails(sub):
        calls.append(len(sub))
        return 7 in sub and 31 in sub
    assert ddmin(ops, fails, deadline=float("inf")) == [7, 31]
    assert len(calls) < 200


def test_unrename_collapses_rename_chains():
    ops = [("mkdir", "/a", 0o755), ("rename", "/a", "/b"), ("rename", "/b", "/c"),
           ("create", "/c/f", 1, 1, 0o644), ("expect", "EEXIST", ("mkdir", "/c", 0o755))]
    small = unrename(ops, lambda c: any(o[0] == "create" for o in c), float("inf"))
    assert small == [("mkdir", "/a", 0o755), ("create", "/a/f", 1, 1, 0o644),
                     ("expect", "EEXIST", ("mkdir", "/a", 0o755))]
