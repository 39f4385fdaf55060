"""Work through a `pyh2 mount` beside the same work on the in-process API, in a tmpfs
directory (the limit) and through fuse2fs (a peer: e2fsprogs' FUSE server over an ext4
image, the same kernel protocol), all measured in the same run:

- sequential write of a 256 MiB file (1 MiB writes, then fsync / flush),
- sequential read of it (after a remount / reopen: the server's caches are cold),
- creating 1,000 small files (then fsync of the directory / flush),
- stat of each of them by name, 3 passes 1.1 s apart, as a rerun `make` or `git status` does
  (after a remount / reopen; the pauses are not timed): lookups and attributes, which the
  kernel caches;

and, through the mount only, a 32 MiB file rewritten in place 24 times on a 256 MiB volume
(the mount bulkfrees what copy-on-write leaves behind whenever space runs short) beside the
same on a 4 GiB volume, which never runs short.

A small create through any FUSE mount costs the kernel's requests, each a round trip to the
server: GETATTR of the directory (a create invalidates its attributes, and
default_permissions checks them), LOOKUP of the new name, CREATE, IOCTL (Python's open()
asks isatty), WRITE and RELEASE (seen with `pyh2 mount --debug`).  The bench measures one
round trip (a negative LOOKUP) and prints the create rate those six requests allow at that
cost, the floor the protocol sets, beside the ratios.

    python3 bench/bench_fuse.py [--runs N] [--mib 256]
"""
import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import pyh2  # noqa: E402
from pyh2.testing.fusemount import mounted  # noqa: E402

CHUNK = 1 << 20
NFILES = 1000
CREATE_REQUESTS = 6  # GETATTR, LOOKUP, CREATE, IOCTL, WRITE, RELEASE
STAT_PASSES = 3
STAT_PAUSE = 1.1     # longer than the 1 s the mount's kernel caches once lasted


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# --------------------------------------------------------- a directory (mount or tmpfs)

def dir_write(path, data):
    with open(path, "wb", buffering=0) as f:
        view = memoryview(data)
        for off in range(0, len(data), CHUNK):
            f.write(view[off:off + CHUNK])
        os.fsync(f.fileno())


def dir_read(path, size):
    buf = bytearray(CHUNK)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def dir_create(top):
    os.mkdir(top)
    for i in range(NFILES):
        with open(os.path.join(top, f"f{i:04d}"), "wb") as f:
            f.write(b"x" * 100)
    fd = os.open(top, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def stat_passes(stat, top):
    """Seconds taken by STAT_PASSES passes of stat(top/fNNNN), not counting the pauses."""
    names = [f"{top}/f{i:04d}" for i in range(NFILES)]
    total = 0.0
    for n in range(STAT_PASSES):
        if n:
            time.sleep(STAT_PAUSE)
        total += timed(lambda: [stat(p) for p in names])
    return total


def run_dir(top, data):
    w = timed(lambda: dir_write(os.path.join(top, "big"), data))
    r = timed(lambda: dir_read(os.path.join(top, "big"), len(data)))
    c = timed(lambda: dir_create(os.path.join(top, "many")))
    return w, r, c, stat_passes(os.stat, os.path.join(top, "many"))


# --------------------------------------------------------- the in-process API

def api_run(img, data):
    pyh2.newfs(img, 2 << 30)

    def write():
        with pyh2.open(img, writable=True) as vol:
            pfs = vol.pfs("DATA")
            pfs.create("/big")
            view = memoryview(data)
            for off in range(0, len(data), CHUNK):
                pfs.write("/big", view[off:off + CHUNK], off)
            vol.flush()

    def read():
        with pyh2.open(img) as vol:
            pfs = vol.pfs("DATA")
            buf = bytearray(CHUNK)
            for off in range(0, len(data), CHUNK):
                pfs.readinto("/big", buf, off)

    def create():
        with pyh2.open(img, writable=True) as vol:
            pfs = vol.pfs("DATA")
            pfs.mkdir("/many")
            for i in range(NFILES):
                pfs.create(f"/many/f{i:04d}", b"x" * 100)
            vol.flush()

    def stat():
        with pyh2.open(img) as vol:
            return stat_passes(vol.pfs("DATA").stat, "/many")

    out = timed(write), timed(read), timed(create), stat()
    os.unlink(img)
    return out


def mount_run(img, mnt, data):
    pyh2.newfs(img, 2 << 30)
    with mounted(img, mnt):
        w = timed(lambda: dir_write(os.path.join(mnt, "big"), data))
    with mounted(img, mnt):                  # cold: a fresh server and page cache
        r = timed(lambda: dir_read(os.path.join(mnt, "big"), len(data)))
        c = timed(lambda: dir_create(os.path.join(mnt, "many")))
    with mounted(img, mnt):
        s = stat_passes(os.stat, os.path.join(mnt, "many"))
        rt = round_trip(mnt)
    os.unlink(img)
    return w, r, c, s, rt


def rewrite_run(img, mnt, size):
    """MiB/s of rewriting a 32 MiB file in place 24 times on a volume of `size` bytes."""
    chunk = os.urandom(CHUNK)

    def rewrite():
        with open(os.path.join(mnt, "r"), "wb", buffering=0) as f:
            for _ in range(24):
                f.seek(0)
                for _ in range(32):
                    f.write(chunk)
            os.fsync(f.fileno())
    pyh2.newfs(img, size)
    with mounted(img, mnt):
        t = timed(rewrite)
    os.unlink(img)
    return 24 * 32 / t


def fuse2fs_image(img):
    subprocess.run(["truncate", "-s", "2G", img], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", img], check=True)


@contextlib.contextmanager
def fuse2fs_mounted(img, mnt):
    os.makedirs(mnt, exist_ok=True)
    server = subprocess.Popen(["fuse2fs", "-f", img, mnt])
    try:
        while not os.path.ismount(mnt):
            if server.poll() is not None:
                raise RuntimeError(f"fuse2fs exited with {server.returncode}")
            time.sleep(0.02)
        yield
    finally:
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", mnt], check=False)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def fuse2fs_run(img, mnt, data):
    """As mount_run, remounting where it does."""
    fuse2fs_image(img)
    try:
        with fuse2fs_mounted(img, mnt):
            w = timed(lambda: dir_write(os.path.join(mnt, "big"), data))
        with fuse2fs_mounted(img, mnt):
            r = timed(lambda: dir_read(os.path.join(mnt, "big"), len(data)))
            c = timed(lambda: dir_create(os.path.join(mnt, "many")))
        with fuse2fs_mounted(img, mnt):
            s = stat_passes(os.stat, os.path.join(mnt, "many"))
        return w, r, c, s
    finally:
        os.unlink(img)


def round_trip(mnt):
    """Seconds of one FUSE request: stat of names that are not there, each asked once
    (a negative LOOKUP the kernel has not cached yet)."""
    names = [f"{mnt}/absent{i}" for i in range(NFILES)]

    def lookups():
        for p in names:
            try:
                os.stat(p)
            except FileNotFoundError:
                pass
    return timed(lookups) / NFILES


def tmpfs_run(shm, data):
    top = tempfile.mkdtemp(prefix="pyh2-bench-", dir=shm)
    try:
        return run_dir(top, data)
    finally:
        shutil.rmtree(top)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mib", type=int, default=256)
    args = ap.parse_args()
    data = os.urandom(args.mib << 20)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    with tempfile.TemporaryDirectory(prefix="pyh2-bench-") as work:
        img, mnt = os.path.join(work, "bench.h2"), os.path.join(work, "mnt")
        results = {name: [min(col) for col in zip(*(fn() for _ in range(args.runs)))]
                   for name, fn in (("mount", lambda: mount_run(img, mnt, data)),
                                    ("api", lambda: api_run(img, data)),
                                    ("tmpfs", lambda: tmpfs_run(shm, data)),
                                    ("fuse2fs", lambda: fuse2fs_run(img, mnt, data)))}
        full, roomy = (max(rewrite_run(img, mnt, size) for _ in range(args.runs))
                       for size in (256 << 20, 4 << 30))
    mb = len(data) / 1e6
    for i, (what, unit, amount) in enumerate((("sequential write", "MB/s", mb),
                                              ("sequential read", "MB/s", mb),
                                              (f"create {NFILES} files", "files/s", NFILES),
                                              (f"stat {NFILES} x{STAT_PASSES}", "stats/s",
                                               NFILES * STAT_PASSES))):
        m, a, t, e = (amount / results[k][i] for k in ("mount", "api", "tmpfs", "fuse2fs"))
        print(f"{what:18s}: mount {m:9.1f} {unit:7s} in-process API {a:9.1f}   "
              f"tmpfs {t:9.1f}   fuse2fs {e:9.1f}   mount/API {m / a:5.2f}   "
              f"mount/tmpfs {m / t:5.3f}   mount/fuse2fs {m / e:5.2f}")
    rt = results["mount"][4]
    floor = 1 / (CREATE_REQUESTS * rt)
    print(f"FUSE round trip   : {rt * 1e6:6.1f} us; {CREATE_REQUESTS} requests per create allow "
          f"at most {floor:7.1f} files/s = {floor * results['api'][2] / NFILES:4.2f} of the API")
    print(f"rewrite 24 x 32 MiB: 256 MiB volume {full:6.1f} MiB/s   4 GiB volume {roomy:6.1f}   "
          f"ratio {full / roomy:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
