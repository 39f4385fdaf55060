"""The torture's checker: one core walk of a PFS (_core.digest_tree) against the model's
view. Whatever the model records wrongly, or the volume changed behind the model, is a
difference; the walk itself is bounded and names the path an error met."""
import errno

import pytest

import pyh2
from pyh2 import _core
from pyh2.torture.model import Mirror, Model
from pyh2.torture.verify import diff_tree


@pytest.fixture
def mirror(image):
    """A small tree written to the image's DATA and to a model (an open writable volume)."""
    with pyh2.open(image, writable=True) as vol:
        m = Mirror(vol.pfs("DATA"), Model())
        m.mkdir("/d")
        m.create("/d/f", b"abc" * 5000)
        m.write("/d/f", b"tail", 200_000)           # a hole in between
        m.link("/d/f", "/g")
        m.symlink("target", "/d/l")
        m.mkfifo("/p")
        m.utime("/p", 1_500_000_000_123_456)
        assert diff_tree(m.pfs, m.model) == []
        yield m


def test_the_digest_is_of_the_logical_contents_holes_as_zeros(mirror):
    tree = _core.digest_tree(mirror.pfs._core)
    data = mirror.pfs.read("/d/f")
    assert len(data) == 200_004 and data[15_000:200_000] == bytes(185_000)
    assert tree["/d/f"][6] == tree["/g"][6] == _core.digest(data)
    assert tree["/d/f"][8] == tree["/g"][8] == mirror.pfs.stat("/g").inum
    assert tree["/d/l"][6] == "target" and tree["/p"][7] == 1_500_000_000_123_456


def test_a_wrong_digest_in_the_model_is_caught(mirror):
    mirror.model.node("/g")._digest ^= 1
    diffs = diff_tree(mirror.pfs, mirror.model)
    assert len(diffs) == 2 and all(": data expected" in d for d in diffs), diffs


def test_contents_the_model_missed_are_caught(mirror):
    mirror.pfs.write("/d/f", b"ABC", 1)             # same size, the volume only
    assert any(d.startswith("/d/f: data expected") for d in diff_tree(mirror.pfs, mirror.model))


@pytest.mark.parametrize("change, expect", [
    (lambda pfs: pfs.chmod("/d/f", 0o600), "/d/f: mode expected 420, got 384"),
    (lambda pfs: pfs.chown("/p", 7, None), "/p: uid expected 0, got 7"),
    (lambda pfs: pfs.utime("/p", 1_500_000_000_000_000), "/p: mtime_us expected"),
    (lambda pfs: pfs.utime("/d/l", 1_000_000), "/d/l: mtime expected a time in"),
    (lambda pfs: pfs.truncate("/d/f", 200_004), None),    # the same size: mtime only, NOW
    (lambda pfs: pfs.link("/d/l", "/d/l2"), "unexpected: /d/l2"),
])
def test_metadata_the_model_missed_is_caught(mirror, change, expect):
    change(mirror.pfs)
    diffs = diff_tree(mirror.pfs, mirror.model)
    if expect is None:
        assert diffs == []
    else:
        assert any(d.startswith(expect) for d in diffs), diffs


def test_a_broken_hardlink_is_caught(mirror):
    mirror.model.unlink("/g")
    mirror.model.create("/g", b"abc" * 5000)        # same attributes, its own node
    mirror.model.node("/g").set_data(mirror.model.filedata("/d/f"))
    mirror.model.node("/g").mtime_us = mirror.model.node("/d/f").mtime_us
    diffs = diff_tree(mirror.pfs, mirror.model)
    assert any("hardlinked with" in d for d in diffs), diffs


def test_the_walk_is_bounded_and_names_the_path(mirror):
    pfs = mirror.pfs
    with pytest.raises(pyh2.H2Error) as e:
        _core.digest_tree(pfs._core, max_entries=2)
    assert e.value.errno == errno.E2BIG
    with pytest.raises(pyh2.H2Error) as e:
        _core.digest_tree(pfs._core, max_bytes=100_000)
    assert e.value.errno == errno.EFBIG and e.value.strerror.startswith(("/g: ", "/d/f: "))
    path = ""
    for i in range(64):             # the last one, HAMMER2_DIGEST_MAXDEPTH down, is not read
        path += f"/{i}"
        pfs.mkdir(path)
    with pytest.raises(pyh2.H2Error) as e:
        _core.digest_tree(pfs._core)
    assert e.value.errno == errno.ELOOP and e.value.strerror.startswith(path + ": ")


def test_paths_resolve_in_the_core(mirror):
    pfs = mirror.pfs
    assert pfs.stat("/d/../d/./f").inum == pfs.stat("/g").inum
    with pytest.raises(pyh2.H2Error) as e:
        pfs.stat("/d/f/x")
    assert e.value.errno == errno.ENOTDIR and e.value.strerror.startswith("/d/f/x: ")
    with pytest.raises(pyh2.H2Error) as e:
        pfs.stat("/d/nothing")
    assert e.value.errno == errno.ENOENT
