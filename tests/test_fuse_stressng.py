"""stress-ng's filesystem stressors through a mount, with its own data verification."""
from __future__ import annotations

import shutil
import subprocess

import pytest

import pyh2
from pyh2.testing.fusemount import fsck_clean, mounted, run_cli

pytestmark = pytest.mark.skipif(shutil.which("stress-ng") is None,
                                reason="stress-ng is not installed (scripts/setup.sh installs it)")

STRESSORS = ["--hdd", "2", "--hdd-bytes", "32M", "--hdd-opts", "wr-rnd,rd-rnd",
             "--dir", "1", "--rename", "1", "--link", "1", "--symlink", "1",
             "--utime", "1", "--chmod", "1", "--dentry", "1", "--fallocate", "1"]


def test_stress_ng_filesystem_stressors(tmp_path):
    """Random-offset writes read back and verified, directory, rename, link, symlink,
    utime, chmod, dentry and fallocate churn, all at once for 10 s on a 512 MiB volume:
    stress-ng reports no failure, the unmount commits, fsck is clean."""
    img, mnt = tmp_path / "vol.h2", tmp_path / "mnt"
    pyh2.newfs(img, 512 << 20)
    with mounted(img, mnt):
        r = subprocess.run(["stress-ng", "--temp-path", str(mnt), *STRESSORS, "--verify",
                            "--timeout", "10s", "--metrics-brief"],
                           cwd=mnt, capture_output=True, text=True, timeout=300)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert "successful run completed" in out, out
        u = run_cli("umount", mnt)
        assert u.returncode == 0, u.stdout + u.stderr
    fsck_clean(img)
