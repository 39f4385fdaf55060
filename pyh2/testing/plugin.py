"""pyh2's pytest plugin (entry point pytest11): fixtures for test suites of HAMMER2
volumes, devices, clusters and mounts.

Each fixture undoes what it set up when the test ends, passed or failed: images live in
tmp_path, devices are detached and servers stopped, mounts unmounted with their server
gone, a watchdog cancelled. A device this machine cannot provide (no loop module, no
nbdkit) skips the test naming why. Factories (`make_image(...)`, `nbd_server(...)`) may be
called several times in one test.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import subprocess

import pytest

import pyh2
from pyh2 import refimages
from pyh2.sample import make_tree
from pyh2.torture import Run
from pyh2.torture.model import watchdog as _watchdog
from pyh2.torture.ops import Generator

from .devices import DeviceUnavailable, LoopDevice, MemDevice, NbdAttachment, NbdServer
from .fusemount import mounted

GiB = 1 << 30
MiB = 1 << 20


def _made(cls):
    """A fixture's body: a factory that makes and enters a cls (a skip where the machine
    lacks it); everything made is exited, newest first, when the test ends."""
    made = []

    def make(*args, **kw):
        try:
            cm = cls(*args, **kw).__enter__()   # one that failed to set up has nothing to undo
        except DeviceUnavailable as e:
            pytest.skip(str(e))
        made.append(cm)
        return cm
    yield make
    for cm in reversed(made):
        cm.__exit__(None, None, None)


# --- devices ----------------------------------------------------------------------------

@pytest.fixture
def loop_device():
    """loop_device(backing, read_only=False, sector_size=None) -> an attached LoopDevice."""
    yield from _made(LoopDevice)


@pytest.fixture
def nbd_server():
    """nbd_server(target=None, plugin="file", filters={"error": {...}, "delay": {...}}, ...)
    -> a started NbdServer (nbdkit or qemu-nbd) on a unix socket; `.uri`, `.kill()`."""
    yield from _made(NbdServer)


@pytest.fixture
def mem_device():
    """mem_device(size) -> a MemDevice (`mem:NAME`), deleted after the test."""
    yield from _made(MemDevice)


@pytest.fixture
def nbd_attachment():
    """nbd_attachment(server) -> an NbdAttachment on /dev/nbdN, or a skip naming why not."""
    yield from _made(NbdAttachment)


# --- volumes ----------------------------------------------------------------------------

@pytest.fixture
def make_image(tmp_path):
    """make_image(size=1 GiB, comp="lz4", check="xxhash64", label="DATA") -> Path of a
    freshly formatted sparse volume in tmp_path (PFSes `label` and LOCAL)."""
    count = itertools.count()

    def make(size=GiB, comp="lz4", check="xxhash64", label="DATA"):
        n = next(count)
        path = tmp_path / ("vol.h2" if n == 0 else f"vol{n}.h2")
        pyh2.newfs(path, size, label=label, comp=comp, check=check)
        return path
    return make


@pytest.fixture
def image(make_image):
    """A fresh 1 GiB (sparse) volume: Path of the image file in tmp_path."""
    return make_image()


@pytest.fixture
def cluster_nodes(tmp_path, loop_device, nbd_server):
    """cluster_nodes(n, kind="file", size=64 MiB, **newfs) -> the URIs of n nodes formatted
    as one cluster; kind "file" (image files), "loop" (loop devices over files) or "nbd"
    (nbdkit exports of files), or a list of kinds, one per node."""
    count = itertools.count()

    def make(n, kind="file", size=64 * MiB, **newfs):
        kinds = [kind] * n if isinstance(kind, str) else list(kind)
        if len(kinds) != n or not set(kinds) <= {"file", "loop", "nbd"}:
            raise ValueError(f"cluster_nodes: {kind!r} is not a kind or a list of {n} kinds")
        d = tmp_path / f"cluster{next(count)}"
        d.mkdir()
        uris = []
        for i, k in enumerate(kinds):
            path = d / f"node{i}.h2"
            with open(path, "wb") as f:
                f.truncate(size)
            uris.append(str(path) if k == "file" else
                        loop_device(path).uri if k == "loop" else nbd_server(path).uri)
        pyh2.newfs_cluster(uris, 0, **newfs)
        return uris
    return make


@pytest.fixture
def fuse_mount(tmp_path):
    """fuse_mount(spec, *options) -> mount point of `pyh2 mount -d SPEC` (options as the
    CLI takes them, e.g. "--ro"); unmounted, its server gone, when the test ends."""
    count = itertools.count()
    with contextlib.ExitStack() as stack:
        def mount(spec, *options):
            mnt = tmp_path / f"mnt{next(count)}"
            stack.enter_context(mounted(os.fspath(spec), mnt, *options))
            return mnt
        yield mount


@pytest.fixture
def sample_tree(tmp_path):
    """A small host tree (pyh2.sample.make_tree) in tmp_path: files around the embedded
    and block size limits, a hole, deep directories, symlinks, a hardlink, a fifo."""
    return make_tree(tmp_path / "sample")


@pytest.fixture
def watchdog():
    """watchdog(seconds): a hang past seconds kills the test's process, dumping every
    thread's stack (under pytest-xdist the worker is replaced); cancelled at the end."""
    cancels = []

    def arm(seconds):
        cancels.append(_watchdog(seconds))
    yield arm
    for cancel in cancels:
        cancel()


# --- reference images (PYH2_REFERENCE_IMAGES, else shared/reference-images beside the repo)

@pytest.fixture(scope="session")
def ref_image():
    """ref_image(name) -> Path of the decompressed reference image (cached; don't write)."""
    return refimages.decompressed


@pytest.fixture(scope="session")
def ref_json():
    """ref_json(name) -> the reference image's manifest (NAME.json) as a fresh dict."""
    return refimages.load_manifest


@pytest.fixture(scope="session")
def ref_fsck_counts():
    """ref_fsck_counts(name) -> the real fsck's blockref counts for the image."""
    return refimages.fsck_counts


@pytest.fixture
def scratch_copy(tmp_path):
    """scratch_copy(name) -> writable sparse copy of a reference image in tmp_path."""
    def copy(name):
        dst = tmp_path / f"{name}.h2"
        subprocess.run(["cp", "--sparse=always", str(refimages.decompressed(name)), str(dst)],
                       check=True)
        os.chmod(dst, 0o644)
        return dst
    return copy


# --- torture ----------------------------------------------------------------------------

@pytest.fixture
def run_generated(tmp_path):
    """run_generated(cfg, nops, weights=None) -> the finished, closed torture Run of nops
    seeded ops (pyh2.torture.Config: seed, nodes, crash, faults, ...) on fresh images,
    each applied to the PFS and the model and compared; TortureFailure on a divergence."""
    def go(cfg, nops, weights=None):
        d = tmp_path / f"run{cfg.seed}"
        d.mkdir()
        run = Run(d, cfg)
        gen = Generator.for_run(cfg, weights)
        try:
            for i in range(nops):
                run.step(i, gen.next_op(run.model))
            run.finish()
        finally:
            run.close()
        return run
    return go
