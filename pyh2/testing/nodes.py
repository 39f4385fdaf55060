"""A cluster's node images checked one by one, each opened on its own."""
import os

import pyh2

from .cli import run_pyh2


def node_tree(path, label="DATA"):
    """{path: bytes or 'dir'} of one node image opened on its own."""
    with pyh2.open(path) as vol:
        pfs = vol.pfs(label)
        out = {}
        for top, dirs, files in pfs.walk("/"):
            for d in dirs:
                out[os.path.join(top, d)] = "dir"
            for f in files:
                out[os.path.join(top, f)] = pfs.read(os.path.join(top, f))
        return out


def assert_all_nodes(paths, expected, label="DATA"):
    """Every node image holds exactly `expected` and passes pyh2 fsck."""
    for p in paths:
        assert node_tree(p, label) == expected, p
        proc = run_pyh2("fsck", p)
        assert proc.returncode == 0, (p, proc.stderr.decode())


def populate(pfs, model, tag, n=6):
    """Directory /tag (made if not in model) with n files of 1 to n KB of
    random bytes, every other one followed by 70,000 zero bytes (holes);
    each recorded in model {path: bytes or 'dir'}."""
    if f"/{tag}" not in model:
        pfs.mkdir(f"/{tag}")
        model[f"/{tag}"] = "dir"
    for i in range(n):
        data = os.urandom(1000 * (i + 1)) + bytes(70_000 * (i % 2))
        pfs.create(f"/{tag}/f{i}", data)
        model[f"/{tag}/f{i}"] = data
