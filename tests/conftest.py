"""Fixtures over the reference images; the logic lives in pyh2.refimages."""
import os
import shutil
import subprocess
import sys

import pytest

from pyh2 import refimages

# Missing images must fail the run loudly, never turn into skips.
try:
    REF_DIR = refimages.reference_dir()
except refimages.ReferenceImagesMissing as e:
    raise pytest.UsageError(str(e)) from None

ALL_IMAGES = refimages.image_names()
if not ALL_IMAGES:
    raise pytest.UsageError(f"no *.h2.zst reference images in {REF_DIR}")
if not shutil.which("zstd"):
    raise pytest.UsageError("the zstd program is needed (run scripts/setup.sh)")


@pytest.fixture(scope="session")
def ref_image():
    """ref_image(name) -> Path of the decompressed image (shared cache: don't write)."""
    return refimages.decompressed


@pytest.fixture(scope="session")
def ref_json():
    return refimages.load_manifest


@pytest.fixture(scope="session")
def ref_fsck_counts():
    return refimages.fsck_counts


@pytest.fixture
def scratch_copy(tmp_path):
    """scratch_copy(name) -> writable sparse copy of the image in tmp_path."""
    def copy(name):
        dst = tmp_path / f"{name}.h2"
        subprocess.run(["cp", "--sparse=always", str(refimages.decompressed(name)), str(dst)],
                       check=True)
        os.chmod(dst, 0o644)
        return dst
    return copy


def run_pyh2(*args):
    """`python3 -m pyh2 ARGS` from the repo root; returns the CompletedProcess (bytes)."""
    return subprocess.run([sys.executable, "-m", "pyh2", *map(str, args)],
                          cwd=refimages.REPO, capture_output=True, timeout=600)


def assert_clean_failure(proc, *needles):
    """A CLI error: status 1..127, a message on stderr naming each needle, no traceback."""
    err = proc.stderr.decode(errors="replace")
    assert 1 <= proc.returncode <= 127, (proc.returncode, err)
    assert err.strip(), "no message on stderr"
    assert "Traceback" not in err, err
    for n in needles:
        assert str(n) in err, (n, err)


def pfs_label(manifest):
    """The PFS the CLI uses by default (DATA), else the first one with a tree."""
    return "DATA" if "DATA" in manifest["trees"] else next(iter(manifest["trees"]))

