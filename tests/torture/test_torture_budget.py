"""The CI's torture budget: `pyh2 torture --crash --faults` as the main job runs it, on one
node and on a 3-node cluster, failing on any divergence. PYH2_TORTURE_SECONDS sets the
budget of each (default 40 s) and PYH2_TORTURE_SEED the base seed (default: fixed)."""
import json
import os

import pytest

from pyh2.testing.cli import run_pyh2

BUDGET = float(os.environ.get("PYH2_TORTURE_SECONDS", "40"))
SEED = int(os.environ.get("PYH2_TORTURE_SEED", "20261124"))


@pytest.mark.parametrize("nodes", [1, 3])
def test_torture_budget_finds_no_divergence(tmp_path, nodes):
    rep = tmp_path / "report.json"
    p = run_pyh2("torture", "--seconds", BUDGET, "--workers", 2, "--seed", SEED + nodes,
                 "--nodes", nodes, "--crash", "--faults", "--shrink-seconds", 30,
                 "--tmpdir", tmp_path, "--report", rep)
    report = json.loads(rep.read_text())
    assert p.returncode == 0 and report["failures"] == [], p.stdout.decode()[-4000:]
    assert report["ops"] > 20 * BUDGET and report["crash_points"] > 0
    assert report["faults_injected"] > 0
