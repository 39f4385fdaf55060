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
