"""Torture over multi-volume filesystems (`--volumes`): a run's blocks reach volume 1, the
crash engine replays, checks and resumes each volume's writes, clusters of multi-volume
nodes (with faults and damage at rest), planted flush bugs still caught."""
import pytest

from pyh2.torture import Config, TortureFailure
from pyh2.torture.shrink import replay
from pyh2.torture.workers import Options, ops_from_json, run_torture
from pyh2.testing.cli import assert_clean_failure, run_pyh2


def _blocks(run) -> list[int]:
    return [blocks for blocks, _ in run.volumes_used]


@pytest.mark.parametrize("volumes,seed", [(2, 71), (3, 72)])
def test_a_run_spills_past_volume_0(run_generated, volumes, seed):
    run = run_generated(Config(seed=seed, volumes=volumes), 400)
    blocks = _blocks(run)
    # the model check passed at every verify point and at the end; volume 0 keeps a few
    # MiB, the rest of the run's live blocks are on volume 1 (with two, the last volume)
    assert len(blocks) == volumes and blocks[0] > 0 and blocks[1] > 0


@pytest.mark.parametrize("seed", [73, 74])
def test_crash_points_replay_every_volume(run_generated, seed):
    run = run_generated(Config(seed=seed, volumes=3, crash=True), 200)
    assert run.flushes > 5 and run.crash_points > 5 * run.flushes and run.crash.resumed > 0
    # writes to both volumes went through the per-volume shadow (which ended equal to
    # each live volume), and live data is on volume 1
    assert run.crash.replayed[0] > 0 and run.crash.replayed[1] > 0
    assert _blocks(run)[1] > 0


def test_single_node_faults_over_three_volumes(run_generated):
    runs = [run_generated(Config(seed=s, volumes=3, crash=True, faults=True), 150)
            for s in (31, 32, 33)]
    # a fault surfaced as a clean error, and the set reopened held the last flush
    assert sum(r.faults_injected for r in runs) > 0 and sum(r.recoveries for r in runs) > 0
    assert all(r.crash.replayed[1] > 0 for r in runs)


def test_cluster_of_three_volume_nodes(run_generated):
    run = run_generated(Config(seed=75, nodes=3, volumes=3), 300)
    # every node opened alone at the end held the last flush exactly
    assert run.result == {"resynced": [], "damaged": []} and _blocks(run)[1] > 0


def test_cluster_faults_and_damage_on_three_volume_nodes(run_generated):
    run = run_generated(Config(seed=51, nodes=3, volumes=3, crash=True, faults=True), 300)
    assert run.faults_injected > 0 and run.crash_points > 0 and run.result["damaged"]
    assert run.crash.replayed[1] > 0 and _blocks(run)[1] > 0


@pytest.mark.parametrize("bug", ["nobarrier", "dropwrite"])
def test_planted_bug_is_caught_over_three_volumes(planted, tmp_path, bug):
    opts = Options(seconds=30, workers=1, seed=3, volumes=3, crash=True, shrink_seconds=3,
                   planted_bug=bug, tmpdir=str(tmp_path))
    report = run_torture(opts)
    assert report["failures"], report
    f = report["failures"][0]
    assert f["kind"] == "crash" and f["config"]["volumes"] == 3
    ops, cfg = ops_from_json(f["reproducer"]), Config(**f["config"])
    planted(bug)
    assert isinstance(replay(ops, cfg, tmp_path), TortureFailure)
    planted(None)
    assert replay(ops, cfg, tmp_path) is None


def test_cli_reports_blocks_per_volume(torture_cli):
    p, report = torture_cli("--seconds", 3, "--workers", 1, "--seed", 76, "--volumes", 3,
                            "--crash")
    assert report["failures"] == [] and report["crash_points"] > 0
    assert [v["volume"] for v in report["volumes"]] == [0, 1, 2]
    assert report["volumes"][1]["blocks"] > 0 and report["volumes"][1]["bytes"] > 0
    assert "per volume" in p.stdout.decode()


def test_cli_volume_count_out_of_range():
    assert_clean_failure(run_pyh2("torture", "--volumes", 0), "--volumes")
    assert_clean_failure(run_pyh2("torture", "--volumes", 65), "1 to 64 volumes, not 65")
