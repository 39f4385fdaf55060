"""`pyh2 torture`: runs on its own, reports, and fails with a reproducer."""
import json
import multiprocessing
import os
import signal
import threading
import time

from pyh2.torture.workers import Options, run_torture
from pyh2.testing.cli import assert_clean_failure, run_pyh2


def test_torture_runs_and_writes_a_report(torture_cli):
    p, report = torture_cli("--seconds", 4, "--workers", 2, "--threads", 2, "--seed", 77,
                            "--crash")
    assert report["ops"] > 50 and report["crash_points"] > 0 and report["failures"] == []
    assert len(report["per_worker"]) == 2 and all(w["ops"] > 0 for w in report["per_worker"])
    assert report["options"]["seed"] == 77
    assert "crash points" in p.stderr.decode() and "0 failure(s)" in p.stdout.decode()


def test_torture_failure_prints_seed_and_reproducer(tmp_path):
    rep = tmp_path / "r.json"
    p = run_pyh2("torture", "--seconds", 30, "--workers", 1, "--seed", 5, "--crash",
                 "--plant-bug", "nobarrier", "--shrink-seconds", 3, "--report", rep)
    out = p.stdout.decode()
    assert p.returncode == 1, out
    assert "FAILURE (worker 0, seed 5," in out and "replay:" in out
    repro = json.loads(rep.read_text())["failures"][0]["reproducer_file"]
    again = run_pyh2("torture", "--replay", repro)
    assert again.returncode == 1 and "crash" in again.stdout.decode()


def test_torture_bad_arguments(tmp_path):
    assert_clean_failure(run_pyh2("torture", "--workers", 0), "--workers")
    assert_clean_failure(run_pyh2("torture", "--nodes", 9), "1 to 8 nodes")
    assert_clean_failure(run_pyh2("torture", "--threads", 2, "--faults"), "--faults")
    assert_clean_failure(run_pyh2("torture", "--image-size", "lots"), "lots")
    assert_clean_failure(run_pyh2("torture", "--replay", tmp_path / "none.json"), "none.json")


def test_a_worker_killed_mid_run_is_reported_with_its_ops(tmp_path):
    # a crash of the core kills the worker process: the parent reports it from the journal
    def kill_worker():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:      # once the worker journaled some ops
            journals = list(tmp_path.glob("h2journal-*/worker0.jsonl"))
            if journals and len(journals[0].read_text().splitlines()) > 5:
                break
            time.sleep(0.05)
        for child in multiprocessing.active_children():
            os.kill(child.pid, signal.SIGTERM)   # (SIGSEGV alike, without the core dump noise)
    killer = threading.Thread(target=kill_worker)
    killer.start()
    try:
        report = run_torture(Options(seconds=20, workers=1, seed=8, shrink_seconds=2,
                                     tmpdir=str(tmp_path)))
    finally:
        killer.join()
    (f,) = report["failures"]
    assert f["kind"] == "signal" and "-15" in f["detail"]
    assert 8 <= f["seed"] < 8 + 1_000_003 and f["ops_run"] > 0 and f["reproducer"]
