"""What the kernel caches of a `pyh2 mount` (names and attributes, for an hour) and what keeps
it right: every change to them passes through the kernel, except st_blocks, which a commit
moves and the server then invalidates itself."""
import os
import re
import time

import pytest

from pyh2.testing.fusemount import mounted

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")


def wait_for(cond, timeout=60.0):
    """Poll cond() until true; False if it never is (the caller asserts)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_commit_moving_st_blocks_is_seen_at_once(image, tmp_path):
    """st_blocks counts what the last commit wrote: a stat cached before a commit does not
    outlive it, whether the data grew or was cut, and whatever made the commit: fsync, 64 MiB
    written, the background interval (no request at all)."""
    mnt = tmp_path / "mnt"
    with mounted(image, mnt, "--flush-interval", "0"):
        with open(mnt / "f", "wb") as f:
            f.write(os.urandom(65536))
            f.flush()
            assert os.fstat(f.fileno()).st_blocks == 0     # cached: nothing committed yet
            os.fsync(f.fileno())
            assert os.fstat(f.fileno()).st_blocks == 128
            os.ftruncate(f.fileno(), 0)
            assert os.stat(mnt / "f").st_blocks == 128     # the truncation is not committed
            os.fsync(f.fileno())
            assert os.stat(mnt / "f").st_blocks == 0
        (mnt / "g").write_bytes(os.urandom(65536))
        assert os.stat(mnt / "g").st_blocks == 0
        with open(mnt / "big", "wb") as f:                 # past 64 MiB pending: a commit
            for _ in range(72):
                f.write(os.urandom(1 << 20))
        assert os.stat(mnt / "g").st_blocks == 128
    with mounted(image, mnt, "--flush-interval", "1"):
        (mnt / "h").write_bytes(os.urandom(65536))
        assert os.stat(mnt / "h").st_blocks == 0
        assert wait_for(lambda: os.stat(mnt / "h").st_blocks == 128)


def requests(log, since, nodeids):
    """The requests in the server's trace after offset `since` naming one of nodeids."""
    with open(log) as f:
        f.seek(since)
        return [m.group(1) for m in re.finditer(r"opcode: (\w+) \(\d+\), nodeid: (\d+)", f.read())
                if int(m.group(2)) in nodeids]


def test_names_and_attributes_are_answered_from_the_kernel_cache(image, tmp_path):
    """Seconds later, stat of a name looked up before, of its directory, and of a name known
    to be absent reach no server; a name created after its absence was cached is found."""
    mnt, log = tmp_path / "mnt", tmp_path / "trace.log"
    with mounted(image, mnt, "--debug", "--log", str(log)):
        os.mkdir(mnt / "d")
        (mnt / "d" / "f").write_bytes(b"data")
        st, dst = os.stat(mnt / "d" / "f"), os.stat(mnt / "d")
        assert not os.path.exists(mnt / "d" / "absent")
        time.sleep(1.5)                                  # the old cache lasted a second
        since = os.path.getsize(log)
        for _ in range(3):
            assert os.stat(mnt / "d" / "f") == st and os.stat(mnt / "d") == dst
            assert not os.path.exists(mnt / "d" / "absent")
        assert requests(log, since, {1, st.st_ino, dst.st_ino}) == []
        (mnt / "d" / "absent").write_bytes(b"now here")
        assert (mnt / "d" / "absent").read_bytes() == b"now here"
        assert sorted(os.listdir(mnt / "d")) == ["absent", "f"]


def test_two_opens_of_a_file_agree(image, tmp_path):
    """Two open files of one inode see each other's writes, sizes and truncations at once,
    and so does a stat by name."""
    mnt = tmp_path / "mnt"
    with mounted(image, mnt):
        (mnt / "f").write_bytes(b"x" * 10)
        a = os.open(mnt / "f", os.O_RDWR)
        b = os.open(mnt / "f", os.O_RDONLY)
        try:
            assert os.fstat(b).st_size == 10
            os.pwrite(a, b"tail", 100_000)
            assert os.fstat(b).st_size == os.stat(mnt / "f").st_size == 100_004
            assert os.pread(b, 4, 100_000) == b"tail"
            os.ftruncate(a, 3)
            assert os.fstat(b).st_size == 3 and os.pread(b, 100, 0) == b"xxx"
            os.truncate(mnt / "f", 5)
            assert os.fstat(a).st_size == 5 and os.pread(a, 100, 0) == b"xxx\0\0"
        finally:
            os.close(a)
            os.close(b)
