"""Parallel torture: worker processes, each running seeded runs on its own images until the
time budget is spent, sharing counters with the parent; a failure is shrunk (in the worker,
or in the parent from the worker's op journal when the worker process died) and reported."""
from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
import time
from dataclasses import asdict, dataclass, replace

from .errors import TortureFailure
from .ops import Generator
from .run import Config, Run
from .shrink import shrink
from .threads import run_threaded

PROFILES = {"full": {}, "namespace": {"write": 0, "truncate": 0}}
FIELDS = ("ops", "points", "faults", "runs", "failures")     # shared counters per worker
HANG_GRACE = 120.0          # beyond budget and shrinking: a worker this late is hung


@dataclass
class Options:
    seconds: float = 60.0
    workers: int = 1
    threads: int = 1                     # threads per worker sharing one PFS (threads.py)
    seed: int = 1
    nodes: int = 1
    volumes: int = 1                     # volumes of each node's filesystem (volset.py)
    crash: bool = False
    faults: bool = False
    ops_per_run: int = 400
    shrink_seconds: float = 60.0
    profile: str = "full"
    planted_bug: str | None = None       # test-only (pyh2._core.set_planted_bug)
    tmpdir: str | None = None
    image_size: int = Config.image_size

    def run_seed(self, worker: int, run: int) -> int:
        return self.seed + worker * 1_000_003 + run

    def config(self, seed: int) -> Config:
        return Config(seed=seed, nodes=self.nodes, volumes=self.volumes, crash=self.crash,
                      faults=self.faults, image_size=self.image_size)


def ops_from_json(ops) -> list[tuple]:
    return [tuple(tuple(x) if isinstance(x, list) else x for x in op) for op in ops]


def failure_record(worker, seed, cfg: Config, ops, failure, small, sfail) -> dict:
    return {"worker": worker, "seed": seed, "kind": failure.kind, "detail": failure.detail,
            "op_index": failure.index, "ops_run": len(ops), "config": asdict(cfg),
            "reproducer": [list(op) for op in small], "reproducer_failure": str(sfail)}


# ------------------------------------------------------------------ the worker process

def one_run(opts: Options, worker: int, run_no: int, counters, journal,
            used=None) -> dict | None:
    """One run; used (blocks, then bytes, per volume) gets what node 0's volumes hold at
    its end."""
    seed = opts.run_seed(worker, run_no)
    cfg = opts.config(seed)
    weights = PROFILES[opts.profile]
    ops = []
    base = [counters[i] for i in range(len(FIELDS))]
    with open(journal, "w") as j, tempfile.TemporaryDirectory(dir=opts.tmpdir,
                                                              prefix="h2torture-") as d:
        j.write(json.dumps({"seed": seed, "config": asdict(cfg)}) + "\n")
        run = None

        def record(op):
            """Journal op before it runs (a crash of the core leaves the sequence behind)."""
            ops.append(op)
            j.write(json.dumps(op) + "\n")
            j.flush()
            counters[0], counters[1] = base[0] + run.ops, base[1] + run.crash_points
            counters[2] = base[2] + run.faults_injected
        try:
            run = Run(d, cfg)
            deadline = time.monotonic() + opts.seconds
            if opts.threads > 1:
                run_threaded(run, seed, opts.threads, opts.ops_per_run // opts.threads,
                             weights, record, deadline, time.monotonic)
            else:
                gen = Generator.for_run(cfg, weights)
                for i in range(opts.ops_per_run):
                    if time.monotonic() > deadline:
                        break
                    op = gen.next_op(run.model)
                    record(op)
                    run.step(i, op)
            run.finish()
            counters[0], counters[1] = base[0] + run.ops, base[1] + run.crash_points
            counters[2] = base[2] + run.faults_injected
            for k, (blocks, nbytes) in enumerate(run.volumes_used if used else ()):
                used[k] += blocks
                used[opts.volumes + k] += nbytes
            return None
        except TortureFailure as f:
            failure = f
        except Exception as e:           # the binding or the harness itself
            failure = TortureFailure("exception", repr(e))
        finally:
            if run is not None:
                run.close()
    small, sfail = shrink(ops, cfg, failure, opts.shrink_seconds, opts.tmpdir)
    return failure_record(worker, seed, cfg, ops, failure, small, sfail)


def worker_main(opts: Options, worker: int, counters, results, journal, used):
    if opts.planted_bug:
        from pyh2 import _core
        _core.set_planted_bug(opts.planted_bug)
    end = time.monotonic() + opts.seconds
    run_no = 0
    while time.monotonic() < end:
        sub = replace(opts, seconds=end - time.monotonic())
        failure = one_run(sub, worker, run_no, counters, journal, used)
        run_no += 1
        counters[3] = run_no
        if failure:
            counters[4] += 1
            results.put(failure)
            return


# ------------------------------------------------------------------ the parent

def _died(opts: Options, worker: int, exitcode: int, journal) -> dict:
    """A worker process died (the core crashed): shrink from its op journal."""
    why = "hung (killed)" if exitcode == -9 else f"died with exit code {exitcode}"
    try:
        with open(journal) as j:
            head = json.loads(j.readline())
            ops = ops_from_json(json.loads(line) for line in j if line.strip())
    except (OSError, ValueError):        # died before its first run began
        cfg = opts.config(opts.run_seed(worker, 0))
        f = TortureFailure("signal", f"worker {why} before its first operation")
        return failure_record(worker, cfg.seed, cfg, [], f, [], f)
    cfg = Config(**head["config"])
    f = TortureFailure("signal", f"worker {why}", max(0, len(ops) - 1))
    small, sfail = shrink(ops, cfg, f, opts.shrink_seconds, opts.tmpdir)
    return failure_record(worker, head["seed"], cfg, ops, f, small, sfail)


def preflight(opts: Options):
    """Set up (and drop) one run in the parent, so a bad option (node count, image size)
    is an error message before any worker starts."""
    with tempfile.TemporaryDirectory(dir=opts.tmpdir, prefix="h2torture-") as d:
        Run(d, opts.config(opts.seed)).close()


def run_torture(opts: Options, progress=None) -> dict:
    """Run the workers; progress(totals) is called about twice a second. Returns the report."""
    ctx = multiprocessing.get_context("fork")
    counters = [ctx.Array("q", len(FIELDS), lock=False) for _ in range(opts.workers)]
    used = [ctx.Array("q", 2 * opts.volumes, lock=False) for _ in range(opts.workers)]
    results = ctx.Queue()
    t0 = time.monotonic()
    failures = []
    with tempfile.TemporaryDirectory(dir=opts.tmpdir, prefix="h2journal-") as jdir:
        journals = [os.path.join(jdir, f"worker{i}.jsonl") for i in range(opts.workers)]
        # the workers' images live in here too: a worker killed or dead leaves nothing
        wopts = replace(opts, tmpdir=jdir)
        procs = [ctx.Process(target=worker_main, args=(wopts, i, counters[i], results,
                                                        journals[i], used[i]))
                 for i in range(opts.workers)]
        for p in procs:
            p.start()
        try:
            limit = t0 + opts.seconds + opts.shrink_seconds + HANG_GRACE
            while any(p.is_alive() for p in procs) and time.monotonic() < limit:
                while not results.empty():
                    failures.append(results.get())
                if progress:
                    progress(_totals(counters, time.monotonic() - t0))
                time.sleep(0.5)
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()
                p.join()
        while not results.empty():
            failures.append(results.get())
        seen = {f["worker"] for f in failures}
        for i, p in enumerate(procs):
            if p.exitcode != 0 and i not in seen:
                failures.append(_died(opts, i, p.exitcode, journals[i]))
    totals = _totals(counters, time.monotonic() - t0)
    totals["failures"] = len(failures)
    if progress:
        progress(totals)
    per_worker = [dict(zip(FIELDS, c[:])) for c in counters]
    return {"options": {k: v for k, v in asdict(opts).items() if k != "tmpdir"},
            **totals, "volumes": _volumes(used, opts.volumes), "per_worker": per_worker,
            "failures": failures}


def _volumes(used, n: int) -> list[dict]:
    """Per volume, the blocks and bytes node 0's tree held there at the end of each
    completed run, summed over the runs."""
    return [{"volume": k, "blocks": sum(u[k] for u in used),
             "bytes": sum(u[n + k] for u in used)} for k in range(n)]


def _totals(counters, elapsed: float) -> dict:
    t = {k: sum(c[i] for c in counters) for i, k in enumerate(FIELDS)}
    t["elapsed"] = round(elapsed, 2)
    t["ops_per_s"] = round(t["ops"] / elapsed, 1) if elapsed > 0 else 0.0
    t["points_per_s"] = round(t["points"] / elapsed, 1) if elapsed > 0 else 0.0
    t["crash_points"] = t.pop("points")
    t["faults_injected"] = t.pop("faults")
    return t
