"""Torture throughput: operations/s per worker without and with crash points, crash points
checked/s, the scaling from 1 to 2 workers (throughput ratio; 2.0 is perfect) and from 1 to
2 threads in one worker, all measured in the same run on the same seeds.

    python3 bench/bench_torture.py [--seconds S]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pyh2.torture.workers import Options, run_torture  # noqa: E402

TMPDIR = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None   # as pyh2 torture


def measure(seconds, workers, crash, threads=1):
    r = run_torture(Options(seconds=seconds, workers=workers, threads=threads, seed=1,
                            crash=crash, tmpdir=TMPDIR))
    if r["failures"]:
        sys.exit(f"torture failed: {r['failures'][0]['detail']}")
    return r


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


if __name__ == "__main__":
    main()
