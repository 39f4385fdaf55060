"""Hostile images: damaged metadata that passes its (absent) check codes must
give errors, never a crash or a hang. Each chunk runs in a child process so a
crash is caught and reported with the seed and the damage that caused it."""
import json
import signal
import subprocess
import sys

import pytest

from harness import fuzz

RUNS = 120


@pytest.fixture(scope="module")
def base_image(tmp_path_factory):
    img = tmp_path_factory.mktemp("hostile") / "base.h2"
    fuzz.build_image(img)
    return img


def test_base_image_reads_clean(base_image):
    counts = fuzz.exercise(base_image)
    assert counts == {"files": 124, "errors": 0}


@pytest.mark.parametrize("first_seed", [1, 10_001])
def test_damaged_images_never_crash(base_image, tmp_path, first_seed):
    progress = tmp_path / "progress.json"
    try:
        proc = subprocess.run([sys.executable, "-m", "harness.fuzz", str(base_image),
                               str(first_seed), str(RUNS), str(progress)],
                              capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hang on {progress.read_text()}")
    if proc.returncode != 0:
        sig = -proc.returncode
        what = signal.Signals(sig).name if sig > 0 else f"exit {proc.returncode}"
        pytest.fail(f"{what} on {progress.read_text()}\n{proc.stderr[-2000:]}")
    totals = json.loads(proc.stdout)
    assert totals["runs"] == RUNS
    # the damage is real: some of it is found, and most of the tree still reads
    assert totals["errors"] > 0
    assert totals["files"] > RUNS * 124 // 2
