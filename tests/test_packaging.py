"""The package as shipped: what it imports, its version, demo, and the plugin's fixtures
as `pytest --fixtures` shows them to a user's suite."""
import os
import pkgutil
import re
import subprocess
import sys

import pyh2
from pyh2 import refimages
from pyh2.testing.cli import run_pyh2

FIXTURES = {"loop_device", "nbd_server", "mem_device", "nbd_attachment", "make_image", "image",
            "cluster_nodes", "fuse_mount", "sample_tree", "watchdog", "ref_image", "ref_json",
            "ref_fsck_counts", "scratch_copy", "run_generated"}


def test_only_the_plugin_imports_pytest():
    """The torture engine, demo and the testing helpers load without pytest."""
    mods = [m.name for m in pkgutil.walk_packages(pyh2.__path__, "pyh2.")
            if m.name not in ("pyh2.__main__", "pyh2.testing.plugin")]
    assert {"pyh2.torture.workers", "pyh2.testing.devices", "pyh2.refimages"} <= set(mods)
    code = ("import importlib, sys\n"
            f"for m in {mods!r}:\n"
            "    importlib.import_module(m)\n"
            "    assert 'pytest' not in sys.modules, m\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=refimages.REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_version():
    proc = run_pyh2("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().split() == ["pyh2", pyh2.__version__]


def test_demo_needs_no_data_files():
    proc = run_pyh2("demo")
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()
    assert re.search(r"== \d+ entries imported, read back and exported: identical to the source",
                     out), out
    assert " 0 marked free, 0 overlapping" in out, out


def test_pytest_fixtures_lists_each_fixture_with_its_doc(tmp_path):
    """In an empty directory, as a user's suite sees them (the plugin loaded by name here;
    an installed pyh2 loads it through its pytest11 entry point)."""
    env = dict(os.environ, PYTHONPATH=str(refimages.REPO))
    proc = subprocess.run([sys.executable, "-m", "pytest", "--fixtures", "-p",
                           "pyh2.testing.plugin", "-p", "no:cacheprovider"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    docs = dict(re.findall(r"(?m)^(\w+)(?: \[\w+ scope\])? -- \S*pyh2/testing/plugin\.py:\d+"
                           r"\n\s+(.+)$", proc.stdout))
    assert set(docs) == FIXTURES, proc.stdout
    assert not [n for n, d in docs.items() if "no docstring" in d], docs


def test_readme_shows_the_example_ci_runs():
    example = (refimages.REPO / "examples" / "test_with_pyh2.py").read_text()
    assert f"```python\n{example}```" in (refimages.REPO / "README.md").read_text()
