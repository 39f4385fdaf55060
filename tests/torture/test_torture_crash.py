"""The crash engine: clean on the real core, and it catches planted flush bugs."""
import pytest

from pyh2 import _core
from harness.torture import Config, TortureFailure
from harness.torture.shrink import replay
from harness.torture.workers import Options, ops_from_json, run_torture


@pytest.mark.parametrize("seed", [21, 22])
def test_crash_points_clean_on_the_core(run_generated, seed):
    run = run_generated(Config(seed=seed, crash=True), 120)
    # every flush's write prefixes and torn epochs were rebuilt, opened and compared; the
    # shadow ended equal to the image (finish checks it)
    assert run.flushes > 5 and run.crash_points > 5 * run.flushes


@pytest.fixture
def planted():
    def plant(name):
        _core.set_planted_bug(name)
    yield plant
    _core.set_planted_bug(None)


@pytest.mark.parametrize("bug", ["nobarrier", "dropwrite"])
def test_planted_bug_is_caught_within_the_default_budget(planted, tmp_path, bug):
    opts = Options(seconds=60, workers=1, seed=3, crash=True, shrink_seconds=5,
                   planted_bug=bug, tmpdir=str(tmp_path))
    report = run_torture(opts)
    assert report["failures"], report
    f = report["failures"][0]
    assert f["kind"] == "crash" if bug == "nobarrier" else f["kind"] in ("crash", "model")
    assert 1 <= len(f["reproducer"]) <= f["ops_run"]
    # the shrunk sequence fails again with the bug, and passes on the real core
    ops, cfg = ops_from_json(f["reproducer"]), Config(**f["config"])
    planted(bug)
    assert isinstance(replay(ops, cfg, tmp_path), TortureFailure)
    planted(None)
    assert replay(ops, cfg, tmp_path) is None


def test_planted_bug_switch_names():
    with pytest.raises(_core.H2Error):
        _core.set_planted_bug("bogus")
    assert _core.planted_bug() is None


@pytest.mark.parametrize("seed", [32, 34])   # seeds whose fault plans hit
def test_single_node_faults_leave_the_last_flush_intact(run_generated, seed):
    run = run_generated(Config(seed=seed, crash=True, faults=True), 150)
    assert run.faults.injected > 0 and run.recoveries > 0
