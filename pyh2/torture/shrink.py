"""Shrinking a failing op sequence: delta debugging (ddmin) over the op list, each candidate
replayed on a fresh image; ops a removal made inapplicable are skipped by the replay."""
from __future__ import annotations

import multiprocessing
import tempfile
import time

from .model import Model

from .errors import TortureFailure
from .ops import applied
from .run import Config, run_ops

REPLAY_TIMEOUT = 120.0


def _replay_child(conn, ops, cfg, workdir):
    try:
        run_ops(workdir, cfg, ops)
        conn.send(None)
    except TortureFailure as f:
        conn.send((f.kind, f.detail, f.index))
    except Exception as e:                # a harness or binding error is a failure too
        conn.send(("exception", repr(e), None))


def replay(ops, cfg: Config, tmpdir=None) -> TortureFailure | None:
    """Run ops on a fresh image in a child process (a crash of the core is a failure, not
    the end of the shrinker); the failure, or None. The directory is the parent's, so a
    child that dies or is killed leaves nothing behind."""
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    with tempfile.TemporaryDirectory(dir=tmpdir, prefix="h2replay-") as d:
        child = ctx.Process(target=_replay_child, args=(send, ops, cfg, d))
        child.start()
        send.close()
        try:
            result = (recv.recv() if recv.poll(REPLAY_TIMEOUT)
                      else ("hang", "replay timed out", None))
        except EOFError:
            result = None
        child.join(1 if result and result[0] == "hang" else None)
        if child.exitcode is None:
            child.kill()
            child.join()
    if result is None and child.exitcode and child.exitcode < 0:
        result = ("signal", f"the process died of signal {-child.exitcode}", None)
    return None if result is None else TortureFailure(*result)


def ddmin(ops: list, fails, deadline: float) -> list:
    """A short sublist of ops for which fails(sublist) holds (fails(ops) must)."""
    n = 2
    while len(ops) >= 2 and time.monotonic() < deadline:
        chunk = max(1, len(ops) // n)
        parts = [ops[i:i + chunk] for i in range(0, len(ops), chunk)]
        for i in range(len(parts)):
            if time.monotonic() >= deadline:
                return ops
            rest = [op for j, p in enumerate(parts) if j != i for op in p]
            if fails(rest):
                ops, n = rest, max(2, n - 1)
                break
        else:
            if chunk == 1:
                break
            n = min(len(ops), n * 2)
    return ops


def _repath(op, old: str, new: str):
    """op with path old (and everything below it) renamed to new."""
    def fix(x):
        if isinstance(x, tuple):
            return tuple(fix(y) for y in x)
        if isinstance(x, str) and (x == old or x.startswith(old + "/")):
            return new + x[len(old):]
        return x
    return fix(op)


def unrename(ops: list, fails, deadline: float) -> list:
    """Drop renames, the later ops taking the old name: collapses the rename chains that
    ddmin cannot cut (every later op names the path a rename made)."""
    i = 0
    while i < len(ops) and time.monotonic() < deadline:
        op = ops[i]
        if op[0] == "rename":
            cand = ops[:i] + [_repath(o, op[2], op[1]) for o in ops[i + 1:]]
            if fails(cand):
                ops = cand
                continue
        i += 1
    return ops


def shrink(ops: list, cfg: Config, failure: TortureFailure, seconds: float = 60.0,
           tmpdir=None) -> tuple[list, TortureFailure]:
    """The shortest reproducer found in the time given, and its failure (same kind)."""
    if failure.index is not None:
        ops = ops[:failure.index + 1]        # nothing after the failing op matters
    best = [failure]

    def fails(candidate):
        f = replay(candidate, cfg, tmpdir)
        if f is not None and f.kind == failure.kind:
            best[0] = f
            return True
        return False
    if not fails(ops):                        # not reproducible from the ops alone
        return ops, failure
    deadline = time.monotonic() + seconds
    small = ddmin(ops, fails, deadline)
    small = ddmin(unrename(small, fails, deadline), fails, deadline)
    if not cfg.rolls_back:
        small = applied(small, Model())
    return small, best[0]                     # best[0]: the last list that failed, small
