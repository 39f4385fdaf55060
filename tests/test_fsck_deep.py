"""fsck catches what reads catch: each class of damage is made by hand on an
image whose check codes are then recomputed (pyh2.testing.imagepatch), so only
the logical checks can find it; `pyh2 fsck` must exit 1 naming what is
wrong and where."""
import re

import pytest

import pyh2
from pyh2.testing import imagepatch
from pyh2.testing.fuzz import BREF, DIRENT_NAME, DIRENT_NAMLEN, INODE_BLOCKSET, TYPE_INODE

from pyh2.testing.cli import run_pyh2

META_TYPE, META_OPFLAGS, META_INUM, META_SIZE, META_NAMELEN = 0x50, 0x51, 0x58, 0x60, 0x80
BREF_KEYBITS, BREF_INUM = 3, 48
TYPE_DATA = 3


def _build(path):
    pyh2.newfs(path, 64 << 20)
    with pyh2.open(path, writable=True) as vol:
        pfs = vol.pfs("DATA")
        pfs.mkdir("/d")
        pfs.create("/d/alpha", b"A" * 100)                  # embedded data
        pfs.create("/d/bravo", b"B" * 70_000)               # two data blocks
        pfs.symlink("some/target", "/d/charlie")
        pfs.mkdir("/d/delta")


@pytest.fixture
def img(tmp_path):
    path = tmp_path / "deep.h2"
    _build(path)
    return path


def _inode(img, path: str) -> int:
    """Media offset of the inode at path (its inode index entry)."""
    found = []
    with pyh2.open(img) as vol:
        inum = vol.pfs("DATA").stat(path).inum

        def visit(depth, bref, data, error):
            if bref["type_id"] == TYPE_INODE and bref["key"] == inum:
                found.append(bref["data_off"])

        vol.device.walk_zone(vol.best_zone, False, visit)
    [at] = found
    return at


def _dirent(img, name: bytes) -> int:
    """Media offset of the blockref of the short-named dirent name."""
    [at] = imagepatch.locate(img, name, TYPE_INODE, INODE_BLOCKSET)
    return at - DIRENT_NAME


def _fsck_fails(img, *patterns):
    imagepatch.fix_checks(img)
    proc = run_pyh2("fsck", img)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    for p in patterns:
        assert re.search(p, err), err
    return err


def test_undamaged_image_is_clean(img):
    imagepatch.fix_checks(img)
    proc = run_pyh2("fsck", img)
    assert proc.returncode == 0, proc.stderr.decode()


@pytest.mark.parametrize("name", [b"../../../ESCAPED", b"a/b", b".", b"..", b"al\0ha"])
def test_dirent_with_an_invalid_name(img, name):
    at = _dirent(img, b"alpha")
    imagepatch.patch(img, at + DIRENT_NAMLEN, len(name).to_bytes(2, "little"))
    imagepatch.patch(img, at + DIRENT_NAME, name)
    _fsck_fails(img, r"PFS DATA: inode 0x[0-9a-f]+: dirent blockref .* at "
                     rf"0x{at:x}: invalid entry name")


def test_dirent_not_keyed_by_its_hash(img):
    at = _dirent(img, b"alpha")
    imagepatch.patch(img, at + DIRENT_NAME, b"alphz")
    _fsck_fails(img, rf"at 0x{at:x}: entry 'alphz' is not keyed by its name's hash")


def test_dirent_naming_no_inode(img):
    at = _dirent(img, b"alpha")
    imagepatch.patch(img, at + BREF_INUM, (0x7777).to_bytes(8, "little"))
    _fsck_fails(img, r"PFS DATA: /d/alpha: .*inode 0x7777 not found")


def test_dirent_type_differs_from_its_inode(img):
    at = _dirent(img, b"delta")
    imagepatch.patch(img, at + BREF_INUM + 10, bytes([2]))      # says: regular file
    _fsck_fails(img, r"PFS DATA: /d/delta: entry of type 2 names inode .* of type 1")


def test_directory_reached_twice(img):
    at = _dirent(img, b"delta")
    with pyh2.open(img) as vol:
        d = vol.pfs("DATA").stat("/d").inum
    imagepatch.patch(img, at + BREF_INUM, d.to_bytes(8, "little"))  # delta -> its parent
    _fsck_fails(img, rf"/d/delta: directory inode 0x{d:x} .* reached by a second path")


def test_inode_index_entry_holding_another_inode(img):
    at = _inode(img, "/d/bravo")
    imagepatch.patch(img, at + META_INUM, (0x9999).to_bytes(8, "little"))
    _fsck_fails(img, rf"inode index entry 0x[0-9a-f]+ holds inode 0x9999",
                r"/d/bravo: .*does not hold that inode")


def test_invalid_data_keybits(img):
    ino = _inode(img, "/d/bravo")
    blockset = img.read_bytes()[ino + INODE_BLOCKSET:ino + 1024]
    at = ino + INODE_BLOCKSET + next(i for i in range(0, len(blockset), BREF)
                                     if blockset[i] == TYPE_DATA)
    imagepatch.patch(img, at + BREF_KEYBITS, bytes([63]))
    _fsck_fails(img, rf"data blockref key 0x0 at 0x{at:x}: data keybits 63")


def test_embedded_data_larger_than_the_inode(img):
    at = _inode(img, "/d/alpha")
    imagepatch.patch(img, at + META_SIZE, (1 << 57).to_bytes(8, "little"))
    _fsck_fails(img, rf"embedded data of {1 << 57} bytes exceeds 512")


def test_data_block_past_the_end(img):
    at = _inode(img, "/d/bravo")
    imagepatch.patch(img, at + META_SIZE, (1000).to_bytes(8, "little"))
    _fsck_fails(img, r"data block past the end of inode 0x[0-9a-f]+ \(size 1000\)")


def test_unknown_inode_type_and_long_name(img):
    at = _inode(img, "/d/bravo")
    imagepatch.patch(img, at + META_TYPE, bytes([3]))
    imagepatch.patch(img, at + META_NAMELEN, (300).to_bytes(2, "little"))
    _fsck_fails(img, r"has unknown type 3", r"name length 300 exceeds 256")


def test_symlink_target_with_a_nul(img):
    at = _inode(img, "/d/charlie") + INODE_BLOCKSET
    imagepatch.patch(img, at + 4, b"\0")
    _fsck_fails(img, r"PFS DATA: /d/charlie: symlink inode .* target holds a NUL byte")


def test_symlink_target_too_long(img):
    at = _inode(img, "/d/charlie")
    imagepatch.patch(img, at + META_OPFLAGS, bytes([0]))     # target "in blocks"
    imagepatch.patch(img, at + META_SIZE, (5000).to_bytes(8, "little"))
    _fsck_fails(img, r"/d/charlie: symlink inode .* target of 5000 bytes")

