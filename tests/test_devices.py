"""Device backends: a HAMMER2 volume on an image file, a loop device, an nbdkit or
qemu-nbd export (native NBD client) and a memory device; bad device input."""
import errno
import os
import subprocess

import pytest

import pyh2
from pyh2 import refimages
from pyh2.testing.devices import ImageFile, LoopDevice, NbdServer, loop_unavailable
from pyh2 import _core
from pyh2.importer import Importer

MiB = 1 << 20
SIZE = 128 * MiB


def import_and_check(uri, src):
    """newfs, import, flush, reopen: the tree reads back identical, fsck is clean."""
    pyh2.newfs(uri, 0)
    with pyh2.open(uri, writable=True) as vol:
        Importer(vol.pfs("DATA")).run(str(src))
    with pyh2.open(uri) as vol:
        diffs = refimages.compare_trees(refimages.tree_from_dir(src),
                                        refimages.tree_from_volume(vol.pfs("DATA")))
        result = vol.fsck()
    assert not diffs, "\n".join(diffs[:20])
    assert result["errors"] == [] and result["freemap"]["overlaps"] == 0


@pytest.fixture
def image(tmp_path):
    with ImageFile(tmp_path / "dev.img", SIZE, keep=True) as img:
        yield img


def test_image_file(image, sample_tree):
    import_and_check(image.uri, sample_tree)


def test_loop_device(image, sample_tree, loop_device):
    dev = loop_device(image.path)
    assert dev.path.startswith("/dev/loop")
    import_and_check(dev.uri, sample_tree)


def test_loop_device_with_4k_sectors(image, sample_tree, loop_device):
    """1 KiB blocks on a 4 KiB-sector device: O_DIRECT through bounce buffers and
    read-modify-write of partial sectors."""
    dev = loop_device(image.path, sector_size=4096)
    assert open(f"/sys/block/{os.path.basename(dev.path)}/queue/logical_block_size").read() \
        .strip() == "4096"
    import_and_check(dev.uri, sample_tree)


def test_nbdkit_native_client(image, sample_tree, nbd_server):
    srv = nbd_server(image.path, export="node")
    import_and_check(srv.uri, sample_tree)
    # what went over NBD is on the file nbdkit serves
    with pyh2.open(image.uri) as vol:
        assert vol.pfs("DATA").read("/a/b/text") == (sample_tree / "a" / "b" / "text").read_bytes()


@pytest.mark.parametrize("server", ["nbdkit", "qemu-nbd"])
def test_nbd_over_tcp(image, sample_tree, nbd_server, server):
    srv = nbd_server(image.path, export="t", server=server, tcp=True)
    assert srv.uri.startswith("nbd://127.0.0.1:")
    import_and_check(srv.uri, sample_tree)


def test_nbdkit_memory_plugin(sample_tree, nbd_server):
    import_and_check(nbd_server(plugin="memory", size=SIZE).uri, sample_tree)


def test_qemu_nbd(image, sample_tree, nbd_server):
    import_and_check(nbd_server(image.path, server="qemu-nbd", export="q").uri, sample_tree)


def test_memory_device(sample_tree, mem_device):
    import_and_check(mem_device(SIZE).uri, sample_tree)


def test_memory_device_from_an_image_is_copy_on_write(tmp_path, sample_tree):
    """mem_create_from: the device reads the image's tree, writes to it are read back
    from the device (across opens), and the image file keeps every byte it had."""
    img = tmp_path / "base.h2"
    pyh2.newfs(img, 64 * MiB)
    with pyh2.open(img, writable=True) as vol:
        Importer(vol.pfs("DATA")).run(str(sample_tree))
    before = img.read_bytes()
    _core.mem_create_from("cow-test", str(img))
    try:
        with pyh2.open("mem:cow-test", writable=True) as vol:
            vol.pfs("DATA").create("/added", b"only on the device")
        with pyh2.open("mem:cow-test") as vol:
            assert vol.pfs("DATA").read("/added") == b"only on the device"
            tree = refimages.tree_from_volume(vol.pfs("DATA"))
            assert vol.fsck()["errors"] == []
    finally:
        _core.mem_delete("cow-test")
    assert img.read_bytes() == before
    tree = [e for e in tree if e["path"] != "/added"]
    assert not refimages.compare_trees(refimages.tree_from_dir(sample_tree), tree)


def test_kernel_nbd_attachment(image, nbd_server, nbd_attachment):
    att = nbd_attachment(nbd_server(image.path))    # skips where the kernel lacks nbd
    pyh2.newfs(att.uri, 0)
    with pyh2.open(att.uri) as vol:
        assert "DATA" in {p.label for p in vol.pfs_list()}


def test_one_volume_reads_alike_through_every_backend(image, sample_tree, nbd_server, loop_device):
    import_and_check(image.uri, sample_tree)
    expected = refimages.tree_from_dir(sample_tree)
    uris = [loop_device(image.path, read_only=True).uri,
            nbd_server(image.path, read_only=True).uri,
            nbd_server(image.path, server="qemu-nbd", read_only=True).uri]
    for uri in uris:
        with pyh2.open(uri) as vol:
            diffs = refimages.compare_trees(expected, refimages.tree_from_volume(vol.pfs("DATA")))
            assert not diffs, (uri, diffs[:10])


def test_cli_takes_device_uris(image, sample_tree, nbd_server):
    from pyh2.testing.cli import run_pyh2
    import_and_check(image.uri, sample_tree)
    srv = nbd_server(image.path, export="e")
    for spec in (srv.uri, srv.uri + ":DATA"):
        proc = run_pyh2("cat", spec, "/a/b/text")
        assert proc.returncode == 0, proc.stderr.decode()
        assert proc.stdout == (sample_tree / "a" / "b" / "text").read_bytes()
    proc = run_pyh2("ls", srv.uri + ":NOPE", "/")
    assert proc.returncode == 1 and b"NOPE" in proc.stderr


def test_trim_discards_through_file_loop_and_nbd(tmp_path, nbd_server, loop_device):
    path = tmp_path / "t.img"
    path.write_bytes(os.urandom(8 * MiB))
    ranges = {str(path): (0, MiB), loop_device(path).uri: (2 * MiB, MiB),
              nbd_server(path).uri: (4 * MiB, MiB)}
    for uri, (off, length) in ranges.items():
        _core.backend_trim(uri, off, length)
    data = path.read_bytes()
    for uri, (off, length) in ranges.items():
        assert data[off:off + length] == bytes(length), uri
    assert data[MiB:2 * MiB] != bytes(MiB) and data[6 * MiB:] != bytes(2 * MiB)


# ------------------------------------------------------------------ bad input

def test_unreachable_socket(tmp_path):
    uri = f"nbd+unix:///x?socket={tmp_path}/nobody.sock"
    with pytest.raises(pyh2.H2Error) as e:
        pyh2.open(uri)
    assert e.value.errno == errno.ENOENT and "nobody.sock" in str(e.value)


def test_unreachable_tcp_port():
    with pytest.raises(pyh2.H2Error) as e:
        pyh2.open("nbd://127.0.0.1:1/x")
    assert e.value.errno == errno.ECONNREFUSED and "127.0.0.1:1" in str(e.value)


@pytest.mark.parametrize("server", ["nbdkit", "qemu-nbd"])
def test_wrong_export_name(image, nbd_server, server):
    srv = nbd_server(image.path, export="right", server=server)
    with pytest.raises(pyh2.H2Error) as e:
        pyh2.open(srv.uri_for("wrong"))
    assert e.value.errno == errno.ENOENT and "export 'wrong'" in str(e.value)


@pytest.mark.parametrize("uri", ["nbd+unix:///x", "nbd://", "nbd+tls://h/x",
                                 "nbd+unix:///x?socket=/s&timeout=-1"])
def test_malformed_uri(uri):
    with pytest.raises(pyh2.H2Error) as e:
        pyh2.open(uri)
    assert e.value.errno == errno.EINVAL and uri.split("?")[0] in str(e.value)


@pytest.mark.parametrize("kind", ["memory", "directory", "socket"])
def test_no_such_device_is_named(tmp_path, kind):
    uri, want, needle = {
        "memory": ("mem:nosuch", errno.ENOENT, "no such memory device"),
        "directory": (str(tmp_path), errno.EINVAL, "a directory, not an image or block device"),
        "socket": (f"nbd+unix:///x?socket=/{'s' * 300}", errno.ENAMETOOLONG,
                   "socket path too long"),
    }[kind]
    with pytest.raises(pyh2.H2Error) as e:
        pyh2.open(uri)
    assert e.value.errno == want and needle in str(e.value), e.value


def test_device_too_small_for_the_volume(image, nbd_server):
    pyh2.newfs(image.uri, 0)
    os.truncate(image.path, SIZE - 16 * MiB)
    for uri in (image.uri, nbd_server(image.path).uri):
        with pytest.raises(pyh2.H2Error) as e:
            pyh2.open(uri, writable=True)
        assert e.value.errno == errno.ENOSPC and "too small" in str(e.value), uri
        with pyh2.open(uri) as vol:                     # reading still tries, with a warning
            assert any("exceeds" in w for w in vol.warnings)


def test_newfs_larger_than_the_device(nbd_server, loop_device, image):
    for uri in (nbd_server(plugin="memory", size=64 * MiB).uri, loop_device(image.path).uri):
        with pytest.raises(pyh2.H2Error) as e:
            pyh2.newfs(uri, 1 << 30)
        assert e.value.errno == errno.ENOSPC and "requested" in str(e.value), uri


def test_read_only_devices_refuse_writable_open(image, loop_device, nbd_server):
    pyh2.newfs(image.uri, 0)
    for uri in (loop_device(image.path, read_only=True).uri,
                nbd_server(image.path, read_only=True).uri):
        with pytest.raises(pyh2.H2Error) as e:
            pyh2.open(uri, writable=True)
        assert e.value.errno == errno.EROFS and "read-only" in str(e.value), uri
        with pyh2.open(uri) as vol:
            assert vol.pfs("DATA").listdir("/") == []


def test_nothing_left_behind_after_a_failing_block(image):
    """A loop device and a server set up by a block that raises are gone after it."""
    if loop_unavailable():
        pytest.skip(loop_unavailable())
    pyh2.newfs(image.uri, 0)
    with pytest.raises(ZeroDivisionError):
        with LoopDevice(image.path) as dev, NbdServer(image.path) as srv:
            pid, loop, sock = srv.pid, dev.path, srv.sock
            with pyh2.open(srv.uri) as vol:
                vol.pfs("DATA")
                1 / 0
    assert str(image.path) not in subprocess.run(["losetup", "-a"], capture_output=True,
                                                 text=True).stdout
    assert not os.path.exists(f"/proc/{pid}") and not os.path.exists(sock)
    assert subprocess.run(["losetup", loop], capture_output=True).returncode != 0

