"""The suite takes its fixtures from pyh2's pytest plugin, as a user's suite does (an
installed pyh2 registers it through its entry point under the same name, so it is not
registered twice). The reference images are required here: missing ones fail the run
loudly, never turn into skips."""
import shutil

import pytest

from pyh2 import refimages

pytest_plugins = ["pyh2.testing.plugin"]

try:
    REF_DIR = refimages.reference_dir()
except refimages.ReferenceImagesMissing as e:
    raise pytest.UsageError(str(e)) from None
if not refimages.image_names():
    raise pytest.UsageError(f"no *.h2.zst reference images in {REF_DIR}")
if not shutil.which("zstd"):
    raise pytest.UsageError("the zstd program is needed (run scripts/setup.sh)")
