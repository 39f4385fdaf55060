"""The write path on images made by the real HAMMER2 tools: writable copies of reference
images are modified in place, and must then hold exactly the reference tree with those
changes applied (a model built from the manifest), everything else untouched, fsck clean."""
import pytest

import pyh2
from pyh2 import refimages
from pyh2.torture.model import Mirror, Model, watchdog


@pytest.fixture(autouse=True)
def _no_hang():
    """A deadlock in the core fails the test (its worker dies) instead of hanging the run."""
    cancel = watchdog(40)
    yield
    cancel()


def short(diffs, n=30):
    return "\n".join(d if len(d) < 300 else d[:300] + "..." for d in diffs[:n])


def assert_tree(pfs, expected):
    diffs = refimages.compare_trees(expected, refimages.tree_from_volume(pfs))
    assert not diffs, short(diffs)


def assert_fsck_clean(vol):
    r = vol.fsck()
    assert r["errors"] == [], r["errors"][:20]
    assert r["freemap"]["unmarked"] == 0 and r["freemap"]["overlaps"] == 0, r["freemap"]
    return r


def data_offsets(pfs, path):
    return sorted((b["key"], b["data_off"]) for b in pfs.blocks(path) if b["type"] == "data")


def mirror_of(vol, name, label="DATA"):
    pfs = vol.pfs(label)
    model = Model.from_manifest(refimages.expected_tree(name, label), loader=pfs.read)
    return Mirror(pfs, model)


def test_basic_modified_in_place(scratch_copy):
    img = scratch_copy("basic")
    untouched = ("/sizes/f0131072", "/text/mixed.bin", "/sizes/f0016384")
    vol = pyh2.open(img, writable=True)
    m = mirror_of(vol, "basic")
    before = {p: data_offsets(m.pfs, p) for p in untouched}
    m.write("/text/words.txt", b"HAMMER2 WAS HERE. " * 10, 1000)
    m.truncate("/sizes/f0200000", 70_000)
    m.truncate("/level0/leaf0.txt", 10)
    m.rename("/names/UPPER", "/level0/level1/UPPER-moved")
    m.unlink("/links/hard-b")
    m.unlink("/sizes/f0065537")
    m.mkdir("/new", 0o750)
    m.create("/new/file.bin", bytes(range(256)) * 400, 0o640, mtime_us=1_700_000_000_000_000)
    m.create("/new/tiny", b"tiny")
    m.symlink("../text/words.txt", "/new/link")
    assert_tree(m.pfs, m.model.manifest())
    vol.flush()
    vol.close()
    with pyh2.open(img) as vol:
        pfs = vol.pfs("DATA")
        assert_tree(pfs, m.model.manifest())
        assert pfs.stat("/links/hard-c").nlinks == 2
        assert pfs.read("/text/words.txt", 990, 30)[10:28] == b"HAMMER2 WAS HERE. "
        for p, offs in before.items():                     # copy-on-write copies only
            assert data_offsets(pfs, p) == offs, p         # what changed
        assert_fsck_clean(vol)
        assert [p.label for p in vol.pfs_list()] == ["DATA", "LOCAL"]
        assert vol.pfs("LOCAL").listdir("/") == []


def test_bigdir_add_and_remove(scratch_copy):
    img = scratch_copy("bigdir")
    tree = refimages.expected_tree("bigdir", "DATA")
    old = {e["path"][len("/flat/"):]: e for e in tree if e["path"].startswith("/flat/")}
    assert len(old) == 12000
    removed = sorted(old)[::24]
    added = {f"added-{i:04d}": f"new file {i}\n".encode() * (i % 60) for i in range(500)}
    want = (old.keys() - set(removed)) | added.keys()

    def verify(pfs):
        names = pfs.listdir("/flat")
        assert len(names) == len(want) and set(names) == want
        for n, data in list(added.items())[::7]:
            assert pfs.read(f"/flat/{n}") == data, n
        for n in sorted(want & old.keys())[::97]:
            assert refimages.sha256_of(pfs, f"/flat/{n}", old[n]["size"]) == old[n]["sha256"]
        assert len(pfs.listdir("/nest")) == 400

    vol = pyh2.open(img, writable=True)
    pfs = vol.pfs("DATA")
    for i, n in enumerate(removed):
        pfs.unlink(f"/flat/{n}")
        name = f"added-{i:04d}"
        pfs.create(f"/flat/{name}", added[name])
    verify(pfs)
    vol.flush()
    vol.close()
    with pyh2.open(img) as vol:
        verify(vol.pfs("DATA"))
        assert_fsck_clean(vol)


def test_snapshots_survive_changes_to_their_origin(scratch_copy):
    img = scratch_copy("pfs-snapshot")
    vol = pyh2.open(img, writable=True)
    m = mirror_of(vol, "pfs-snapshot")
    m.write("/text/mixed.bin", b"\xee" * 200_000, 70_000)   # blocks shared with snap1, snap2
    m.truncate("/sizes/f0200000", 1000)
    m.truncate("/sizes/f0065536", 0)
    m.unlink("/links/hard-a")
    m.unlink("/sizes/f0131072")
    m.rename("/names/n", "/n-moved")
    m.create("/new", bytes(300_000) + b"tail")
    m.mkdir("/text/sub")
    m.chmod("/modes/tool", 0o700)

    def verify(vol, pfs):
        assert_tree(pfs, m.model.manifest())
        for snap in ("snap1", "snap2"):
            assert_tree(vol.pfs(snap), refimages.expected_tree("pfs-snapshot", snap))
        assert vol.pfs("EXTRA").listdir("/") == []

    verify(vol, m.pfs)
    vol.flush()
    verify(vol, m.pfs)
    vol.close()
    with pyh2.open(img) as vol:
        verify(vol, vol.pfs("DATA"))
        assert sorted(p.label for p in vol.pfs_list()) == ["DATA", "EXTRA", "LOCAL", "snap1",
                                                          "snap2"]
        assert_fsck_clean(vol)
