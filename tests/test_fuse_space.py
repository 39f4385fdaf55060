"""Space under pressure through a mount: what the kernel was told is written survives.

fio's random 4 KiB overwrites, verified, pass after pass: each overwrite reallocates a
whole 64 KiB block (copy-on-write) and the indirect blocks above it, so a mount that
counted only the bytes written ran out of space in its commit and lost what it had
acknowledged, on a volume a quarter full."""
from __future__ import annotations

import errno
import os
import random
import shutil
import subprocess

import pytest

import pyh2
from pyh2.testing.fusemount import fsck_clean, mounted, run_cli

pytestmark = pytest.mark.skipif(shutil.which("fio") is None,
                                reason="fio is not installed (scripts/setup.sh installs it)")


def fio(directory, *args):
    r = subprocess.run(["fio", "--name=v", f"--directory={directory}", *args,
                        "--verify_state_save=0", "--output-format=terse"],
                       cwd=directory, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def umount_committed(mnt):
    """`pyh2 umount` reports that the last commit wrote everything."""
    r = run_cli("umount", mnt)
    assert r.returncode == 0, r.stdout + r.stderr


def test_random_overwrites_verify_pass_after_pass(tmp_path):
    """2 jobs x 128 MiB of random 4 KiB overwrites on a 1 GiB volume, verified with
    crc32c, three passes: every pass verifies, the unmount commits, fsck is clean and
    the files hold what the last pass wrote (fio verifies again after a remount)."""
    img, mnt = tmp_path / "vol.h2", tmp_path / "mnt"
    pyh2.newfs(img, 1 << 30)
    job = ["--size=128M", "--bs=4k", "--numjobs=2", "--group_reporting",
           "--randseed=7", "--verify=crc32c"]
    with mounted(img, mnt):
        for _ in range(3):
            fio(mnt, "--rw=randwrite", *job)
        umount_committed(mnt)
    fsck_clean(img)
    with mounted(img, mnt):
        fio(mnt, "--rw=randwrite", *job, "--verify_only")
    fsck_clean(img)


def test_overwrites_of_half_the_volume_between_commits(tmp_path):
    """A file half the volume, then random 4 KiB overwrites with no timed commits: each
    reallocates its whole 64 KiB block, so the pending commit soon needs more than the
    free half. The mount commits and bulkfrees before admitting more (it used to admit
    them, counting 4 KiB each, and its commit failed: everything since the last one was
    lost). Every acknowledged write reads back after the unmount, and fsck is clean."""
    img, mnt = tmp_path / "vol.h2", tmp_path / "mnt"
    pyh2.newfs(img, 256 << 20)
    rnd = random.Random(11)
    base = rnd.randbytes(128 << 20)
    acked = {}
    with mounted(img, mnt, "--flush-interval", "0"):
        fd = os.open(mnt / "f", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.write(fd, base)
            os.fsync(fd)
            for _ in range(24000):
                off = rnd.randrange(0, len(base), 4096)
                acked[off] = rnd.randbytes(4096)
                os.pwrite(fd, acked[off], off)
        finally:
            os.close(fd)
        umount_committed(mnt)
    fsck_clean(img)
    with pyh2.open(img) as vol:
        data = bytearray(vol.pfs("DATA").read("/f"))
    for off, chunk in acked.items():
        assert data[off:off + 4096] == chunk, off
