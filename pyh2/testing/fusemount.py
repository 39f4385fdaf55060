"""pyh2 FUSE mounts for tests: a daemon that is always unmounted and gone afterwards."""
from __future__ import annotations

import contextlib
import os
import signal
import time

from pyh2.mount import _alive, mounts, unmount

from .cli import run_pyh2


def run_cli(*args, timeout=120):
    """`python3 -m pyh2 ARGS` (text output)."""
    return run_pyh2(*args, text=True, timeout=timeout)


def is_mounted(mountpoint) -> bool:
    return os.path.realpath(mountpoint) in dict(mounts())


def wait_gone(pid: int, timeout: float = 60.0) -> bool:
    """Wait for a process that is not our child; True once it has exited."""
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextlib.contextmanager
def mounted(spec, mountpoint, *options):
    """`pyh2 mount -d SPEC MOUNTPOINT OPTIONS...`; yields the daemon's pid. On the way out,
    whatever happened: `pyh2 umount` (forced detach if that fails), the daemon waited for
    (killed if it hangs), and no mount left behind."""
    os.makedirs(mountpoint, exist_ok=True)
    r = run_cli("mount", "-d", spec, mountpoint, *options)
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout.split()[-1])
    try:
        yield pid
    finally:
        try:
            if is_mounted(mountpoint):
                r = run_cli("umount", mountpoint, timeout=90)
                if r.returncode and is_mounted(mountpoint):
                    unmount(mountpoint, lazy=True)
        finally:
            if not wait_gone(pid, 60):
                os.kill(pid, signal.SIGKILL)
                wait_gone(pid, 10)
            assert not is_mounted(mountpoint), f"{mountpoint} still mounted"


def fsck_clean(img):
    """`pyh2 fsck` finds nothing wrong: tree, check codes, freemap."""
    r = run_cli("fsck", img)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 marked free, 0 overlapping" in r.stdout, r.stdout
