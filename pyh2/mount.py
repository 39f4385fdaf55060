"""Mounting a PFS (of one image or of a cluster of them) through FUSE.

The request loop is C (csrc/hammer2_fuse.c) with the GIL released; Python
only opens the volumes, starts the session and waits for it to end."""
from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import threading
import time

from . import _core
from .spec import open_volume, split_spec
from .volume import H2Error, lock_images, unlock

FSTYPE = "fuse.hammer2"
READAHEAD_KB = 1024


def parse_spec(spec: str) -> tuple[list[str], str]:
    """IMG[,IMG...][:PFS] -> (images, PFS label)."""
    img, label = split_spec(spec)
    return [i for i in img.split(",") if i], label


class Mount:
    """Volumes opened and a FUSE session mounted in this process."""

    def __init__(self, images: list[str], label: str, mountpoint: str,
                 readonly: bool = False, debug: bool = False, flush_secs: int = 5,
                 options: str = "", retry_max: float = 10.0):
        if not os.path.isdir(mountpoint):
            raise H2Error(errno.ENOTDIR, f"{mountpoint}: mount point is not a directory")
        self.mountpoint = os.path.realpath(mountpoint)
        self.volume, self.pfs, self.session, self.locks = None, None, None, []
        # held while serving, on the directory under the mount: how umount
        # finds this process whatever the images are (files, devices, URIs)
        self.anchor = os.open(self.mountpoint, os.O_PATH | os.O_DIRECTORY)
        try:
            # a writable volume locks its images itself
            self.locks = lock_images(images, shared=True) if readonly else []
            self.volume = open_volume(",".join(images), not readonly, retry_max)
            self.pfs = _core.Pfs(self.volume.devices, label)
            fsname = ",".join(os.path.realpath(i) if os.path.exists(i) else i for i in images)
            self.session = _core.FuseSession(self.pfs, self.mountpoint, fsname, readonly,
                                             options, debug, flush_secs)
        except BaseException:
            self._release()
            raise

    def serve(self, threads: int = 8):
        self.session.serve(threads)

    def _release(self):
        try:
            if self.pfs is not None:
                self.pfs.close()
            if self.volume is not None:
                self.volume.close()
            unlock(self.locks)
        finally:
            os.close(self.anchor)

    def close(self):
        """End the session (final flush), then close the PFS and volumes."""
        try:
            if self.session is not None:
                self.session.close()
        finally:
            self._release()


def _tune_readahead(mountpoint: str):
    """The kernel reads ahead 128 KiB on a FUSE mount, though a read request can carry
    1 MiB: a window that fills them about doubles sequential reads. Set once the
    session is served (the kernel sets the window when the session starts: the stat
    waits for that); best effort, as sysfs needs root."""
    try:
        os.stat(mountpoint)
    except OSError:
        return
    bdis = [dev for mnt, _, dev in _mountinfo() if mnt == mountpoint]
    if bdis:
        try:
            with open(f"/sys/class/bdi/{bdis[-1]}/read_ahead_kb", "w") as f:
                f.write(str(READAHEAD_KB))
        except OSError:
            pass


def serve_until_unmounted(m: Mount, threads: int = 8):
    """Serve in a thread; SIGINT/SIGTERM/SIGHUP detach the mount, which ends
    the loop.  Returns after the final flush."""
    stop = threading.Event()
    errors = []

    def run():
        try:
            m.serve(threads)
        except BaseException as e:          # reported by the main thread
            errors.append(e)

    def on_signal(signum, frame):
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    t = threading.Thread(target=run, name="pyh2-fuse", daemon=True)
    t.start()
    threading.Thread(target=_tune_readahead, args=(m.mountpoint,), name="pyh2-ra",
                     daemon=True).start()
    try:
        detached = False
        while t.is_alive():
            t.join(0.2)
            if stop.is_set() and not detached:
                try:
                    unmount(m.mountpoint, lazy=True)
                except H2Error:
                    pass                    # already gone: the loop ends anyway
                detached = True
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    m.close()
    if errors:
        raise errors[0]


def daemon(images, label, mountpoint, readonly=False, debug=False, flush_secs=5,
           options="", threads=8, log=os.devnull, retry_max=10.0) -> int:
    """Fork a child that mounts and serves; return its pid once the mount is
    live (or raise the child's error)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                    # the daemon
        os.close(r)
        status = 1
        try:
            os.setsid()
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            m = Mount(images, label, mountpoint, readonly, debug, flush_secs, options,
                      retry_max)
            os.chdir("/")                           # hold no other mount busy
            os.write(w, b"ok")
            os.close(w)
            w = -1
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            serve_until_unmounted(m, threads)
            status = 0
        except BaseException as e:
            msg = getattr(e, "strerror", None) or str(e)
            if w >= 0:
                os.write(w, f"{getattr(e, 'errno', None) or errno.EIO} {msg}".encode())
            else:
                os.write(2, f"pyh2 mount: {msg}\n".encode())
        finally:
            os._exit(status)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 4096):
        chunks.append(chunk)
    os.close(r)
    reply = b"".join(chunks).decode(errors="replace")
    if reply != "ok":
        os.waitpid(pid, 0)
        code, _, msg = reply.partition(" ")
        raise H2Error(int(code) if code.isdigit() else errno.EIO,
                      msg or "mount daemon died before mounting")
    return pid


# ------------------------------------------------------------- unmounting

def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _mountinfo():
    """(mount point, source, "major:minor") of every pyh2 mount, oldest first."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, source = right.split()[:2]
            if fstype == FSTYPE:
                fields = left.split()
                yield _unescape(fields[4]), _unescape(source), fields[2]


def mounts() -> list[tuple[str, str]]:
    """(mount point, source) of every pyh2 mount."""
    return [(mnt, source) for mnt, source, _ in _mountinfo()]


def _servers(mountpoint: str) -> list[int]:
    """FUSE servers (processes holding /dev/fuse) holding mountpoint (Mount.anchor)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds}
        except OSError:
            continue                        # gone, or not ours to look at
        if "/dev/fuse" in links and mountpoint in links:
            pids.append(int(pid))
    return pids


def _alive(pid: int) -> bool:
    """Whether any thread of process pid is still there: an exiting process's first
    thread can be a zombie while others still hold its files."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] not in ("Z", "X"):
                    return True
        except OSError:
            continue                        # that thread is gone
    return False


def unmount(mountpoint: str, lazy: bool = False):
    """Detach a FUSE mount (fusermount3, else umount); returns at once (umount waits
    for the server)."""
    if shutil.which("fusermount3"):
        cmd = ["fusermount3", "-u"] + (["-z"] if lazy else []) + [mountpoint]
    else:
        cmd = ["umount"] + (["-l"] if lazy else []) + [mountpoint]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        msg = r.stderr.strip() or f"{cmd[0]} failed"
        raise H2Error(errno.EBUSY if "busy" in msg else errno.EINVAL, msg)


def umount(mountpoint: str, lazy: bool = False, timeout: float = 60.0):
    """Flush a pyh2 mount, detach it, and wait until the serving process (daemon or
    foreground) has made its final flush and exited."""
    mnt = os.path.realpath(mountpoint)
    if mnt not in dict(mounts()):
        raise H2Error(errno.EINVAL, f"{mountpoint}: not a pyh2 mount")
    flush_error = None
    try:
        fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)                    # fsyncdir: the server commits
        finally:
            os.close(fd)
    except OSError as e:                    # a dead server has nothing to commit
        if e.errno not in (errno.ENOTCONN, errno.ECONNABORTED):
            flush_error = e
    servers = [p for p in _servers(mnt) if p != os.getpid()]
    unmount(mnt, lazy)
    deadline = time.monotonic() + timeout
    while any(map(_alive, servers)):
        if time.monotonic() > deadline:
            raise H2Error(errno.ETIMEDOUT, f"{mountpoint}: detached, but server "
                                           f"process {servers} still runs")
        time.sleep(0.05)
    if flush_error is not None:             # detached all the same: say what was lost
        raise H2Error(flush_error.errno, f"{mountpoint}: detached, but the last commit "
                                         f"failed: {flush_error.strerror}")
