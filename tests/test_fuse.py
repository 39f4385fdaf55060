"""A PFS mounted through the kernel's FUSE (`pyh2 mount`): real tools on the mount, POSIX
semantics checked with os.stat, and the image checked offline after unmount."""
import ctypes
import errno
import fcntl
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
import uuid

import pytest

import pyh2
from pyh2 import newfs_cluster, open_cluster
from pyh2 import refimages
from pyh2.testing.fusemount import fsck_clean, is_mounted, mounted
from pyh2.testing.fusemount import run_cli as run
from pyh2 import _core
from pyh2.mount import READAHEAD_KB, _alive

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")

MTIME_NS = 1_500_000_000_123_456_000     # µs precision: what HAMMER2 keeps


def image_digest(path):
    """sha256 over the data extents of a sparse image, with their offsets (reading its
    gigabytes of holes would take seconds): a write anywhere changes it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        end, off = os.fstat(f.fileno()).st_size, 0
        h.update(str(end).encode())
        while off < end:
            try:
                off = os.lseek(f.fileno(), off, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:       # only a hole is left
                    break
                raise
            stop = os.lseek(f.fileno(), off, os.SEEK_HOLE)
            f.seek(off)
            h.update(off.to_bytes(8, "little"))
            while off < stop:
                chunk = f.read(min(4 << 20, stop - off))
                h.update(chunk)
                off += len(chunk)
    return h.hexdigest()


def volume_tree(img, prefix):
    """tree_from_volume of the PFS below prefix, paths relative to it."""
    with pyh2.open(img) as vol:
        tree = refimages.tree_from_volume(vol.pfs("DATA"))
    return [dict(e, path=e["path"][len(prefix):]) for e in tree
            if e["path"].startswith(prefix + "/")]


def make_tree(root):
    """A host tree with the shapes a filesystem gets wrong: block boundaries, holes, long
    names, hardlinks across directories, symlinks, a fifo, odd modes and owners, old mtimes."""
    rnd = __import__("random").Random(7)
    (root / "d1" / "d2" / "d3").mkdir(parents=True)
    (root / "empty").mkdir()
    sizes = [0, 1, 1000, 65535, 65536, 65537, 200_000, (1 << 20) + 17]
    for i, n in enumerate(sizes):
        (root / "d1" / f"f{n}").write_bytes(rnd.randbytes(n))
    with open(root / "d1" / "d2" / "sparse", "wb") as f:
        f.truncate(5 << 20)
        f.seek(4 << 20)
        f.write(b"tail" * 1000)
    (root / ("n" * 255)).write_bytes(b"long name")
    (root / "d1" / "d2" / "d3" / "ünïcødé.txt").write_text("utf-8 name\n")
    os.link(root / "d1" / "f1000", root / "d1" / "d2" / "hardlink")
    os.symlink("../f1000", root / "d1" / "d2" / "rel")
    os.symlink("/nonexistent/target", root / "dangling")
    os.symlink("x" * 1000, root / "longlink")
    os.mkfifo(root / "pipe.fifo")
    os.chmod(root / "d1" / "f1", 0o4755)
    os.chmod(root / "d1" / "f0", 0o600)
    os.chmod(root / "empty", 0o1777)
    os.chown(root / "d1" / "f65536", 1234, 5678)
    for dirpath, dirs, files in os.walk(root, topdown=False):
        for n in files + dirs:
            os.utime(os.path.join(dirpath, n), ns=(MTIME_NS, MTIME_NS), follow_symlinks=False)


def test_cp_tar_diff_through_mount(image, tmp_path):
    src, mnt = tmp_path / "src", tmp_path / "mnt"
    src.mkdir()
    make_tree(src)
    expected = refimages.tree_from_dir(src)
    with mounted(image, mnt):
        subprocess.run(["cp", "-a", str(src), str(mnt / "a")], check=True)
        r = subprocess.run(["diff", "-r", "--no-dereference", "-x", "*.fifo", str(src), str(mnt / "a")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        assert refimages.compare_trees(expected, refimages.tree_from_dir(mnt / "a")) == []
        assert os.stat(mnt / "a" / "d1" / "f65536").st_uid == 1234
        # tar out of the mount, tar into it again
        (tmp_path / "untar").mkdir()
        subprocess.run(f"tar cf - -C {mnt} a | tar xpf - -C {tmp_path / 'untar'}",
                       shell=True, check=True)
        os.mkdir(mnt / "b")
        subprocess.run(f"tar cf - -C {src} . | tar xpf - -C {mnt / 'b'}", shell=True,
                       check=True)
        subprocess.run(["cp", "-a", str(mnt / "b"), str(tmp_path / "out")], check=True)
    assert refimages.compare_trees(expected, refimages.tree_from_dir(tmp_path / "untar" / "a")) == []
    assert refimages.compare_trees(expected, refimages.tree_from_dir(tmp_path / "out")) == []
    fsck_clean(image)
    assert refimages.compare_trees(expected, volume_tree(image, "/a")) == []
    assert refimages.compare_trees(expected, volume_tree(image, "/b")) == []


@pytest.mark.skipif(not shutil.which("git"), reason="git is not installed")
def test_git_repository_on_mount(image, tmp_path):
    mnt = tmp_path / "mnt"
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@e", HOME=str(tmp_path))

    def git(*args):
        return subprocess.run(["git", "-C", str(mnt / "repo"), *args], env=env, check=True,
                              capture_output=True, text=True).stdout

    with mounted(image, mnt):
        os.mkdir(mnt / "repo")
        git("init", "-q")
        for i in range(30):
            (mnt / "repo" / f"file{i}.txt").write_text(f"line {i}\n" * (i * 50))
        git("add", "-A")
        git("commit", "-q", "-m", "first")
        (mnt / "repo" / "file3.txt").write_text("changed\n")
        os.rename(mnt / "repo" / "file4.txt", mnt / "repo" / "moved.txt")
        git("add", "-A")
        git("commit", "-q", "-m", "second")
        git("gc", "-q")
        assert git("log", "--format=%s").split() == ["second", "first"]
        git("fsck", "--strict")
        assert git("status", "--porcelain") == ""
        head = git("rev-parse", "HEAD")
    fsck_clean(image)
    # the repository as committed to the image, read back by pyh2 itself
    out = tmp_path / "export"
    r = run("export", image, out)
    assert r.returncode == 0, r.stderr
    check = subprocess.run(["git", "-C", str(out / "repo"), "fsck", "--strict"], env=env,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert subprocess.run(["git", "-C", str(out / "repo"), "rev-parse", "HEAD"], env=env,
                          capture_output=True, text=True).stdout == head
    assert (out / "repo" / "file3.txt").read_text() == "changed\n"


def renameat2(src, dst, flags):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, os.fsencode(src), -100, os.fsencode(dst), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(src))


def seek_listing(path, first, mutate):
    """readdir `first` names, telldir, mutate(), seekdir back and read the rest (libc)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.opendir.restype = libc.readdir.restype = ctypes.c_void_p
    libc.opendir.argtypes = [ctypes.c_char_p]
    libc.readdir.argtypes = libc.telldir.argtypes = libc.closedir.argtypes = [ctypes.c_void_p]
    libc.telldir.restype = ctypes.c_long
    libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
    d = libc.opendir(os.fsencode(path))
    assert d, os.strerror(ctypes.get_errno())

    def names(limit):
        out = []
        while len(out) < limit and (ent := libc.readdir(d)):
            out.append(ctypes.string_at(ent + 19).decode())   # struct dirent's d_name
        return out

    try:
        head = names(first)
        pos = libc.telldir(d)
        mutate()
        libc.seekdir(d, pos)
        return head, names(1 << 30)
    finally:
        libc.closedir(d)


def test_posix_semantics(image, tmp_path):
    mnt = tmp_path / "mnt"
    inums = {}
    with mounted(image, mnt):
        os.makedirs(mnt / "x" / "y")
        os.mkdir(mnt / "z")
        (mnt / "x" / "f").write_bytes(b"hello world")
        # hardlinks across directories share the inode and count links
        os.link(mnt / "x" / "f", mnt / "z" / "g")
        st = os.stat(mnt / "z" / "g")
        assert st.st_nlink == 2 and st.st_ino == os.stat(mnt / "x" / "f").st_ino
        # renames across directories: a file, a directory, over an existing file
        os.rename(mnt / "x" / "f", mnt / "x" / "y" / "f2")
        os.rename(mnt / "x" / "y", mnt / "z" / "y")
        (mnt / "z" / "victim").write_bytes(b"old")
        os.rename(mnt / "z" / "y" / "f2", mnt / "z" / "victim")
        assert (mnt / "z" / "victim").read_bytes() == b"hello world"
        assert os.stat(mnt / "z" / "victim").st_nlink == 2
        # a directory over an empty directory; not over a non-empty one
        os.mkdir(mnt / "e1")
        os.mkdir(mnt / "e2")
        os.rename(mnt / "e1", mnt / "e2")
        assert not os.path.exists(mnt / "e1") and os.path.isdir(mnt / "e2")
        with pytest.raises(OSError) as ei:
            os.rename(mnt / "e2", mnt / "z")
        assert ei.value.errno == errno.ENOTEMPTY
        with pytest.raises(OSError) as ei:
            os.rename(mnt / "z", mnt / "z" / "y" / "inside")
        assert ei.value.errno == errno.EINVAL
        # RENAME_NOREPLACE refuses an existing target; RENAME_EXCHANGE is not supported
        (mnt / "n1").write_bytes(b"1")
        (mnt / "n2").write_bytes(b"2")
        with pytest.raises(OSError) as ei:
            renameat2(mnt / "n1", mnt / "n2", 1)
        assert ei.value.errno == errno.EEXIST
        renameat2(mnt / "n1", mnt / "n3", 1)
        with pytest.raises(OSError) as ei:
            renameat2(mnt / "n2", mnt / "n3", 2)
        assert ei.value.errno == errno.EINVAL
        assert (mnt / "n2").read_bytes() == b"2" and (mnt / "n3").read_bytes() == b"1"
        # removal errors
        with pytest.raises(OSError) as ei:
            os.rmdir(mnt / "z")
        assert ei.value.errno == errno.ENOTEMPTY
        with pytest.raises(OSError) as ei:
            os.unlink(mnt / "z" / "y")
        assert ei.value.errno in (errno.EISDIR, errno.EPERM)
        with pytest.raises(OSError) as ei:
            os.mkdir(mnt / "z")
        assert ei.value.errno == errno.EEXIST
        # symlink, fifo (data passes through the kernel pipe), a device node
        os.symlink("z/victim", mnt / "sl")
        assert os.readlink(mnt / "sl") == "z/victim"
        assert (mnt / "sl").read_bytes() == b"hello world"
        os.mkfifo(mnt / "fifo", 0o640)
        got = []
        reader = threading.Thread(target=lambda: got.append(open(mnt / "fifo", "rb").read()),
                                  daemon=True)
        reader.start()
        with open(mnt / "fifo", "wb") as f:
            f.write(b"through the fifo")
        reader.join(30)
        assert got == [b"through the fifo"]
        assert stat.S_ISFIFO(os.stat(mnt / "fifo").st_mode)
        os.mknod(mnt / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        assert os.stat(mnt / "null").st_rdev == os.makedev(1, 3)
        # chmod, chown, utime, truncate
        p = mnt / "z" / "victim"
        os.chown(p, 4321, 8765)                       # (chown clears setgid: first)
        os.chmod(p, 0o2751)
        os.utime(p, ns=(MTIME_NS - 10_000, MTIME_NS))
        st = os.stat(p)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o2751, 4321, 8765)
        assert (st.st_atime_ns, st.st_mtime_ns) == (MTIME_NS - 10_000, MTIME_NS)
        os.truncate(p, 5)
        assert os.stat(p).st_size == 5 and p.read_bytes() == b"hello"
        os.truncate(p, 100_000)
        assert p.read_bytes() == b"hello" + bytes(99_995)
        with open(p, "r+b") as f:
            f.seek(70_000)
            f.write(b"mid")
            f.flush()
            os.ftruncate(f.fileno(), 70_002)
        assert p.read_bytes() == b"hello" + bytes(69_995) + b"mi"
        # a directory listed over many readdir calls: every name once
        os.mkdir(mnt / "many")
        names = {f"entry-{i:04d}-{'q' * (i % 40)}" for i in range(700)}
        for n in names:
            (mnt / "many" / n).write_bytes(n.encode())
        assert sorted(os.listdir(mnt / "many")) == sorted(names)
        with os.scandir(mnt / "many") as it:
            seen = [e.name for e in it]
        assert len(seen) == len(set(seen)) == 700
        # a position taken mid-listing stays valid across removals and creations
        dropped = set(seen[100:150] + seen[400:450])

        def mutate():
            for n in dropped:
                os.unlink(mnt / "many" / n)
            for i in range(50):
                (mnt / "many" / f"late-{i}").write_bytes(b"")

        head, rest = seek_listing(mnt / "many", 300, mutate)
        assert not set(head) & set(rest), "entries listed twice"
        assert names - dropped <= set(head) | set(rest)
        assert not dropped & set(rest)
        for i in range(50):
            os.unlink(mnt / "many" / f"late-{i}")
        for n in dropped:
            (mnt / "many" / n).write_bytes(n.encode())
        # statfs comes from the volume's allocator, less what is pending: commit first
        fd = os.open(mnt, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        sv = os.statvfs(mnt)
        assert 0.5 * (1 << 30) < sv.f_blocks * sv.f_frsize <= (1 << 30)
        assert 0 < sv.f_bfree <= sv.f_blocks and sv.f_namemax == 255
        (mnt / ("m" * 255)).write_bytes(b"longest name")
        os.unlink(mnt / ("m" * 255))
        for make in (lambda p: p.write_bytes(b""), os.mkdir):
            with pytest.raises(OSError) as e:
                make(mnt / ("m" * 256))
            assert e.value.errno == errno.ENAMETOOLONG
        with open(mnt / "big", "wb") as f:
            f.write(os.urandom(8 << 20))
            os.fsync(f.fileno())
        assert os.statvfs(mnt).f_bfree <= sv.f_bfree - (8 << 20) // sv.f_frsize
        # no extended attributes, and they say so
        for call in (lambda: os.getxattr(p, "user.a"), lambda: os.listxattr(p),
                     lambda: os.setxattr(p, "user.a", b"1"),
                     lambda: os.removexattr(p, "user.a")):
            with pytest.raises(OSError) as ei:
                call()
            assert ei.value.errno == errno.ENOTSUP
        # locks: flock between open files, POSIX locks between processes
        with open(mnt / "n2", "r+b") as f1, open(mnt / "n2", "r+b") as f2:
            fcntl.flock(f1, fcntl.LOCK_EX)
            with pytest.raises(BlockingIOError):
                fcntl.flock(f2, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(f1, fcntl.LOCK_UN)
            fcntl.flock(f2, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.lockf(f1, fcntl.LOCK_EX)
            probe = ("import fcntl,sys; f=open(sys.argv[1],'r+b')\n"
                     "try: fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB)\n"
                     "except OSError: sys.exit(3)")
            assert subprocess.run([sys.executable, "-c", probe, str(mnt / "n2")]).returncode == 3
        # an open file outlives its last name (unlink, or a rename over it) until closed
        gone = []
        for kill in (lambda q: os.unlink(q), lambda q: os.rename(mnt / "n3", q)):
            q = mnt / "z" / "open"
            q.write_bytes(b"still here")
            gone.append(os.stat(q).st_ino)
            with open(q, "r+b") as f:
                kill(q)
                assert f.read() == b"still here"
                f.write(b", and more")
                f.flush()
                f.seek(0)
                assert f.read() == b"still here, and more"
                assert os.fstat(f.fileno()).st_nlink == 0
        assert (mnt / "z" / "open").read_bytes() == b"1"
        os.rename(mnt / "z" / "open", mnt / "n3")
        for rel in ("z/victim", "z/g", "sl", "fifo", "many", "z/y"):
            inums[rel] = os.lstat(mnt / rel).st_ino
        os.unlink(mnt / "z" / "g")
        assert os.stat(mnt / "z" / "victim").st_nlink == 1
    fsck_clean(image)
    with pyh2.open(image) as vol:
        pfs = vol.pfs("DATA")
        for rel, ino in inums.items():
            if rel != "z/g":
                assert pfs.stat("/" + rel).inum == ino, rel
        st = pfs.stat("/z/victim")
        assert (st.mode, st.uid, st.gid, st.nlinks, st.size) == (0o2751, 4321, 8765, 1, 70_002)
        assert st.mtime_us * 1000 != MTIME_NS      # the ftruncate/write set it to "now"
        assert sorted(pfs.listdir("/")) == sorted(
            ["x", "z", "e2", "n2", "n3", "sl", "fifo", "null", "many", "big"])
        assert pfs.readlink("/sl") == "z/victim"
        assert pfs.read("/many/entry-0005-qqqqq") == b"entry-0005-qqqqq"
        assert len(pfs.listdir("/many")) == 700
        for ino in gone:            # destroyed at the last close
            with pytest.raises(pyh2.H2Error) as ei:
                pfs._core.inode(ino)
            assert ei.value.errno == errno.ENOENT


def test_open_racing_unlink_gets_a_live_file_or_enoent(image, tmp_path):
    """The kernel looks a name up, then opens the inode: an unlink can come in between.
    An open that loses that race fails ENOENT; one that wins holds a file that reads
    whole (it outlives its name until closed), never a destroyed inode."""
    mnt = tmp_path / "mnt"
    data = os.urandom(100_000)
    with mounted(image, mnt):
        path, stop, churned = mnt / "f", threading.Event(), [0]

        def churn():
            while not stop.is_set():
                path.write_bytes(data)
                os.unlink(path)
                churned[0] += 1

        t = threading.Thread(target=churn)
        t.start()
        opened = lost = 0
        try:
            for _ in range(20_000):
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    lost += 1
                    continue
                try:
                    got = os.pread(fd, len(data) + 1, 0)
                    assert got in (b"", data), len(got)
                    assert os.fstat(fd).st_nlink in (0, 1)
                finally:
                    os.close(fd)
                opened += 1
        finally:
            stop.set()
            t.join()
        assert opened and lost and churned[0], (opened, lost, churned)
    fsck_clean(image)


def test_closing_the_pfs_closes_its_session_first(image, tmp_path):
    """In process: a Pfs closed under a serving FUSE session refuses (EBUSY) and the mount
    goes on; once the loop has ended, closing the Pfs ends the session with its final
    flush, and what was written through the mount is on the image."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    vol = pyh2.open(image, writable=True)
    try:
        pfs = _core.Pfs([vol.device], "DATA")
        session = _core.FuseSession(pfs, str(mnt), str(image), flush_secs=0)
        loop = threading.Thread(target=session.serve)
        loop.start()
        try:
            (mnt / "f").write_bytes(b"through the mount")
            with pytest.raises(pyh2.H2Error) as ei:
                pfs.close()
            assert ei.value.errno == errno.EBUSY
            assert (mnt / "f").read_bytes() == b"through the mount"
        finally:
            pyh2.mount.unmount(str(mnt))
            loop.join(30)
        assert not loop.is_alive() and not is_mounted(mnt)
        pfs.close()
        session.close()                     # already closed: nothing left to do
    finally:
        vol.close()
    with pyh2.open(image) as vol:
        assert vol.pfs("DATA").read("/f") == b"through the mount"


def test_readonly_mount_writes_nothing(tmp_path, image):
    with pyh2.open(image, writable=True) as vol:
        vol.pfs("DATA").create("/keep", b"kept")
    before = image_digest(image)
    mnt = tmp_path / "mnt"
    with mounted(image, mnt, "--ro"):
        assert (mnt / "keep").read_bytes() == b"kept"
        attempts = [lambda: open(mnt / "new", "wb"), lambda: open(mnt / "keep", "r+b"),
                    lambda: os.mkdir(mnt / "d"), lambda: os.unlink(mnt / "keep"),
                    lambda: os.chmod(mnt / "keep", 0o600),
                    lambda: os.utime(mnt / "keep", (1, 1)),
                    lambda: os.rename(mnt / "keep", mnt / "k2"),
                    lambda: os.symlink("a", mnt / "s")]
        for attempt in attempts:
            with pytest.raises(OSError) as ei:
                attempt()
            assert ei.value.errno == errno.EROFS
        fd = os.open(mnt, os.O_RDONLY)
        os.fsync(fd)                                  # nothing to commit, not an error
        os.close(fd)
    assert image_digest(image) == before


REF_MOUNTS = ["basic", "comp-none", "comp-zlib-crc32", "autozero-nocheck", "bigdir", "grown",
              "pfs-snapshot"]


@pytest.mark.parametrize("name", REF_MOUNTS)
def test_reference_image_mounts_readonly(name, scratch_copy, tmp_path):
    img = scratch_copy(name)
    manifest = refimages.load_manifest(name)
    before = image_digest(img)
    for label, tree in manifest["trees"].items():
        mnt = tmp_path / f"mnt-{label}"
        with mounted(f"{img}:{label}", mnt, "--ro"):
            diffs = refimages.compare_trees(refimages.expected_tree(name, label),
                                            refimages.tree_from_dir(mnt))
        assert diffs == [], f"{name}:{label}: " + "\n".join(diffs[:20])
    assert image_digest(img) == before


def test_cluster_mount_writes_every_node(tmp_path):
    clid = uuid.uuid4().bytes
    imgs = [tmp_path / f"node{i}.h2" for i in range(2)]
    for img in imgs:
        _core.newfs(str(img), 1 << 30, "DATA", 0, 2, 3, len(imgs), clid)
    mnt = tmp_path / "mnt"
    with mounted(",".join(map(str, imgs)), mnt) as pid:
        os.mkdir(mnt / "d")
        (mnt / "d" / "f").write_bytes(b"replicated" * 10000)
        os.symlink("d/f", mnt / "l")
        r = run("umount", mnt)
        assert r.returncode == 0, r.stderr
        assert not _alive(pid), "umount returned before the server's final commit"
    for img in imgs:
        fsck_clean(img)
        with pyh2.open(img) as vol:
            pfs = vol.pfs("DATA")
            assert pfs.read("/d/f") == b"replicated" * 10000
            assert pfs.readlink("/l") == "d/f"


def test_cluster_mount_makes_a_replaced_node_a_copy(tmp_path):
    """Node 0 was replaced by a blank image of another cluster: the mount serves from
    the other two, and its sync thread makes node 0 a full copy on its own."""
    imgs = [tmp_path / f"node{i}.h2" for i in range(3)]
    newfs_cluster(imgs, 256 << 20)
    with open_cluster(imgs, writable=True) as vol:
        vol.pfs("DATA").create("/f", b"old" * 1000)
    pyh2.newfs(imgs[0], 256 << 20)
    mnt = tmp_path / "mnt"
    with mounted(",".join(map(str, imgs)), mnt):
        assert (mnt / "f").read_bytes() == b"old" * 1000
        with open(mnt / "g", "wb") as f:
            f.write(b"through the mount")
            os.fsync(f.fileno())
        with pyh2.open(imgs[1]) as vol:
            clid = vol.pfs("DATA").info.clid
        deadline = time.monotonic() + 120       # its sync thread copies it to node 0
        while time.monotonic() < deadline:
            with pyh2.open(imgs[0]) as vol:
                data = [p for p in vol.pfs_list() if p.label == "DATA"]
                if data and data[0].clid == clid and "g" in vol.pfs("DATA").listdir("/"):
                    break
            time.sleep(0.05)
        (mnt / "h").write_bytes(b"after the copy")
        os.sync()
    with open_cluster(imgs) as vol:
        assert [n["state"] for n in vol.nodes()] == ["live"] * 3
        assert vol.compare() == [] and vol.pfs("DATA").read("/g") == b"through the mount"
        assert vol.pfs("DATA").read("/h") == b"after the copy"


def test_mount_an_nbd_export(tmp_path, image, nbd_server):
    srv = nbd_server(image)
    mnt = tmp_path / "mnt"
    with mounted(srv.uri, mnt):
        (mnt / "over-nbd").write_bytes(b"x" * 100_000)
    with pyh2.open(image) as vol:
        assert vol.pfs("DATA").read("/over-nbd") == b"x" * 100_000
    fsck_clean(image)


def test_failed_commit_under_a_mount(tmp_path, image, nbd_server):
    """The export starts failing every write (nbdkit's error filter) under a mount: fsync
    reports EIO, every later modification is refused rather than acknowledged and lost,
    reads go on, umount reports the failed commit, and the image holds the last good one."""
    trigger = tmp_path / "fail-writes"
    srv = nbd_server(image, filters={"error": {"error-pwrite": "EIO", "error-pwrite-rate": "100%",
                                               "error-pwrite-file": trigger}})
    mnt = tmp_path / "mnt"
    with mounted(srv.uri, mnt, "--flush-interval", "0"):   # commits only where the test says
        with open(mnt / "kept", "wb") as f:
            f.write(b"committed")
            f.flush()
            os.fsync(f.fileno())
        trigger.touch()
        with open(mnt / "lost", "wb") as f:
            f.write(b"never committed")
            f.flush()
            with pytest.raises(OSError) as ei:
                os.fsync(f.fileno())
        assert ei.value.errno == errno.EIO
        for modify in (lambda: (mnt / "more").write_bytes(b"x"), lambda: os.mkdir(mnt / "d"),
                       lambda: os.unlink(mnt / "kept")):
            with pytest.raises(OSError) as ei:
                modify()
            assert ei.value.errno == errno.EIO
        assert (mnt / "kept").read_bytes() == b"committed"
        r = run("umount", mnt)
        assert r.returncode == 1 and "last commit failed" in r.stderr, r
    trigger.unlink()
    fsck_clean(image)
    with pyh2.open(image) as vol:
        assert vol.pfs("DATA").listdir("/") == ["kept"]
        assert vol.pfs("DATA").read("/kept") == b"committed"


def test_offline_writers_refused_while_mounted(image, tmp_path):
    """One writer per image: while a mount holds it, offline edits, newfs and writable
    opens are refused (EBUSY, naming the image) and change nothing; read-only opens see
    the last commit. After the unmount, an edit goes through."""
    mnt = tmp_path / "mnt"
    with mounted(image, mnt):
        with open(mnt / "f", "wb", buffering=0) as f:
            f.write(b"committed")
            os.fsync(f.fileno())
        for args in (("mkdir", image, "/x"), ("newfs", image, "--size", "1G"),
                     ("bulkfree", image)):
            r = run(*args)
            assert r.returncode == 1 and (f"{image}: mounted or opened for writing by "
                                          f"another pyh2 process") in r.stderr, (args, r)
        with pytest.raises(pyh2.H2Error) as ei:
            pyh2.open(image, writable=True)
        assert ei.value.errno == errno.EBUSY
        r = run("cat", image, "/f")
        assert r.returncode == 0 and r.stdout == "committed", r
        assert sorted(os.listdir(mnt)) == ["f"]
    r = run("mkdir", image, "/x")
    assert r.returncode == 0, r
    with pyh2.open(image) as vol:
        assert sorted(vol.pfs("DATA").listdir("/")) == ["f", "x"]


def test_mount_errors_are_clean(tmp_path, image):
    for args, needle in [((image, tmp_path / "nodir"), "not a directory"),
                         ((tmp_path / "missing.h2", tmp_path), "missing.h2"),
                         ((f"{image}:NOPE", tmp_path), "NOPE")]:
        r = run("mount", "-d", *args)
        assert r.returncode == 1 and needle in r.stderr and "Traceback" not in r.stderr, r
        assert not is_mounted(args[1])
    r = run("umount", tmp_path)
    assert r.returncode == 1 and "not a pyh2 mount" in r.stderr, r
    r = run("mount", "-d", image, tmp_path, "-o", "no_such_option")
    assert r.returncode == 1 and "mount options" in r.stderr, r
    assert not is_mounted(tmp_path)
    (tmp_path / "m2").mkdir()
    with mounted(image, tmp_path / "m1"):
        for opt in ((), ("--ro",)):
            r = run("mount", "-d", image, tmp_path / "m2", *opt)
            assert r.returncode == 1 and "by another pyh2 process" in r.stderr, r
            assert not is_mounted(tmp_path / "m2")


def test_mount_options_readahead_and_setgid_directory(image, tmp_path):
    mnt = tmp_path / "mnt"
    with mounted(image, mnt, "-o", "allow_other"):
        opts = subprocess.run(["findmnt", "-n", "-o", "OPTIONS", str(mnt)], check=True,
                              capture_output=True, text=True).stdout
        assert "allow_other" in opts and "default_permissions" in opts, opts
        if os.geteuid() == 0:               # sequential reads fill 1 MiB requests
            dev = os.stat(mnt).st_dev
            ra = f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb"
            for _ in range(50):
                if open(ra).read().strip() == str(READAHEAD_KB):
                    break
                time.sleep(0.1)
            assert open(ra).read().strip() == str(READAHEAD_KB)
        os.mkdir(mnt / "shared")
        os.chown(mnt / "shared", 0, 4242)
        os.chmod(mnt / "shared", 0o2775)
        (mnt / "shared" / "f").write_bytes(b"")
        os.mkdir(mnt / "shared" / "sub")
        os.mkdir(mnt / "plain")
        (mnt / "plain" / "f").write_bytes(b"")
        st_f, st_d = os.stat(mnt / "shared" / "f"), os.stat(mnt / "shared" / "sub")
        assert st_f.st_gid == st_d.st_gid == 4242
        assert st_d.st_mode & stat.S_ISGID and not st_f.st_mode & stat.S_ISGID
        assert os.stat(mnt / "plain" / "f").st_gid == os.getgid()
