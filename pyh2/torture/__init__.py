"""Torture engines: seeded random operations against a model (ops, run), crash points
rebuilt from the device write log (crash), device faults on a minority of cluster nodes
(faults), a delta-debugging shrinker (shrink), threads sharing one PFS (threads) and
parallel worker processes (workers)."""
from .errors import TortureFailure
from .run import Config, Run, run_ops

__all__ = ["Config", "Run", "TortureFailure", "run_ops"]
