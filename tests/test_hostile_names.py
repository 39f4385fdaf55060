"""Names, link targets and sizes read from an image are untrusted: a dirent renamed on media
to `../../../ESCAPED`, `a/b`, `.`, `..` or `x\\0y` (check codes recomputed, so only the
name is wrong) is an error naming the directory and the entry's key everywhere it is read,
and export never writes outside its destination; a bad link target or a huge size neither
escapes nor hangs."""
import errno
import os
import shutil
import time

import pytest

import pyh2
from pyh2.export import export
from pyh2.testing.cli import assert_clean_failure, run_pyh2
from pyh2.testing import imagepatch

BREF = 128
BLOCKSET = 0x200                # an inode's blockset / embedded data
DIRENT_NAMLEN = 0x38            # in a DIRENT blockref: embed.dirent.namlen
DIRENT_NAME = 0x40              # the name, in the check field
META_SIZE = 0x60                # inode meta: size

PLACEHOLDER = b"PLACEHOLDERNAME!"   # 16 bytes, as long as the longest bad name
TARGET = b"TARGET-TARGET"
BAD_NAMES = [b"../../../ESCAPED", b"a/b", b".", b"..", b"x\0y"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    img = tmp_path_factory.mktemp("names") / "base.h2"
    pyh2.newfs(img, 64 << 20)
    with pyh2.open(img, writable=True) as vol:
        pfs = vol.pfs("DATA")
        pfs.mkdir("/d")
        pfs.create("/d/" + PLACEHOLDER.decode(), b"payload")
        pfs.create("/d/ok", b"fine")
        pfs.symlink(TARGET.decode(), "/l")
        pfs.create("/huge", b"h" * 70_000)        # two data blocks
    return img


@pytest.fixture
def image(base, tmp_path):
    img = tmp_path / "v.h2"
    shutil.copy(base, img)
    return img


def inode_off(img, path):
    """Media offset of the inode at path (uncompressed 1 KiB inode blocks)."""
    with pyh2.open(img) as vol:
        pfs = vol.pfs("DATA")
        bref = pfs._core.inode(pfs.stat(path).inum)[1]
        assert bref["bytes"] == 1024
        return bref["data_off"]


def rename_on_media(img, new):
    """Rename /d's PLACEHOLDER entry to `new` in place; returns (dir inum, entry key)."""
    with pyh2.open(img) as vol:
        pfs = vol.pfs("DATA")
        dinum = pfs.stat("/d").inum
        key = next(k for name, _, _, k in pfs._core.readdir(dinum) if name == PLACEHOLDER)
    dir_off = inode_off(img, "/d")
    with open(img, "rb") as f:
        f.seek(dir_off)
        blk = f.read(1024)
    at = blk.index(PLACEHOLDER, BLOCKSET) - DIRENT_NAME
    assert at % BREF == 0
    bref = dir_off + at
    imagepatch.patch(img, bref + DIRENT_NAMLEN, len(new).to_bytes(2, "little"))
    imagepatch.patch(img, bref + DIRENT_NAME, new.ljust(len(PLACEHOLDER), b"\0"))
    imagepatch.fix_checks(img)
    return dinum, key


def tree(root):
    """Every path under root."""
    return sorted(os.path.join(d, n) for d, dirs, files in os.walk(root) for n in dirs + files)


def assert_check_codes_pass(img):
    with pyh2.open(img) as vol:
        assert not [e for e in vol.fsck()["errors"] if "check" in e]


def assert_names_entry(e, dinum, key):
    assert e.errno == errno.EINVAL, e
    assert f"directory 0x{dinum:x}" in str(e) and f"0x{key:x}" in str(e), e


@pytest.mark.parametrize("bad", BAD_NAMES, ids=["escape", "slash", "dot", "dotdot", "nul"])
def test_bad_dirent_name(image, tmp_path, bad):
    dinum, key = rename_on_media(image, bad)
    assert_check_codes_pass(image)
    with pyh2.open(image) as vol:
        pfs = vol.pfs("DATA")
        for call in (lambda: pfs.listdir("/d"), lambda: pfs.scandir("/d"),
                     lambda: list(pfs.walk("/"))):
            with pytest.raises(pyh2.H2Error) as ei:
                call()
            assert_names_entry(ei.value, dinum, key)
            assert "/d" in str(ei.value)
        assert pfs.read("/d/ok") == b"fine"     # a good name's lookup is unaffected
        dest = tmp_path / "a" / "b" / "out"
        dest.parent.mkdir(parents=True)
        outside = tree(tmp_path)
        with pytest.raises(pyh2.H2Error) as ei:
            export(pfs, str(dest))
        assert_names_entry(ei.value, dinum, key)
    assert [p for p in tree(tmp_path) if not p.startswith(str(dest))] == outside
    dest2 = tmp_path / "cli" / "out"
    for args in (("export", f"{image}:DATA", dest2), ("ls", "-lR", f"{image}:DATA")):
        assert_clean_failure(run_pyh2(*args), f"directory 0x{dinum:x}", f"0x{key:x}")
    assert not list(tmp_path.rglob("ESCAPED"))


@pytest.mark.parametrize("target, code", [(b"TARGET\0TARGET", errno.EINVAL),
                                          (b"", errno.ENAMETOOLONG)], ids=["nul", "long"])
def test_bad_symlink_target(image, tmp_path, target, code):
    off = inode_off(image, "/l")
    if target:
        with open(image, "rb") as f:
            f.seek(off)
            at = f.read(1024).index(TARGET, BLOCKSET)
        imagepatch.patch(image, off + at, target)
    else:       # a size no host link target can have
        imagepatch.patch(image, off + META_SIZE, (10_000).to_bytes(8, "little"))
    imagepatch.fix_checks(image)
    assert_check_codes_pass(image)
    with pyh2.open(image) as vol:
        pfs = vol.pfs("DATA")
        with pytest.raises(pyh2.H2Error) as ei:
            pfs.readlink("/l")
        assert ei.value.errno == code and "/l" in str(ei.value)
        with pytest.raises(pyh2.H2Error):
            export(pfs, str(tmp_path / "out"))
    assert_clean_failure(run_pyh2("ls", "-l", f"{image}:DATA", "/l"), "/l", "symlink target")
    assert_clean_failure(run_pyh2("export", f"{image}:DATA", tmp_path / "cli"), "/l")


@pytest.mark.timeout(60)
def test_huge_size_exports_in_bounded_time(image, tmp_path):
    """An inode claiming 2^60 bytes: export skips the holes at once and either writes a
    sparse file that size or says the host cannot hold it."""
    imagepatch.patch(image, inode_off(image, "/huge") + META_SIZE, (1 << 60).to_bytes(8, "little"))
    imagepatch.fix_checks(image)
    with pyh2.open(image) as vol:
        pfs = vol.pfs("DATA")
        assert pfs.stat("/huge").size == 1 << 60
        assert [pfs.next_data("/huge", off) for off in (0, 70_000, 1 << 40)] == \
            [0, 70_000, 1 << 60]
        t = time.monotonic()
        try:
            export(pfs, str(tmp_path / "out"))
            st = os.stat(tmp_path / "out" / "huge")
            assert st.st_size == 1 << 60 and st.st_blocks * 512 < 1 << 20
        except pyh2.H2Error as e:
            assert "huge" in str(e) and "cannot hold" in str(e)
        assert time.monotonic() - t < 10
    proc = run_pyh2("export", f"{image}:DATA", tmp_path / "cli")
    assert proc.returncode == 0 or "cannot hold" in proc.stderr.decode()
    assert b"Traceback" not in proc.stderr


def test_export_does_not_follow_symlinks_in_dest(image, tmp_path):
    """A symlink already in DEST where the image has a directory or a file: export refuses
    it instead of writing through it."""
    victim = tmp_path / "victim"
    victim.mkdir()
    for name in ("d", "huge"):
        dest = tmp_path / f"out-{name}"
        dest.mkdir()
        (dest / name).symlink_to(victim)
        with pyh2.open(image) as vol:
            with pytest.raises(pyh2.H2Error) as ei:
                export(vol.pfs("DATA"), str(dest))
        assert "outside" in str(ei.value) and name in str(ei.value)
        assert list(victim.iterdir()) == []
