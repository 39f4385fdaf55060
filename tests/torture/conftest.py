import pytest

from pyh2 import _core


@pytest.fixture
def planted():
    """planted(name): switch a planted flush bug on (None: off); off again at the end."""
    def plant(name):
        _core.set_planted_bug(name)
    yield plant
    _core.set_planted_bug(None)
