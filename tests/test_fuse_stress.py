"""The mount under load and under abuse: a random-operations exerciser checked against a model,
a killed daemon, a foreground mount stopped by a signal."""
import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

import pyh2
from pyh2 import refimages
from pyh2.testing import fuzz
from pyh2.testing.fusemount import fsck_clean, is_mounted, mounted
from pyh2.testing.fusemount import run_cli as run, wait_gone
from pyh2.torture.model import Model
from pyh2.mount import _alive

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")

EXERCISE_SECONDS = 8
UMASK = os.umask(0o022)
os.umask(UMASK)


class Exerciser:
    """Random operations in one directory of the mount, mirrored in a shared Model; every
    read is checked against the model."""

    def __init__(self, mnt, top, model, lock, seed):
        self.mnt, self.top, self.model, self.lock = mnt, top, model, lock
        self.rnd = random.Random(seed)
        self.files, self.dirs, self.ops = [], [top], 0

    def host(self, p):
        return os.path.join(self.mnt, p.lstrip("/"))

    def apply(self, name, *args, **kw):
        with self.lock:
            getattr(self.model, name)(*args, **kw)

    def data(self, p):
        with self.lock:
            return bytes(self.model.filedata(p))

    def fresh(self):
        return f"{self.rnd.choice(self.dirs)}/n{self.ops}-{self.rnd.randrange(1 << 20):x}"

    def check(self, p):
        want = self.data(p)
        off = self.rnd.randrange(len(want) + 1)
        size = self.rnd.randrange(1, 300_000)
        with open(self.host(p), "rb") as f:
            f.seek(off)
            got = f.read(size)
        assert got == want[off:off + size], f"{p} @{off}+{size}"
        assert os.stat(self.host(p)).st_size == len(want), p

    def step(self):
        r, rnd = self.rnd.random(), self.rnd
        if r < 0.2 or not self.files:
            p, data = self.fresh(), rnd.randbytes(rnd.choice([0, 10, 700, 5000, 70_000, 300_000]))
            with open(self.host(p), "wb") as f:
                f.write(data)
            self.apply("create", p, data, mode=0o666 & ~UMASK)
            self.files.append(p)
        elif r < 0.45:
            p = rnd.choice(self.files)
            off = rnd.randrange(len(self.data(p)) + 70_000)
            data = rnd.randbytes(rnd.randrange(1, 150_000))
            fd = os.open(self.host(p), os.O_WRONLY)
            try:
                os.pwrite(fd, data, off)
            finally:
                os.close(fd)
            self.apply("write", p, data, off)
            self.check(p)
        elif r < 0.55:
            p = rnd.choice(self.files)
            size = rnd.randrange(400_000)
            os.truncate(self.host(p), size)
            self.apply("truncate", p, size)
            self.check(p)
        elif r < 0.7:
            self.check(rnd.choice(self.files))
        elif r < 0.78:
            src = rnd.choice(self.files)
            dst = rnd.choice(self.files) if rnd.random() < 0.3 else self.fresh()
            with self.lock:     # names of one inode: rename does nothing
                same = self.model.exists(dst) and self.model.node(dst) is self.model.node(src)
            os.rename(self.host(src), self.host(dst))
            self.apply("rename", src, dst)
            if not same:
                self.files.remove(src)
                if dst not in self.files:
                    self.files.append(dst)
        elif r < 0.84:
            src, p = rnd.choice(self.files), self.fresh()
            os.link(self.host(src), self.host(p))
            self.apply("link", src, p)
            self.files.append(p)
        elif r < 0.9:
            p = rnd.choice(self.files)
            os.unlink(self.host(p))
            self.apply("unlink", p)
            self.files.remove(p)
        elif r < 0.95:
            p = self.fresh()
            os.mkdir(self.host(p))
            self.apply("mkdir", p, mode=0o777 & ~UMASK)
            self.dirs.append(p)
        else:
            d = rnd.choice(self.dirs)
            with self.lock:
                names = sorted(self.model.node(d).children)
            assert sorted(os.listdir(self.host(d))) == names, d
            if not names and d != self.top:
                os.rmdir(self.host(d))
                self.apply("rmdir", d)
                self.dirs.remove(d)
        self.ops += 1


def test_random_operations_against_model(image, tmp_path):
    mnt = tmp_path / "mnt"
    model, lock = Model(), threading.Lock()
    errors = []
    with mounted(image, mnt):
        workers = []
        for i in range(2):
            top = f"/t{i}"
            os.mkdir(mnt / top[1:])
            model.mkdir(top, mode=0o777 & ~UMASK)
            workers.append(Exerciser(str(mnt), top, model, lock, seed=i))
        deadline = time.monotonic() + EXERCISE_SECONDS

        def loop(ex):
            try:
                while time.monotonic() < deadline:
                    ex.step()
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(EXERCISE_SECONDS + 120)
        if errors:
            raise errors[0]
        assert all(w.ops > 0 for w in workers)
        print(f"exerciser: {sum(w.ops for w in workers)} operations in {EXERCISE_SECONDS} s")
    fsck_clean(image)
    with pyh2.open(image) as vol:
        diffs = refimages.compare_trees(model.manifest(),
                                        refimages.tree_from_volume(vol.pfs("DATA")))
    assert diffs == [], "\n".join(diffs[:20])


def test_killed_daemon_leaves_last_flush(image, tmp_path):
    mnt = tmp_path / "mnt"
    first = os.urandom(1 << 20)
    with mounted(image, mnt, "--flush-interval", "0") as pid:
        (mnt / "a").write_bytes(first)
        os.mkdir(mnt / "d")
        (mnt / "d" / "b").write_bytes(b"kept")
        fd = os.open(mnt, os.O_RDONLY)
        os.fsync(fd)                              # the last commit before the kill
        os.close(fd)
        with open(mnt / "a", "r+b") as f:
            f.write(b"\0" * 4096)
        (mnt / "c").write_bytes(b"never committed")
        os.kill(pid, signal.SIGKILL)
        assert wait_gone(pid)
        with pytest.raises(OSError) as ei:
            os.listdir(mnt)                       # never answered from the kernel's cache
        assert ei.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    fsck_clean(image)
    with pyh2.open(image) as vol:
        pfs = vol.pfs("DATA")
        assert sorted(pfs.listdir("/")) == ["a", "d"]
        assert pfs.read("/a") == first
        assert pfs.read("/d/b") == b"kept"


def test_orphan_left_by_a_killed_server_is_found_and_destroyed(image, tmp_path):
    """A file unlinked while open outlives its name until the last close; the server killed
    before that leaves its inode with no name. `pyh2 orphans` lists it (only it), --destroy
    removes it, and a bulkfree then takes back its blocks."""
    mnt, held = tmp_path / "mnt", os.urandom(3 << 20)
    with mounted(image, mnt, "--flush-interval", "0") as pid:
        (mnt / "named").write_bytes(b"keeps its name")
        f = open(mnt / "held", "wb")
        f.write(held)
        f.flush()
        os.unlink(mnt / "held")
        os.fsync(f.fileno())                # committed: the inode, nameless, still open
        os.kill(pid, signal.SIGKILL)
        assert wait_gone(pid)
        f.close()                           # nobody left to hear it
    with pyh2.open(image) as vol:
        orphans = vol.pfs("DATA").orphans()
    assert [st.size for st in orphans] == [len(held)] and orphans[0].nlinks == 0
    r = run("orphans", image)
    assert r.returncode == 0 and r.stdout.split() == [f"{orphans[0].inum:#x}", str(len(held)),
                                                       "bytes"], r
    r = run("orphans", image, "--destroy")
    assert r.returncode == 0 and "destroyed" in r.stdout, r
    r = run("bulkfree", image)
    assert r.returncode == 0 and int(r.stdout.split()[1]) >= len(held), r
    fsck_clean(image)
    with pyh2.open(image) as vol:
        pfs = vol.pfs("DATA")
        assert pfs.orphans() == [] and pfs.listdir("/") == ["named"]
        assert pfs.read("/named") == b"keeps its name"


def test_full_volume_refuses_before_it_loses(tmp_path):
    """Writes into a filling volume get ENOSPC before a commit could fail: everything
    acknowledged is on the image after unmount, and small files still fit."""
    img, mnt = tmp_path / "small.h2", tmp_path / "mnt"
    pyh2.newfs(img, 256 << 20)
    chunk = os.urandom(1 << 20)
    with mounted(img, mnt):
        written = fill(mnt / "big", chunk)
        assert 128 << 20 < written < 256 << 20
        (mnt / "small").write_bytes(b"still fits")
        assert os.statvfs(mnt).f_bavail < 64
    fsck_clean(img)
    with pyh2.open(img) as vol:
        pfs = vol.pfs("DATA")
        assert pfs.stat("/big").size == written
        tail = written - (1 << 20)                  # the file is chunk, chunk, ...
        assert pfs.read("/big", tail, 1 << 20) == (chunk * 2)[tail % (1 << 20):][:1 << 20]
        assert pfs.read("/small") == b"still fits"


def fill(path, chunk):
    """Write chunk after chunk to path until ENOSPC; the bytes acknowledged."""
    written = 0
    with pytest.raises(OSError) as ei:
        with open(path, "wb", buffering=0) as f:
            while True:
                written += f.write(chunk)
    assert ei.value.errno == errno.ENOSPC, ei.value
    return written


def test_mount_reclaims_removed_and_overwritten_space(tmp_path):
    """Copy-on-write leaves every overwritten block behind, and a removal frees nothing
    until a bulkfree: a mount runs one when space runs short. A file rewritten in
    place three times the volume's size never runs out; a full volume still takes
    an rm, then a file as big as the one removed. An unlinked file held open keeps
    its blocks through all of it."""
    img, mnt = tmp_path / "small.h2", tmp_path / "mnt"
    pyh2.newfs(img, 256 << 20)
    chunk, held = os.urandom(1 << 20), os.urandom(8 << 20)
    with mounted(img, mnt), open(mnt / "held", "w+b") as h:
        h.write(held)
        h.flush()
        os.fsync(h.fileno())
        os.unlink(mnt / "held")
        with open(mnt / "rewritten", "wb", buffering=0) as f:
            for rnd in range(24):                   # 768 MiB through 256
                f.seek(0)
                for _ in range(32):
                    f.write(chunk[rnd:] + chunk[:rnd])
        first = fill(mnt / "big", chunk)
        assert first > 128 << 20
        os.unlink(mnt / "big")
        again = fill(mnt / "again", chunk)
        assert again >= first - (2 << 20), (first, again)
        os.posix_fadvise(h.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)    # read it from the image
        assert os.pread(h.fileno(), len(held) + 1, 0) == held
    fsck_clean(img)
    with pyh2.open(img) as vol:
        pfs = vol.pfs("DATA")
        assert sorted(pfs.listdir("/")) == ["again", "rewritten"]
        assert pfs.read("/rewritten") == (chunk[23:] + chunk[:23]) * 32
        assert pfs.stat("/again").size == again
        assert pfs.read("/again", again - (1 << 20), 1 << 20) == chunk


def test_cluster_mount_reclaims_overwritten_space(tmp_path):
    """The same on a 2-node cluster: every node bulkfrees, stays live and fscks clean,
    and the nodes hold the last rewrite."""
    imgs = [tmp_path / f"n{i}.h2" for i in range(2)]
    pyh2.newfs_cluster(imgs, 128 << 20)
    chunk, mnt = os.urandom(1 << 20), tmp_path / "mnt"
    with mounted(",".join(map(str, imgs)), mnt):
        with open(mnt / "r", "wb", buffering=0) as f:
            for rnd in range(24):                   # 384 MiB through 128
                f.seek(0)
                for _ in range(16):
                    f.write(chunk[rnd:] + chunk[:rnd])
    for img in imgs:
        fsck_clean(img)
    with pyh2.open_cluster(imgs) as vol:
        assert [n["state"] for n in vol.nodes()] == ["live", "live"]
        assert vol.pfs("DATA").read("/r") == (chunk[23:] + chunk[:23]) * 16


HOSTILE_SEEDS = range(1, 9)


def test_hostile_images_mount_without_crashing(tmp_path):
    """Damaged metadata no check code catches (pyh2.testing.fuzz): a tree walk, reads and writes
    through the mount get errors, the server stays up and unmounts cleanly."""
    base = tmp_path / "base.h2"
    fuzz.build_image(base)
    blocks = fuzz.metadata_blocks(base)
    served = 0
    for seed in HOSTILE_SEEDS:
        img, mnt = tmp_path / f"h{seed}.h2", tmp_path / f"mnt{seed}"
        shutil.copyfile(base, img)
        done = fuzz.damage(img, blocks, random.Random(seed))
        mnt.mkdir()
        r = run("mount", "-d", img, mnt)
        if r.returncode:                # refused at open: a clean error is enough
            assert "Traceback" not in r.stderr, (seed, done, r.stderr)
            continue
        pid = int(r.stdout.split()[-1])
        served += 1
        try:
            for dirpath, dirs, files in os.walk(mnt, onerror=lambda e: None):
                for n in files:
                    p = os.path.join(dirpath, n)
                    for op in (lambda: open(p, "rb").read(4 << 20),
                               lambda: os.readlink(p),
                               lambda: open(p, "ab").write(b"more")):
                        try:
                            op()
                        except OSError:
                            pass
            for op in (lambda: os.mkdir(mnt / "d0" / "sub"),
                       lambda: os.rename(mnt / "d2" / "f2", mnt / "d0" / "moved"),
                       lambda: os.unlink(mnt / "d1" / "f3")):
                try:
                    op()
                except OSError:
                    pass
            os.statvfs(mnt)                     # the server still answers
            assert _alive(pid), (seed, done)
        finally:
            run("umount", mnt)
            if is_mounted(mnt):
                run("umount", "-l", mnt)
            assert wait_gone(pid), (seed, done)
        assert not is_mounted(mnt)
    assert served >= len(HOSTILE_SEEDS) // 2     # most damage shows only below the root


def test_background_flush_commits_without_fsync(image, tmp_path):
    """The syncer commits on its own: the data reaches the image with no fsync and survives
    a SIGKILL right after."""
    mnt = tmp_path / "mnt"
    with mounted(image, mnt, "--flush-interval", "1") as pid:
        (mnt / "unsynced").write_bytes(b"committed by the syncer")
        deadline = time.monotonic() + 60
        while True:     # read the image beside the server until the commit shows
            r = run("cat", image, "/unsynced")
            if r.returncode == 0:
                break
            assert time.monotonic() < deadline, r.stderr
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
    fsck_clean(image)
    with pyh2.open(image) as vol:
        assert vol.pfs("DATA").read("/unsynced") == b"committed by the syncer"


def test_foreground_mount_stops_on_sigterm(image, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "pyh2", "mount", str(image), str(mnt)],
                            cwd=refimages.REPO, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not is_mounted(mnt):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "mount never appeared"
            time.sleep(0.05)
        (mnt / "f").write_bytes(b"foreground")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.stderr.read()
        assert not is_mounted(mnt)
    finally:
        if is_mounted(mnt):
            run("umount", "-l", mnt)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    fsck_clean(image)
    with pyh2.open(image) as vol:
        assert vol.pfs("DATA").read("/f") == b"foreground"
