"""`pyh2 torture`: seeded random operations against a model, crash points and device
faults, on temporary images, in parallel worker processes (pyh2.torture)."""
from __future__ import annotations

import argparse
import errno
import json
import os
import random
import sys
import tempfile

from .cli_args import at_least, size


SHM = "/dev/shm"


def register(sub):
    p = sub.add_parser("torture", help="the main job: randomized operations, crash points and "
                                       "device faults checked against a model")
    p.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    p.add_argument("--minutes", type=float, help="time budget in minutes (overrides --seconds)")
    p.add_argument("--workers", type=at_least(1), default=os.cpu_count() or 1,
                   help="worker processes (default: one per CPU)")
    p.add_argument("--threads", type=at_least(1), default=1,
                   help="threads per worker sharing one PFS, each in its own directory")
    p.add_argument("--seed", type=int, help="base seed (default: random, printed)")
    p.add_argument("--nodes", type=at_least(1), default=1,
                   help="nodes of the PFS (image files)")
    p.add_argument("--volumes", type=at_least(1), default=1,
                   help="volumes of each node's filesystem (1 to 64; more than one: "
                        "volume 0 keeps 8 MiB for data, the rest spills over)")
    p.add_argument("--crash", action="store_true", help="check crash points at every flush")
    p.add_argument("--faults", action="store_true", help="inject device faults")
    p.add_argument("--profile", choices=("full", "namespace"), default="full",
                   help="namespace: no file data writes or truncation")
    p.add_argument("--ops-per-run", type=at_least(1), default=400,
                   help="operations per run (each run: a fresh image, a new seed)")
    p.add_argument("--image-size", type=size, default="256M",
                   help="size of each temporary image (default 256M; 3G or more: several "
                        "volume header copies, torn header writes checked)")
    p.add_argument("--shrink-seconds", type=float, default=60.0,
                   help="time to shrink a failing sequence")
    p.add_argument("--tmpdir", default=SHM if os.access(SHM, os.W_OK) else None,
                   help="where the temporary images go (default: /dev/shm when writable, "
                        "where a barrier costs nothing, else the system temp directory)")
    p.add_argument("--report", help="JSON report (default: a file in the temp directory)")
    p.add_argument("--replay", metavar="FILE", help="replay a reproducer file and exit")
    # test-only: a deliberately broken flush the run must catch (csrc/hammer2_debug.h)
    p.add_argument("--plant-bug", choices=("nobarrier", "dropwrite"), help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_torture)


def cmd_torture(args, out):
    from .torture.workers import Options, preflight, run_torture

    from .volume import H2Error
    if args.replay:
        return _replay(args.replay, out)
    if args.threads > 1 and args.faults:
        raise H2Error(errno.EINVAL, "--faults runs one thread per worker (a fault's recovery "
                                    "reopens the volume under every thread)")
    seed = args.seed if args.seed is not None else random.randrange(1, 1 << 31)
    seconds = args.minutes * 60 if args.minutes is not None else args.seconds
    opts = Options(seconds=seconds, workers=args.workers, threads=args.threads, seed=seed,
                   nodes=args.nodes, volumes=args.volumes, crash=args.crash,
                   faults=args.faults, ops_per_run=args.ops_per_run,
                   shrink_seconds=args.shrink_seconds, profile=args.profile,
                   planted_bug=args.plant_bug, image_size=args.image_size,
                   tmpdir=args.tmpdir)
    report_path = args.report or os.path.join(tempfile.gettempdir(),
                                              f"pyh2-torture-{seed}.json")
    preflight(opts)
    out(f"pyh2 torture: seed {seed}, {args.workers} worker(s) x {args.threads} thread(s), "
        f"{seconds:g} s, "
        f"{args.nodes} node(s) of {args.volumes} volume(s)"
        f"{', crash points' if args.crash else ''}"
        f"{', faults' if args.faults else ''}")
    sys.stdout.flush()
    progress = _Progress(seconds)
    try:
        report = run_torture(opts, progress)
    finally:
        progress.done()
    for f in report["failures"]:
        f["reproducer_file"] = _save_repro(report_path, f, args.plant_bug)
    with open(report_path, "w") as fp:
        json.dump(report, fp, indent=1)
    _summary(report, report_path, out)
    return 1 if report["failures"] else 0


class _Progress:
    """One live line on stderr (rewritten in place on a terminal, else every 10 s)."""

    def __init__(self, budget: float):
        self.budget = budget
        self.tty = sys.stderr.isatty()
        self.last = -10.0

    def __call__(self, t):
        line = (f"[{t['elapsed']:6.1f}/{self.budget:g}s] ops {t['ops']} "
                f"({t['ops_per_s']:.0f}/s)  crash points {t['crash_points']}  "
                f"faults {t['faults_injected']}  runs {t['runs']}  failures {t['failures']}")
        if self.tty:
            sys.stderr.write("\r" + line + "\033[K")
        elif t["elapsed"] - self.last >= 10:
            sys.stderr.write(line + "\n")
            self.last = t["elapsed"]
        sys.stderr.flush()

    def done(self):
        if self.tty:
            sys.stderr.write("\n")


def _save_repro(report_path: str, failure: dict, planted_bug) -> str:
    path = f"{os.path.splitext(report_path)[0]}-repro-{failure['seed']}.json"
    with open(path, "w") as fp:
        json.dump({"config": failure["config"], "reproducer": failure["reproducer"],
                   "failure": failure["reproducer_failure"], "planted_bug": planted_bug},
                  fp, indent=1)
    return path


def _summary(r, report_path, out):
    out(f"{r['ops']} operations in {r['elapsed']:.1f} s ({r['ops_per_s']:.0f}/s), "
        f"{r['runs']} runs, {r['crash_points']} crash points checked, "
        f"{r['faults_injected']} faults injected, {len(r['failures'])} failure(s)")
    if len(r["volumes"]) > 1:
        held = [v for v in r["volumes"] if v["blocks"]]
        empty = len(r["volumes"]) - len(held)
        out("live blocks at the end of the runs, per volume: " + ", ".join(
            f"{v['volume']}: {v['blocks']} ({v['bytes'] / (1 << 20):.1f} MiB)" for v in held)
            + (f"; {empty} other volume(s): none" if empty else ""))
    for f in r["failures"]:
        out(f"FAILURE (worker {f['worker']}, seed {f['seed']}, op {f['op_index']}): "
            f"{f['kind']}: {f['detail']}")
        out(f"  shrunk to {len(f['reproducer'])} of {f['ops_run']} ops "
            f"({f['reproducer_failure']}):")
        for op in f["reproducer"]:
            out("    " + json.dumps(op))
        out(f"  replay: python3 -m pyh2 torture --replay {f['reproducer_file']}")
    out(f"report: {report_path}")


def _replay(path, out):
    from .torture.run import Config
    from .torture.shrink import replay
    from .torture.workers import ops_from_json
    with open(path) as fp:
        rec = json.load(fp)
    ops = ops_from_json(rec["reproducer"])
    if rec.get("planted_bug"):
        from . import _core
        _core.set_planted_bug(rec["planted_bug"])
    failure = replay(ops, Config(**rec["config"]))
    if failure is None:
        out(f"{path}: {len(ops)} ops replayed, no failure")
        return 0
    out(f"{path}: {len(ops)} ops replayed: {failure}")
    return 1
