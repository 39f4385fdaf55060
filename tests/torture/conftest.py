"""Fixtures of the torture tests: a run of generated ops on a fresh image in tmp_path."""
import pytest

from pyh2.torture import Run
from pyh2.torture.ops import Generator


@pytest.fixture
def run_generated(tmp_path):
    """run_generated(cfg, nops, weights=None) -> the finished Run (closed)."""
    def go(cfg, nops, weights=None):
        d = tmp_path / f"run{cfg.seed}"
        d.mkdir()
        run = Run(d, cfg)
        gen = Generator.for_run(cfg, weights)
        try:
            for i in range(nops):
                run.step(i, gen.next_op(run.model))
            run.finish()
        finally:
            run.close()
        return run
    return go
