import json

import pytest

from pyh2 import _core
from pyh2.testing.cli import run_pyh2


@pytest.fixture
def planted():
    """planted(name): switch a planted flush bug on (None: off); off again at the end."""
    def plant(name):
        _core.set_planted_bug(name)
    yield plant
    _core.set_planted_bug(None)


@pytest.fixture
def torture_cli(tmp_path):
    """torture_cli(*args) -> (process, report): a passing `pyh2 torture ARGS` and the JSON
    report it wrote."""
    def go(*args):
        rep = tmp_path / "report.json"
        p = run_pyh2("torture", *args, "--report", rep)
        assert p.returncode == 0, p.stderr.decode()
        return p, json.loads(rep.read_text())
    return go
