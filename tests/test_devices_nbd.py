"""The native NBD client under faults injected by nbdkit's error and delay filters,
a server killed mid-write, timeouts; the asynchronous DIO path over NBD."""
import errno
import os
import re
import threading
import uuid

import pytest

import pyh2
from harness.devices import NbdServer, nbd_server  # noqa: F401
from harness.model import watchdog
from pyh2 import _core
from pyh2.volume import Pfs, check_algo, comp_algo

MiB = 1 << 20
SIZE = 128 * MiB
OFFSET = re.compile(r"0x[0-9a-f]+")
BOUND = 60          # seconds: a hang fails the test instead of stalling the run


@pytest.fixture(autouse=True)
def no_hang():
    cancel = watchdog(BOUND)
    yield
    cancel()


@pytest.fixture
def image(tmp_path):
    img = tmp_path / "dev.img"
    pyh2.newfs(img, SIZE)
    with pyh2.open(img, writable=True) as vol:
        pfs = vol.pfs("DATA")
        pfs.mkdir("/d")
        pfs.create("/d/f", os.urandom(3 * MiB))
    return img


def test_failing_reads_give_eio_naming_the_offset(image, tmp_path, nbd_server):
    trigger = tmp_path / "fail-reads"
    srv = nbd_server(image, filters={"error": {"error-pread": "EIO", "error-pread-rate": "100%",
                                               "error-pread-file": trigger}})
    with pyh2.open(image) as vol:
        want = vol.pfs("DATA").read("/d/f")
    with pyh2.open(srv.uri) as vol:
        pfs = vol.pfs("DATA")
        _core.dio_purge(vol.device)
        trigger.touch()
        with pytest.raises(pyh2.H2Error) as e:
            pfs.read("/d/f")
        assert e.value.errno == errno.EIO, e.value
        assert "NBD read error" in str(e.value) and OFFSET.search(str(e.value)), e.value
        trigger.unlink()                        # lifted: failed buffers were not cached
        assert pfs.read("/d/f") == want


def test_failing_writes_fail_the_flush_and_keep_the_last_one(image, tmp_path, nbd_server):
    trigger = tmp_path / "fail-writes"
    srv = nbd_server(image, filters={"error": {"error-pwrite": "ENOSPC",
                                               "error-pwrite-rate": "100%",
                                               "error-pwrite-file": trigger}})
    with pyh2.open(srv.uri, writable=True) as vol:
        trigger.touch()
        vol.pfs("DATA").create("/g", os.urandom(500_000))
        with pytest.raises(pyh2.H2Error) as e:
            vol.flush()
        assert e.value.errno == errno.ENOSPC and OFFSET.search(str(e.value)), e.value
        vol.writable = False                    # nothing more to commit on exit
    trigger.unlink()
    with pyh2.open(srv.uri) as vol:
        assert sorted(vol.pfs("DATA").listdir("/")) == ["d"]
        assert vol.fsck()["errors"] == []


def test_reads_fail_over_to_other_nodes(tmp_path, nbd_server):
    """A PFS over [NBD node failing 30% of its reads, two image files]: every read
    returns the validated data, served by the other nodes where the NBD node fails."""
    clid = uuid.uuid4().bytes
    paths = [tmp_path / f"n{i}.img" for i in range(3)]
    for p in paths:
        _core.newfs(str(p), SIZE, "DATA", 0, comp_algo("lz4"), check_algo("xxhash64"), 3, clid)
    files = {f"/f{i}": os.urandom(200_000 + i * 70_000) for i in range(8)}
    vols = [pyh2.open(p, writable=True) for p in paths]
    try:
        pfs = Pfs(vols[0], _core.Pfs([v.device for v in vols], "DATA"))
        for name, data in files.items():
            pfs.create(name, data)
        pfs._core.flush()
        pfs.close()
    finally:
        for v in vols:
            v.close()
    trigger = tmp_path / "fail-reads"
    srv = nbd_server(paths[0], filters={"error": {"error-pread": "EIO", "error-pread-rate": "30%",
                                                  "error-pread-file": trigger}})
    # alone, the NBD node fails
    with pyh2.open(srv.uri) as vol, pytest.raises(pyh2.H2Error) as e:
        pfs = vol.pfs("DATA")
        trigger.touch()
        for name in files:
            pfs.read(name)
    assert e.value.errno == errno.EIO
    trigger.unlink()
    vols = [pyh2.open(srv.uri)] + [pyh2.open(p) for p in paths[1:]]
    try:
        pfs = Pfs(vols[0], _core.Pfs([v.device for v in vols], "DATA"))
        trigger.touch()
        for name, data in files.items():
            assert pfs.read(name) == data, name
        pfs.close()
    finally:
        for v in vols:
            v.close()


def test_server_killed_mid_write(image, nbd_server):
    """Writes stall in the server; it is killed: the flush fails ENOTCONN (bounded, no
    hang), the handle stays disconnected even after a restart, and a new connection
    finds the last completed flush intact."""
    srv = nbd_server(image, filters={"delay": {"delay-write": "20"}})
    vol = pyh2.open(srv.uri, writable=True)
    try:
        pfs = vol.pfs("DATA")
        pfs.create("/new", os.urandom(2 * MiB))
        killer = threading.Timer(0.5, srv.kill)
        killer.start()
        with pytest.raises(pyh2.H2Error) as e:
            vol.flush()
        killer.join()
        assert e.value.errno == errno.ENOTCONN and "disconnected" in str(e.value), e.value
        srv.start()                             # same socket, a new server
        with pytest.raises(pyh2.H2Error) as e:
            _core.dio_purge(vol.device)
            pfs.read("/d/f")
        assert e.value.errno == errno.ENOTCONN and "not reconnecting" in str(e.value)
    finally:
        vol.writable = False
        vol.close()
    with pyh2.open(srv.uri) as vol:
        assert vol.pfs("DATA").listdir("/") == ["d"]
        assert len(vol.pfs("DATA").read("/d/f")) == 3 * MiB
        assert vol.fsck()["errors"] == []


def test_request_timeout_disconnects(image, nbd_server):
    srv = nbd_server(image, filters={"delay": {"delay-read": "30"}}, timeout=0.5)
    with pytest.raises(pyh2.H2Error) as e:
        pyh2.open(srv.uri)
    assert e.value.errno == errno.ENOTCONN, e.value
    assert "timed out after 500 ms" in str(e.value), e.value


def test_concurrent_loads_of_one_buffer_share_one_read(image, nbd_server):
    with pyh2.open(image) as vol:
        off = vol.pfs("DATA").blocks("/d/f")[0]["data_off"] & ~0xFFFF
    srv = nbd_server(image, filters={"delay": {"delay-read": "200ms"}})
    with pyh2.open(srv.uri) as vol:                 # reads only the volume header
        before = _core.dio_reads(vol.device)
        _core.dio_readmany(vol.device, [off] * 32, 32)
        assert _core.dio_reads(vol.device) - before == 1
        offs = [off + (i << 16) for i in range(1, 17)]
        before = _core.dio_reads(vol.device)
        _core.dio_readmany(vol.device, offs + offs, 16)
        assert _core.dio_reads(vol.device) - before == 16


def test_async_loads_and_sync_reads_agree(image, nbd_server):
    """Buffers loaded through the worker pool hold what synchronous reads return."""
    with pyh2.open(image) as vol:
        want = vol.pfs("DATA").read("/d/f")
    srv = nbd_server(image)
    with pyh2.open(srv.uri) as vol:
        pfs = vol.pfs("DATA")
        offs = sorted({b["data_off"] & ~0xFFFF for b in pfs.blocks("/d/f")})
        for qd in (1, 8, 32):
            _core.dio_purge(vol.device)
            _core.dio_readmany(vol.device, offs, qd)
            loaded = _core.dio_reads(vol.device)
            assert pfs.read("/d/f") == want
            assert _core.dio_reads(vol.device) == loaded     # served from the loaded buffers
        with pytest.raises(pyh2.H2Error) as e:
            _core.dio_readmany(vol.device, [SIZE + (1 << 16)], 4)
        assert e.value.errno == errno.EIO and OFFSET.search(str(e.value))
