"""Fixtures of the torture tests: a run of generated ops on a fresh image in tmp_path."""
import pytest

from harness.torture import Run
from harness.torture.ops import Generator


@pytest.fixture
def run_generated(tmp_path):
    """run_generated(cfg, nops, **generator options) -> the finished Run (closed)."""
    def go(cfg, nops, **gen_opts):
        d = tmp_path / f"run{cfg.seed}"
        d.mkdir()
        run = Run(d, cfg)
        gen = Generator(cfg.seed, fault_nodes=cfg.nodes if cfg.faults else 0, **gen_opts)
        try:
            for i in range(nops):
                run.step(i, gen.next_op(run.model))
            run.finish()
        finally:
            run.close()
        return run
    return go
