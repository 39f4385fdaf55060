"""POSIX times, sizes and link counts, through a FUSE mount and through the API: atime set
at creation, ctime and mtime of a directory moved by every entry created, removed or
renamed in it, ctime moved by truncation and attribute changes (pjdfstest's
expectations), st_blocks from the data stored (the blockref's data_count, as the real
tools keep it), and `pyh2 umount` returning only once its server has exited."""
import os
import stat
import subprocess
import sys
import time

import pytest

import pyh2
from pyh2.testing.fusemount import is_mounted, mounted
from pyh2.refimages import REPO
from pyh2.mount import _alive

needs_fuse = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")

OLD_NS = 1_000_000_000_000_000_000     # 2001, in µs steps: what HAMMER2 keeps
OLD_US = OLD_NS // 1000


def since(t0_ns):
    """The first time HAMMER2 (µs) can stamp at or after host time t0_ns."""
    return t0_ns - t0_ns % 1000


def start():
    """A time every later modification is stamped at or after, and every earlier
    one before."""
    time.sleep(0.002)
    return since(time.time_ns())


def times(p):
    st = os.lstat(p)
    return st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns


# ----------------------------------------------------------------- through a mount

@needs_fuse
def test_times_through_the_mount(image, tmp_path):
    mnt = tmp_path / "mnt"
    with mounted(image, mnt):
        d = mnt / "d"
        d.mkdir()
        # creation: every type gets atime = mtime = ctime = the parent's new mtime/ctime
        makers = {"file": lambda p: os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)),
                  "dir": os.mkdir, "fifo": os.mkfifo,
                  "node": lambda p: os.mknod(p, stat.S_IFCHR | 0o600, os.makedev(1, 3)),
                  "symlink": lambda p: os.symlink("target", p)}
        for name, make in makers.items():
            t0 = start()
            make(d / name)
            a, m, c = times(d / name)
            assert a == m == c >= t0, name
            assert times(d)[1:] == (c, c), name
        f = d / "file"
        f.write_bytes(b"0123456789")
        os.utime(f, ns=(OLD_NS, OLD_NS))
        # attribute changes move ctime only
        for change in (lambda: os.chmod(f, 0o600), lambda: os.chown(f, 123, 456)):
            t0 = start()
            change()
            a, m, c = times(f)
            assert (a, m) == (OLD_NS, OLD_NS) and c >= t0
        # explicit atime and mtime are kept exactly; reads leave atime alone
        os.utime(f, ns=(OLD_NS + 5000, OLD_NS + 7000))
        assert f.read_bytes() == b"0123456789"
        assert times(f)[:2] == (OLD_NS + 5000, OLD_NS + 7000)
        # truncate, ftruncate, O_TRUNC, write: mtime and ctime
        def ftruncate():
            fd = os.open(f, os.O_WRONLY)
            os.ftruncate(fd, 3)
            os.close(fd)
        for change in (lambda: os.truncate(f, 5), ftruncate, lambda: os.truncate(f, 3),
                       lambda: os.close(os.open(f, os.O_WRONLY | os.O_TRUNC)),
                       lambda: f.write_bytes(b"new")):
            os.utime(f, ns=(OLD_NS, OLD_NS))
            t0 = start()
            change()
            a, m, c = times(f)
            assert a == OLD_NS and m == c >= t0
        # link: the file's ctime (its link count) and the new name's directory
        e = mnt / "e"
        e.mkdir()
        os.utime(e, ns=(OLD_NS, OLD_NS))
        t0 = start()
        os.link(f, e / "hard")
        assert times(f)[2] >= t0 and min(times(e)[1:]) >= t0
        # unlink of one name: its directory, and the other name's ctime
        os.utime(d, ns=(OLD_NS, OLD_NS))
        t0 = start()
        os.unlink(f)
        assert times(e / "hard")[2] >= t0 and min(times(d)[1:]) >= t0
        assert os.stat(e / "hard").st_nlink == 1
        # rename across directories: both directories and the renamed object
        os.utime(d, ns=(OLD_NS, OLD_NS))
        os.utime(e, ns=(OLD_NS, OLD_NS))
        os.utime(e / "hard", ns=(OLD_NS, OLD_NS))
        t0 = start()
        os.rename(e / "hard", d / "moved")
        _, m, c = times(d / "moved")
        assert m == OLD_NS and c >= t0
        assert min(times(d)[1:]) >= t0 and min(times(e)[1:]) >= t0
        # rename over an existing entry, within a directory; then rmdir
        for change in (lambda: os.rename(d / "moved", d / "fifo"),
                       lambda: os.rmdir(d / "dir")):
            os.utime(d, ns=(OLD_NS, OLD_NS))
            t0 = start()
            change()
            assert min(times(d)[1:]) >= t0
        assert sorted(os.listdir(d)) == ["fifo", "node", "symlink"]


@needs_fuse
def test_blocks_du_and_find_through_the_mount(image, tmp_path):
    """A 1 GiB sparse file holding 64 KiB takes 64 KiB (st_blocks, du) once committed;
    directories report nlink 1 (HAMMER2 has no '..' entries), which find and du take as
    "unknown" and so still descend into every directory."""
    mnt = tmp_path / "mnt"
    with mounted(image, mnt):
        fd = os.open(mnt / "sparse", os.O_CREAT | os.O_WRONLY, 0o644)
        os.ftruncate(fd, 1 << 30)
        os.pwrite(fd, os.urandom(65536), 512 << 20)
        os.fsync(fd)                            # the commit counts it
        os.close(fd)
        st = os.stat(mnt / "sparse")
        assert (st.st_size, st.st_blocks) == (1 << 30, 128)
        du = subprocess.run(["du", "-k", mnt / "sparse"], capture_output=True, text=True)
        assert du.stdout.split()[0] == "64"
        for i in range(3):
            sub = mnt / "a" / f"b{i}" / "c"
            sub.mkdir(parents=True)
            (sub / "f").write_bytes(b"x")
        assert os.stat(mnt / "a").st_nlink == 1
        found = subprocess.run(["find", mnt / "a", "-type", "f"], capture_output=True,
                               text=True, check=True).stdout.split()
        assert sorted(found) == [str(mnt / "a" / f"b{i}" / "c" / "f") for i in range(3)]
        du = subprocess.run(["du", mnt / "a"], capture_output=True, text=True, check=True)
        assert len(du.stdout.splitlines()) == 7          # a, 3 x b, 3 x c


@needs_fuse
@pytest.mark.parametrize("kind", ["file", "nbd"])
def test_umount_waits_for_the_server(kind, image, tmp_path, nbd_server):
    """pyh2.mount.umount and `pyh2 umount` return once the daemon has exited, whatever
    holds the image (a file, or an NBD export the server reaches by socket): after a
    lazy detach, the server goes on serving a file held open, and umount waits for it."""
    spec = str(image) if kind == "file" else nbd_server(image).uri
    mnt = tmp_path / "mnt"
    with mounted(spec, mnt) as pid:
        (mnt / "api").write_bytes(b"x" * 100_000)
        pyh2.mount.umount(str(mnt))
        assert not _alive(pid), "umount returned before the server exited"
    with mounted(spec, mnt) as pid:
        held = open(mnt / "held", "wb")
        try:
            um = subprocess.Popen([sys.executable, "-m", "pyh2", "umount", "-l", mnt],
                                  cwd=REPO, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 30
            while is_mounted(mnt) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            assert um.poll() is None and _alive(pid), "umount returned, the server runs"
            held.write(b"still served")
        finally:
            held.close()
        assert um.wait(60) == 0, um.stderr.read()
        assert not _alive(pid)
    with pyh2.open(image) as vol:
        assert sorted(vol.pfs("DATA").listdir("/")) == ["api", "held"]
        assert vol.pfs("DATA").read("/held") == b"still served"


# ----------------------------------------------------------------- through the API

def test_times_through_the_api(image):
    with pyh2.open(image, writable=True) as vol:
        pfs = vol.pfs("DATA")
        pfs.mkdir("/d")
        for name, make in (("dir", pfs.mkdir), ("fifo", pfs.mkfifo),
                           ("file", pfs.create)):
            t0 = start() // 1000
            make(f"/d/{name}")
            st, dst = pfs.stat(f"/d/{name}"), pfs.stat("/d")
            assert st.atime_us == st.mtime_us == st.ctime_us >= t0
            assert dst.mtime_us == dst.ctime_us == st.ctime_us
        t0 = start() // 1000
        pfs.symlink("target", "/d/symlink")
        assert pfs.stat("/d/symlink").atime_us >= t0
        # explicit times; a truncation then moves mtime and ctime
        pfs.utime("/d/file", OLD_US, OLD_US + 1)
        st = pfs.stat("/d/file")
        assert (st.mtime_us, st.atime_us) == (OLD_US, OLD_US + 1)
        t0 = start() // 1000
        pfs.truncate("/d/file", 10)
        st = pfs.stat("/d/file")
        assert st.atime_us == OLD_US + 1 and st.mtime_us == st.ctime_us >= t0
        # a link count change moves the file's ctime; a rename the object's and both
        # directories'
        pfs.mkdir("/e")
        pfs.link("/d/file", "/e/hard")
        pfs.utime("/d/file", OLD_US)
        t0 = start() // 1000
        pfs.unlink("/e/hard")
        st = pfs.stat("/d/file")
        assert st.mtime_us == OLD_US and st.ctime_us >= t0 and st.nlinks == 1
        t0 = start() // 1000
        pfs.rename("/d/file", "/e/file")
        assert pfs.stat("/e/file").ctime_us >= t0
        assert pfs.stat("/e/file").mtime_us == OLD_US
        for dpath in ("/d", "/e"):
            dst = pfs.stat(dpath)
            assert dst.mtime_us == dst.ctime_us >= t0


def brefs_bytes(pfs, path):
    """What the real tools count as an inode's data_count: the media bytes of every
    block under it."""
    return sum(b["bytes"] for b in pfs.blocks(path))


def test_blocks_through_the_api(image):
    """Stat.blocks is the data committed, in 512-byte units; the flush keeps every
    inode's data_count and inode_count as the real tools do (checked against a reference
    image below)."""
    with pyh2.open(image, writable=True) as vol:
        pfs = vol.pfs("DATA")
        pfs.create("/sparse")
        pfs.truncate("/sparse", 1 << 30)
        pfs.write("/sparse", os.urandom(65536), 512 << 20)
        pfs.mkdir("/d")
        pfs.create("/d/big", os.urandom(300_000))
        pfs.create("/d/small", b"embedded")
        vol.flush()
        assert pfs.stat("/sparse").blocks == 128
        assert pfs.stat("/d/big").blocks * 512 == brefs_bytes(pfs, "/d/big") > 300_000
        assert pfs.stat("/d/small").blocks == 0          # in the inode itself
        assert pfs.stat("/d").blocks == 2                # one inode, as the kernel says
        meta, bref = pfs._core.inode(pfs._namei("/"))
        assert bref["inode_count"] == 4          # sparse, d, big, small
        assert bref["data_count"] == brefs_bytes(pfs, "/")


def test_data_count_rule_matches_the_real_tools(ref_image):
    """The rule the flush follows, read back from an image the real tools made: each
    file's blockref data_count is the bytes of every block below it."""
    with pyh2.open(ref_image("basic")) as vol:
        pfs = vol.pfs("DATA")
        checked = 0
        for top, _, files in pfs.walk("/"):
            for name in files:
                path = os.path.join(top, name)
                if pfs.stat(path).type == "file":
                    assert pfs.stat(path).blocks * 512 == brefs_bytes(pfs, path), path
                    checked += 1
        assert checked > 20
        root = pfs._core.inode(pfs._namei("/"))[1]
        assert root["data_count"] == brefs_bytes(pfs, "/")
