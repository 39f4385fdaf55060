"""Hostile images: damaged metadata that passes its (absent or recomputed)
check codes must give errors, never a crash or a hang. Each chunk runs in a
child process so a crash is caught and reported with the seed and the damage
that caused it."""
import json
import shutil
import signal
import subprocess
import sys

import pytest

import pyh2
from pyh2.testing import fuzz, imagepatch

RUNS = 60


@pytest.fixture(scope="module", params=[False, True], ids=["nocheck", "fixed-checks"])
def base_image(request, tmp_path_factory):
    img = tmp_path_factory.mktemp("hostile") / "base.h2"
    fuzz.build_image(img, checked=request.param)
    return img, request.param


def _dir_image(path):
    pyh2.newfs(path, 64 << 20)                      # xxhash64 check codes
    with pyh2.open(path, writable=True) as vol:
        pfs = vol.pfs("DATA")
        pfs.mkdir("/d")
        pfs.create("/d/alpha", b"A" * 5000)
        pfs.create("/d/beta", b"B" * 70_000)


def test_fix_checks_leaves_a_clean_image_alone(tmp_path):
    img = tmp_path / "clean.h2"
    _dir_image(img)
    before = img.read_bytes()
    assert imagepatch.fix_checks(img) == 0
    assert img.read_bytes() == before


def test_fix_checks_makes_a_damaged_dirent_verify(tmp_path):
    img = tmp_path / "dirent.h2"
    _dir_image(img)
    # the short name sits in the dirent blockref, in the directory inode's blockset
    [at] = imagepatch.locate(img, b"alpha", fuzz.TYPE_INODE, fuzz.INODE_BLOCKSET)
    with pyh2.open(img) as vol:
        zone = vol.best_zone
    imagepatch.patch(img, at, b"al/ha")
    with pyh2.open(img) as vol:
        assert any("check mismatch" in e for e in vol.fsck()["errors"])
    assert imagepatch.fix_checks(img) >= 3          # the dirent's parents up to the root
    with pyh2.open(img) as vol:
        assert vol.best_zone == zone                # the header copy in use verifies
        assert all(h["valid"] for h in vol.volume_headers())
        assert not any("check mismatch" in e for e in vol.fsck()["errors"])
        pfs = vol.pfs("DATA")
        assert pfs.read("/d/beta", 0, 1 << 20) == b"B" * 70_000
    assert imagepatch.locate(img, b"al/ha", fuzz.TYPE_INODE, fuzz.INODE_BLOCKSET) == [at]


def test_base_image_reads_clean(base_image):
    img, _ = base_image
    counts = fuzz.exercise(img)
    assert counts == {"files": 124, "errors": 0}
    assert fuzz.check(img)                          # fsck clean, the export succeeds


@pytest.mark.parametrize("first_seed", [1, 10_001])
def test_damaged_images_never_crash(base_image, tmp_path, first_seed):
    """No crash or hang; and where fsck passes, a full export succeeds
    within its destination (exit 2 names the seed otherwise)."""
    img, checked = base_image
    progress = tmp_path / "progress.json"
    try:
        proc = subprocess.run([sys.executable, "-m", "pyh2.testing.fuzz", str(img),
                               str(first_seed), str(RUNS), str(progress)]
                              + ["--checked"] * checked,
                              capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hang on {progress.read_text()}")
    if proc.returncode == 2:
        pytest.fail(f"invariant broken: {proc.stderr[-2000:]}")
    if proc.returncode != 0:
        sig = -proc.returncode
        what = signal.Signals(sig).name if sig > 0 else f"exit {proc.returncode}"
        pytest.fail(f"{what} on {progress.read_text()}\n{proc.stderr[-2000:]}")
    totals = json.loads(proc.stdout)
    assert totals["runs"] == RUNS
    # the damage is real: some of it is found, and most of the tree still reads
    assert totals["errors"] > 0
    assert totals["files"] > RUNS * 124 // 2
    assert 0 < totals["fsck_clean"] < RUNS          # the invariant was put to work
