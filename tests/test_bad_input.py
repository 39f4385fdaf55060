"""Damaged or wrong input must give a clean H2Error (or a clean CLI failure), never a crash
or a silently wrong answer."""
import errno
import os
import re
import subprocess
import sys

import pytest

import pyh2
from pyh2.testing.cli import assert_clean_failure, run_pyh2
from pyh2 import refimages

ZONE = 2 << 30          # a volume header every 2 GiB
VOLHDR_BYTES = 64 << 10
MiB = 1 << 20
OFFSET_RE = re.compile(r"0x[0-9a-fA-F]+|\d+")

# Walks and reads everything in a child, so a segfault shows as a signal, not a dead pytest.
CHILD = """
import sys, pyh2
from pyh2.refimages import read_all
try:
    with pyh2.open(sys.argv[1]) as vol:
        read_all(vol)
except pyh2.H2Error as e:
    sys.exit(f"{type(e).__name__}: {e}")
"""


def flip_bit(path, offset, mask=0x01):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ mask]))


def files_of(name):
    return [e for e in refimages.load_manifest(name)["trees"]["DATA"] if e["type"] == "file"]


def data_blocks(pfs, path):
    return [b for b in pfs.blocks(path) if b["type"] == "data"]


def covers(block, offset):
    return block["data_off"] <= offset < block["data_off"] + block["bytes"]


def assert_names_offset(msg, key):
    assert re.search(rf"\b(0x0*{key:x}|{key})\b", msg), f"file offset {key:#x} not in: {msg}"


def _median_data_offset(img):
    with pyh2.open(img) as vol:
        pfs = vol.pfs("DATA")
        offs = sorted(b["data_off"] for e in files_of("basic") for b in data_blocks(pfs, e["path"]))
    return offs[len(offs) // 2]


@pytest.mark.parametrize("cut", ["1MiB", "mid-data", "200MiB"])
def test_truncated_image(cut, scratch_copy):
    img = scratch_copy("basic")
    size = {"1MiB": MiB, "200MiB": 200 * MiB}.get(cut) or _median_data_offset(img)
    os.truncate(img, size)

    proc = subprocess.run([sys.executable, "-c", CHILD, str(img)], cwd=refimages.REPO,
                          capture_output=True, timeout=600)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode in (0, 1), f"child died with status {proc.returncode}: {err}"
    assert "Traceback" not in err, err

    try:
        with pyh2.open(img) as vol:
            refimages.read_all(vol)
            diffs = refimages.diff_pfs("basic", "DATA", vol.pfs("DATA"))
    except pyh2.H2Error as e:
        assert e.errno in (errno.EIO, errno.EINVAL), e
        assert OFFSET_RE.search(str(e)), f"no offset in: {e}"
        return
    # basic's blocks all lie below ~150 MiB, so only a cut past them may read correctly
    assert cut == "200MiB", f"read everything from an image cut at {size:#x}"
    assert not diffs, diffs


@pytest.mark.parametrize("name", ["basic", "pfs-snapshot"])
def test_all_volume_headers_zeroed(name, scratch_copy):
    img = scratch_copy(name)
    with open(img, "r+b") as f:
        for off in range(0, min(4 * ZONE, img.stat().st_size), ZONE):
            f.seek(off)
            f.write(bytes(VOLHDR_BYTES))
    with pytest.raises(pyh2.H2Error) as ei:
        pyh2.open(img)
    assert ei.value.errno == errno.EINVAL
    assert "volume header" in str(ei.value).lower()
    assert_clean_failure(run_pyh2("info", img), "volume header")


def test_one_volume_header_corrupted(scratch_copy):
    img = scratch_copy("grown")
    with pyh2.open(img) as vol:
        best = vol.best_zone
        headers = {h["zone"]: h for h in vol.volume_headers()}
    others = [z for z, h in headers.items() if h["valid"] and z != best]
    assert others, "grown should have a second valid volume header"

    flip_bit(img, headers[best]["offset"] + 0x40)  # fsid: inside every header CRC
    with pyh2.open(img) as vol:
        assert vol.best_zone in others
        assert any(re.search(rf"volume header #?{best}\b|zone[ .]{best}\b", w)
                   for w in vol.warnings), vol.warnings
        assert not {h["zone"]: h for h in vol.volume_headers()}[best]["valid"]
        diffs = refimages.diff_pfs("grown", "DATA", vol.pfs("DATA"))
    assert not diffs, diffs


def test_flipped_data_block(scratch_copy):
    img = scratch_copy("basic")
    files = files_of("basic")
    with pyh2.open(img) as vol:
        pfs = vol.pfs("DATA")
        blocks = {e["path"]: data_blocks(pfs, e["path"]) for e in files}
    # a block at a non-zero file offset, so the offset in the message is unambiguous
    victim, bref = next((p, b) for p, bs in sorted(blocks.items()) for b in bs
                        if b["key"] > 0 and b["bytes"] > 10)
    bad = bref["data_off"] + 10
    flip_bit(img, bad)

    with pyh2.open(img) as vol:
        pfs = vol.pfs("DATA")
        with pytest.raises(pyh2.CheckError) as ei:
            pfs.read(victim)
        msg = str(ei.value)
        assert ei.value.errno == errno.EIO
        assert victim in msg and "check" in msg.lower(), msg
        assert_names_offset(msg, bref["key"])
        for e in files:
            if not any(covers(b, bad) for b in blocks[e["path"]]):
                assert refimages.sha256_of(pfs, e["path"], e["size"]) == e["sha256"], e["path"]
    assert_clean_failure(run_pyh2("cat", f"{img}:DATA", victim), victim)


def test_flipped_indirect_block(scratch_copy):
    img, path = scratch_copy("bigfile"), "/big/text40m.txt"
    with pyh2.open(img) as vol:
        ind = next(b for b in vol.pfs("DATA").blocks(path) if b["type"] == "indirect")
    flip_bit(img, ind["data_off"] + 10)

    with pyh2.open(img) as vol:
        with pytest.raises(pyh2.CheckError) as ei:
            vol.pfs("DATA").read(path)
        assert ei.value.errno == errno.EIO
        assert path in str(ei.value), ei.value
        assert vol.fsck()["errors"]
    proc = run_pyh2("fsck", img)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)


def test_nonexistent_path(ref_image):
    img = ref_image("basic")
    with pyh2.open(img) as vol:
        pfs = vol.pfs("DATA")
        for op in (pfs.stat, pfs.read, pfs.listdir):
            with pytest.raises(pyh2.H2Error) as ei:
                op("/nope")
            assert ei.value.errno == errno.ENOENT and "/nope" in str(ei.value), ei.value
        with pytest.raises(pyh2.H2Error) as ei:
            vol.pfs("NOPE")
        assert ei.value.errno == errno.ENOENT and "NOPE" in str(ei.value), ei.value
    proc = run_pyh2("cat", img, "/nope")
    assert proc.returncode == 1
    assert_clean_failure(proc, "/nope")


def test_nonexistent_image(tmp_path):
    missing = tmp_path / "missing.h2"
    with pytest.raises(OSError) as ei:
        pyh2.open(missing)
    assert isinstance(ei.value, (pyh2.H2Error, FileNotFoundError)), type(ei.value)
    assert ei.value.errno == errno.ENOENT
    assert "missing.h2" in str(ei.value), ei.value
    assert_clean_failure(run_pyh2("info", missing), "missing.h2")


@pytest.mark.parametrize("args, needle", [
    (("newfs", "{img}", "--size", "-1"), "size '-1' out of range"),
    (("newfs", "{img}", "--size", "inf"), "size 'inf' out of range"),
    (("newfs", "{img}", "--size", "1e30"), "size '1e30' out of range"),
    (("newfs", "{img}", "--size", "12Q"), "bad size '12Q'"),
    (("newfs", "{new}", "--size", "1M"), "1048576 bytes is too small"),
    (("growfs", "{img}", "--size", "-1"), "size '-1' out of range"),
    (("truncate", "{img}", "/f", "abc"), "bad size 'abc'"),
    (("destroy-inum", "{img}", "xyz"), "bad inode number 'xyz'"),
    (("destroy-inum", "{img}", "-3"), "inode number '-3' out of range"),
    (("show", "{img}", "--zone", "3"), "no volume header zone 3 (the volume has zones 0 to 0)"),
    (("show", "{img}", "--zone", "-1"), "must be at least 0"),
    (("mkdir", "-m", "9999", "{img}", "/d"), "bad mode '9999'"),
    (("chmod", "17777", "{img}", "/"), "mode '17777' out of range"),
    (("mount", "{img}", "{tmp}", "--threads", "0"), "must be at least 1"),
    (("torture", "--workers", "0"), "must be at least 1"),
    (("torture", "--image-size", "big"), "bad size 'big'"),
])
def test_bad_arguments_are_named(tmp_path, args, needle):
    """Every malformed or out-of-range argument is refused with a message naming it, never a
    traceback, and the image is left as it was."""
    img = tmp_path / "v.h2"
    pyh2.newfs(img, 64 << 20)
    before = img.read_bytes()
    proc = run_pyh2(*(a.format(img=img, new=tmp_path / "new.h2", tmp=tmp_path) for a in args))
    assert_clean_failure(proc, needle)
    assert img.read_bytes() == before


def test_api_numbers_out_of_range(tmp_path):
    """Negative or oversized numbers given to the API: H2Error EINVAL naming the path, and
    nothing changed; a read asking far more than the file holds returns what it holds
    (nothing that size is allocated)."""
    img = tmp_path / "v.h2"
    pyh2.newfs(img, 64 << 20)
    with pyh2.open(img, writable=True) as vol:
        pfs = vol.pfs("DATA")
        pfs.create("/f", b"abc")
        for call in (lambda: pfs.read("/f", -1, 2), lambda: pfs.read("/f", 0, -2),
                     lambda: pfs.readinto("/f", bytearray(4), -1),
                     lambda: pfs.write("/f", b"x", -5), lambda: pfs.truncate("/f", -5),
                     lambda: pfs.chmod("/f", 1 << 40), lambda: pfs.utime("/f", -1)):
            with pytest.raises(pyh2.H2Error) as ei:
                call()
            assert ei.value.errno == errno.EINVAL and "/f: argument out of range" in str(ei.value)
        assert pfs.read("/f", 0, 1 << 62) == b"abc"
        assert pfs.read("/f", 1, (1 << 64) - 1) == b"bc"
        assert pfs.read("/f", 1 << 62, 1 << 62) == b""
        st = pfs.stat("/f")
        assert (st.size, st.mode & 0o7777) == (3, 0o644)


def test_api_sizes_past_the_largest_file(tmp_path):
    """Offsets and sizes past Linux's largest file (2^63-1) are EFBIG naming the path; up
    to it they work (a sparse file)."""
    img = tmp_path / "v.h2"
    pyh2.newfs(img, 64 << 20)
    with pyh2.open(img, writable=True) as vol:
        pfs = vol.pfs("DATA")
        pfs.create("/f", b"abc")
        for call in (lambda: pfs.write("/f", b"abc", 1 << 63),
                     lambda: pfs.write("/f", b"abc", (1 << 63) - 3),
                     lambda: pfs.truncate("/f", (1 << 64) - 1),
                     lambda: pfs.truncate("/f", 1 << 63)):
            with pytest.raises(pyh2.H2Error) as ei:
                call()
            assert ei.value.errno == errno.EFBIG and "/f:" in str(ei.value)
        assert pfs.stat("/f").size == 3
        pfs.write("/f", b"abc", (1 << 63) - 4)
        assert pfs.stat("/f").size == (1 << 63) - 1
        assert pfs.read("/f", (1 << 63) - 5, 8) == b"\0abc"


def test_api_nul_in_names_labels_and_targets(tmp_path):
    """A NUL in a name, a PFS label or a link target given by a caller is EINVAL (it was
    stored, or silently cut at the NUL); a link target past PATH_MAX - 1 is ENAMETOOLONG."""
    img = tmp_path / "v.h2"
    pyh2.newfs(img, 64 << 20)
    with pyh2.open(img, writable=True) as vol:
        pfs = vol.pfs("DATA")
        pfs.create("/x", b"")
        for call in (lambda: pfs.create("/x\0y"), lambda: pfs.mkdir("/x\0y"),
                     lambda: pfs.stat("/x\0y"), lambda: pfs.symlink("t", "/x\0y"),
                     lambda: pfs.symlink("a\0b", "/s"), lambda: pfs.rename("/x", "/x\0y"),
                     lambda: vol.pfs_create("NEW\0X"), lambda: vol.pfs("DATA\0X"),
                     lambda: vol.snapshot("DATA", "SNAP\0X")):
            with pytest.raises(pyh2.H2Error) as ei:
                call()
            assert ei.value.errno == errno.EINVAL and "NUL" in str(ei.value)
        with pytest.raises(pyh2.H2Error) as ei:
            pfs.symlink("t" * 4096, "/s")
        assert ei.value.errno == errno.ENAMETOOLONG and "/s" in str(ei.value)
        pfs.symlink("t" * 4095, "/s")
        assert pfs.readlink("/s") == "t" * 4095
        assert sorted(pfs.listdir("/")) == ["s", "x"]
        assert {p.label for p in vol.pfs_list()} == {"DATA", "LOCAL"}
    with pytest.raises(pyh2.H2Error) as ei:
        pyh2.newfs(tmp_path / "w.h2", 64 << 20, label="A\0B")
    assert ei.value.errno == errno.EINVAL and not (tmp_path / "w.h2").exists()


def test_api_volume_sizes_and_counts(tmp_path):
    """growfs/newfs sizes and header counts out of range: H2Error EINVAL naming the argument
    (a bare OverflowError, or accepted), the image untouched."""
    img = tmp_path / "v.h2"
    pyh2.newfs(img, 64 << 20)
    before = img.read_bytes()
    for call, needle in ((lambda: pyh2.newfs(img, -1), "size -1"),
                         (lambda: pyh2.newfs(img, 1 << 64), f"size {1 << 64}"),
                         (lambda: pyh2.newfs(img, 64 << 20, volhdrs=-1), "volhdrs -1"),
                         (lambda: pyh2.newfs(img, 64 << 20, volhdrs=99), "volhdrs 99")):
        with pytest.raises(pyh2.H2Error) as ei:
            call()
        assert ei.value.errno == errno.EINVAL and needle in str(ei.value)
    with pyh2.open(img, writable=True) as vol:
        for size in (-1, 1 << 64):
            with pytest.raises(pyh2.H2Error) as ei:
                vol.growfs(size)
            assert ei.value.errno == errno.EINVAL and f"size {size}" in str(ei.value)
    assert img.read_bytes() == before
    assert_clean_failure(run_pyh2("newfs", img, "--size", "64M", "--volhdrs", "99"),
                         "volhdrs 99")
    assert img.read_bytes() == before


def test_close_discards_what_was_not_flushed(tmp_path):
    """A bare close() keeps the last flush (as an exception leaving `with` does); a clean
    `with` exit commits."""
    img = tmp_path / "v.h2"
    pyh2.newfs(img, 64 << 20)
    vol = pyh2.open(img, writable=True)
    vol.pfs("DATA").create("/flushed", b"1")
    vol.flush()
    vol.pfs("DATA").create("/dropped", b"2")
    vol.close()
    with pytest.raises(RuntimeError):
        with pyh2.open(img, writable=True) as vol:
            vol.pfs("DATA").create("/raised", b"3")
            raise RuntimeError
    with pyh2.open(img, writable=True) as vol:
        vol.pfs("DATA").create("/committed", b"4")
    with pyh2.open(img) as vol:
        assert sorted(vol.pfs("DATA").listdir("/")) == ["committed", "flushed"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "dir", "socket"])
def test_non_image_files_are_refused_without_blocking(tmp_path, kind):
    """A FIFO, socket or directory named as an image is refused, naming it, before anything
    waits on it (open() of a FIFO blocked for a writer)."""
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    else:
        import socket
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
    what = {"fifo": "a FIFO", "dir": "a directory", "socket": "a socket"}[kind]
    (tmp_path / "mnt").mkdir()
    for call in (lambda: pyh2.open(path), lambda: pyh2.open(path, writable=True),
                 lambda: pyh2.newfs(path, 64 << 20)):
        with pytest.raises(pyh2.H2Error) as ei:
            call()
        assert ei.value.errno == errno.EINVAL and f"{path}: {what}" in str(ei.value)
    for args in (("fsck", path), ("info", path), ("newfs", path, "--size", "64M"),
                 ("put", "/etc/hostname", f"{path}:DATA", "/f"),
                 ("mount", path, tmp_path / "mnt")):
        proc = subprocess.run([sys.executable, "-m", "pyh2", *map(str, args)],
                              cwd=refimages.REPO, capture_output=True, timeout=20)
        assert_clean_failure(proc, f"{path}: {what}")
