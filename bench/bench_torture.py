"""Torture throughput: operations/s per worker without and with crash points, crash points
checked/s, the scaling from 1 to 2 workers (throughput ratio; 2.0 is perfect) and from 1 to
2 threads in one worker, and each node's filesystem over 3 volumes against 1 (`--volumes`),
all measured in the same run on the same seeds; beside them the
ratios against the baseline recorded in issue 18 (340 ops/s, 27 crash points/s, 1 worker,
before verification moved into the core), which was not measured in this run.

The share of wall time inside the core is measured on one worker run in this process (the
same seeds): while measuring, every callable of pyh2._core (its functions, and the methods
and constructors of its Device and Pfs objects, which every Python caller reaches through
the module) is wrapped with time.perf_counter around the call; the summed call times
divided by the wall time of the runs is the share. The wrappers' own time counts as outside
the core, so the share is a lower bound.

    python3 bench/bench_torture.py [--seconds S]
"""
import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pyh2 import _core  # noqa: E402
from pyh2.torture.workers import FIELDS, Options, one_run, run_torture  # noqa: E402

TMPDIR = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None   # as pyh2 torture
BASELINE = {"ops_per_s": 340.0, "points_per_s": 27.0}              # issue 18, 1 worker


def measure(seconds, workers, crash, threads=1, volumes=1):
    r = run_torture(Options(seconds=seconds, workers=workers, threads=threads, seed=1,
                            volumes=volumes, crash=crash, tmpdir=TMPDIR))
    if r["failures"]:
        sys.exit(f"torture failed: {r['failures'][0]['detail']}")
    return r


class CoreClock:
    """Seconds spent in calls into pyh2._core while installed (see the docstring)."""
    TIMED_TYPES = ("Device", "Pfs")

    def __init__(self):
        self.seconds = 0.0
        self.saved = {}

    def _timed(self, fn):
        clock, now = self, time.perf_counter

        def timed(*args, **kw):
            t = now()
            try:
                return fn(*args, **kw)
            finally:
                clock.seconds += now() - t
        return timed

    def _timed_type(self, cls):
        ns = {k: self._timed(v) for k, v in vars(cls).items()
              if callable(v) and not k.startswith("_")}
        base_new = cls.__new__
        ns["__new__"] = self._timed(lambda sub, *a, **kw: base_new(sub, *a, **kw))
        return type(cls.__name__, (cls,), ns)

    def __enter__(self):
        for name, obj in vars(_core).items():
            if name in self.TIMED_TYPES:
                self.saved[name] = obj
            elif type(obj).__name__ == "cython_function_or_method":
                self.saved[name] = obj
        for name, obj in self.saved.items():
            setattr(_core, name, self._timed_type(obj) if name in self.TIMED_TYPES
                    else self._timed(obj))
        return self

    def __exit__(self, *exc):
        for name, obj in self.saved.items():
            setattr(_core, name, obj)


def core_share(seconds, crash):
    """(share of wall time in the core, ops/s, crash points/s): one worker, in-process."""
    opts = Options(seconds=seconds, seed=1, crash=crash, tmpdir=TMPDIR)
    counters = [0] * len(FIELDS)
    with tempfile.TemporaryDirectory(dir=TMPDIR) as d, CoreClock() as clock:
        t0 = time.perf_counter()
        end = t0 + seconds
        run_no = 0
        while time.perf_counter() < end:
            failed = one_run(replace(opts, seconds=end - time.perf_counter()), 0, run_no,
                             counters, os.path.join(d, "journal"))
            if failed:
                sys.exit(f"torture failed: {failed['detail']}")
            run_no += 1
        wall = time.perf_counter() - t0
    return clock.seconds / wall, counters[0] / wall, counters[1] / wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="per measurement")
    args = ap.parse_args()
    rows = {}
    for crash in (False, True):
        for workers in (1, 2):
            r = measure(args.seconds, workers, crash)
            rows[crash, workers] = r
            print(f"crash={'on ' if crash else 'off'} workers={workers}: "
                  f"{r['ops_per_s']:8.1f} ops/s ({r['ops_per_s'] / workers:7.1f} per worker), "
                  f"{r['points_per_s']:7.1f} crash points/s, {r['runs']} runs")
    print(f"vs the issue's recorded baseline (1 worker; not measured in this run): "
          f"ops/s without crash points x{rows[False, 1]['ops_per_s'] / BASELINE['ops_per_s']:.2f}"
          f" (target x3), crash points/s "
          f"x{rows[True, 1]['points_per_s'] / BASELINE['points_per_s']:.2f} (target x10)")
    for crash in (False, True):
        share, ops, points = core_share(args.seconds, crash)
        print(f"core share of wall time, 1 worker in-process, crash {'on' if crash else 'off'}: "
              f"{share:.1%} (target 50%; {ops:.1f} ops/s, {points:.1f} crash points/s "
              f"while timed)")
    for crash in (False, True):
        one, two = rows[crash, 1], rows[crash, 2]
        print(f"scaling 1 -> 2 workers, crash {'on' if crash else 'off'}: "
              f"ops/s x{two['ops_per_s'] / one['ops_per_s']:.2f}"
              + (f", crash points/s x{two['points_per_s'] / one['points_per_s']:.2f}"
                 if crash else ""))
    print(f"crash points cost: ops/s with crash points / without (1 worker): "
          f"{rows[True, 1]['ops_per_s'] / rows[False, 1]['ops_per_s']:.3f}")
    two = measure(args.seconds, 1, False, threads=2)
    print(f"threads: 1 worker x 2 threads / 1 worker x 1 thread, ops/s: "
          f"x{two['ops_per_s'] / rows[False, 1]['ops_per_s']:.2f}")
    for crash in (False, True):     # each pair measured back to back: the load drifts
        one, three = (measure(args.seconds, 1, crash, volumes=v) for v in (1, 3))
        print(f"volumes: 3 / 1 (1 worker), crash {'on' if crash else 'off'}: ops/s "
              f"x{three['ops_per_s'] / one['ops_per_s']:.2f}"
              + (f", crash points/s x{three['points_per_s'] / one['points_per_s']:.2f}"
                 if crash else ""))


if __name__ == "__main__":
    main()
