"""A user's own suite on pyh2's pytest plugin. With pyh2 installed (`pip install
"pyh2[testing]"`), run `pytest -n 2` in a directory holding only this file. The last test
reads a reference image: set PYH2_REFERENCE_IMAGES to their directory."""
import errno
import os
import subprocess

import pytest

import pyh2
from pyh2 import refimages
from pyh2.torture import Config


def test_fresh_image_with_zlib_and_sha192(make_image):
    img = make_image(size=256 << 20, comp="zlib", check="sha192")
    with pyh2.open(img, writable=True) as vol:
        vol.pfs("DATA").create("/hello", b"hello\n" * 1000)
    with pyh2.open(img) as vol:
        assert vol.pfs("DATA").read("/hello") == b"hello\n" * 1000
        assert vol.fsck()["errors"] == []


def test_cluster_on_a_file_a_loop_device_and_nbdkit(cluster_nodes, sample_tree):
    uris = cluster_nodes(3, kind=["file", "loop", "nbd"])
    data = (sample_tree / "a" / "b" / "text").read_bytes()
    with pyh2.open_cluster(uris, writable=True) as vol:
        vol.pfs("DATA").create("/text", data)
    with pyh2.open_cluster(uris) as vol:
        assert [n["state"] for n in vol.nodes()] == ["live"] * 3
        assert vol.pfs("DATA").read("/text") == data
        assert vol.compare() == []


def test_nbd_read_errors_surface_as_eio(image, nbd_server, tmp_path):
    with pyh2.open(image, writable=True) as vol:
        vol.pfs("DATA").create("/f", os.urandom(1 << 20))
    trigger = tmp_path / "fail-reads"           # reads fail while this file exists
    srv = nbd_server(image, filters={"error": {"error-pread": "EIO", "error-pread-rate": "100%",
                                               "error-pread-file": trigger}})
    with pyh2.open(srv.uri) as vol:
        trigger.touch()
        with pytest.raises(pyh2.H2Error) as e:
            vol.pfs("DATA").read("/f")
        assert e.value.errno == errno.EIO


def test_a_tree_copied_through_a_fuse_mount(image, fuse_mount, sample_tree, watchdog):
    watchdog(120)                               # a hung mount fails this test, not the run
    mnt = fuse_mount(image)
    subprocess.run(["cp", "-a", f"{sample_tree}/.", str(mnt)], check=True)
    assert refimages.compare_trees(refimages.tree_from_dir(sample_tree),
                                   refimages.tree_from_dir(mnt)) == []


def test_seeded_ops_against_the_model(run_generated):
    run = run_generated(Config(seed=7, crash=True), 150)
    assert run.ops == 150 and run.flushes > 0


def test_reference_image_reads_as_its_manifest(ref_image):
    with pyh2.open(ref_image("basic")) as vol:
        assert refimages.diff_pfs("basic", "DATA", vol.pfs("DATA")) == []
