"""The raw device layer's test hooks: injected faults and the write log."""
import errno
import os
import time

import pytest

import pyh2
from pyh2 import _core

MiB = 1 << 20
ZONE = 2 << 30                      # volume header copies sit at n * 2 GiB


@pytest.fixture
def image(tmp_path):
    img = tmp_path / "dev.h2"
    pyh2.newfs(img, 64 * MiB)
    with pyh2.open(img, writable=True) as vol:
        pfs = vol.pfs("DATA")
        pfs.mkdir("/d")
        pfs.create("/d/f", os.urandom(200_000))
    return img


def test_write_log_orders_header_after_barrier(image):
    with pyh2.open(image, writable=True) as vol:
        vol.device.record(True)
        vol.pfs("DATA").create("/d/g", b"g" * 70_000)
        vol.flush()
        log = vol.device.take_record()
        assert vol.device.take_record() == []          # taking empties it
    writes = [i for i, (op, _, _, _) in enumerate(log) if op == "write"]
    assert all(log[i][1] == 0 for i in writes)          # one volume: volume 0
    headers = [i for i in writes if log[i][2] % ZONE == 0]
    assert len(headers) == 1, log
    h = headers[0]
    # every block the header points to was written and synced before it
    assert h > 0 and log[h - 1][0] == "sync"
    assert all(i < h for i in writes if i != h)
    assert log[-1][0] == "sync"
    assert sum(len(d) for op, _, _, d in log if op == "write") >= 70_000


def test_injected_read_error_names_device_and_offset(image):
    with pyh2.open(image) as vol:
        pfs = vol.pfs("DATA")
        vol.device.inject_fault("read")
        with pytest.raises(pyh2.H2Error) as ei:
            pfs.read("/d/f")
        assert ei.value.errno == errno.EIO
        assert "injected" in str(ei.value) and str(image) in str(ei.value)
        fired = vol.device.faults_injected
        assert fired >= 1
        assert vol.device.clear_fault() == fired          # the disarmed fault's count
        assert vol.device.faults_injected == 0 and vol.device.clear_fault() == 0
        assert len(pfs.read("/d/f")) == 200_000


def test_corrupted_reads_fail_their_check(image):
    with pyh2.open(image) as vol:
        pfs = vol.pfs("DATA")
        vol.device.inject_fault("corrupt")
        with pytest.raises(pyh2.H2Error) as ei:
            pfs.read("/d/f")
        assert ei.value.errno == errno.EIO and "check" in str(ei.value).lower()


def test_a_corrupted_read_is_read_again_on_retry(image):
    """A buffer that failed its check is not cached: a bad transfer does not stick.
    One transfer may have carried several read-ahead buffers: each fails once (a
    retry that races the read-ahead's release of a bad one may meet it again)."""
    with pyh2.open(image) as vol:
        pfs = vol.pfs("DATA")
        pfs.read("/d/f", 0, 1)                  # the metadata on the way, cached
        _core.dio_purge(vol.device)
        vol.device.inject_fault("corrupt", limit=1)
        failures = 0
        while True:
            try:
                data = pfs.read("/d/f")
                break
            except pyh2.CheckError:
                failures += 1
                assert failures <= 8, "a corrupted buffer stayed cached"
                time.sleep(0.05)
        assert failures >= 1 and vol.device.faults_injected == 1
        _core.dio_purge(vol.device)
        assert pfs.read("/d/f") == data and len(data) == 200_000


def test_fault_after_count_and_limit(image):
    with pyh2.open(image) as vol:
        pfs = vol.pfs("DATA")
        vol.device.inject_fault("read", after=1_000_000)   # never reached
        assert len(pfs.read("/d/f")) == 200_000
        assert vol.device.faults_injected == 0


def test_enospc_on_flush_keeps_last_flushed_state(image):
    vol = pyh2.open(image, writable=True)
    try:
        vol.pfs("DATA").create("/d/lost", b"x" * 100_000)
        vol.device.inject_fault("enospc")
        with pytest.raises(pyh2.H2Error) as ei:
            vol.flush()
        assert ei.value.errno == errno.ENOSPC
        vol.device.clear_fault()
        with pytest.raises(pyh2.H2Error) as ei:            # the node takes no more flushes
            vol.flush()
        assert "flushes disabled" in str(ei.value)
    finally:
        vol.close()
    with pyh2.open(image) as vol:
        assert vol.pfs("DATA").listdir("/d") == ["f"]
        assert vol.fsck()["errors"] == []


def test_disconnect_is_permanent_until_cleared(image):
    with pyh2.open(image) as vol:
        pfs = vol.pfs("DATA")
        vol.device.inject_fault("disconnect", limit=1)
        for _ in range(2):
            with pytest.raises(pyh2.H2Error) as ei:
                pfs.read("/d/f")
            assert ei.value.errno == errno.ENOTCONN
        vol.device.clear_fault()
        assert len(pfs.read("/d/f")) == 200_000


@pytest.mark.parametrize("kind,prob", [("bogus", 1.0), ("read", 0.0), ("read", 1.5)])
def test_bad_fault_arguments(image, kind, prob):
    with pyh2.open(image) as vol:
        with pytest.raises(pyh2.H2Error) as ei:
            vol.device.inject_fault(kind, probability=prob)
        assert ei.value.errno == errno.EINVAL


def test_fault_kinds_listed():
    assert set(_core.Device.FAULTS) == {"read", "write", "corrupt", "disconnect", "enospc", "slow"}


def test_write_log_names_each_write_volume(tmp_path):
    vols = [tmp_path / "v0", tmp_path / "v1"]
    # volume 0's aux area leaves its allocator 24 MiB: the file spills into volume 1
    pyh2.newfs(vols, [1 << 30, 64 * MiB], aux=960 * MiB)
    with pyh2.open(vols, writable=True) as vol:
        vol.device.record(True)
        vol.pfs("DATA").create("/f", os.urandom(40 * MiB))
        vol.flush()
        log = vol.device.take_record()
    writes = [(v, off, len(d)) for op, v, off, d in log if op == "write"]
    assert {v for v, _, _ in writes} == {0, 1}
    # offsets are the volume's own: each write within its volume
    assert all(off + n <= (1 << 30 if v == 0 else 64 * MiB) for v, off, n in writes)
    assert writes[-1] == (0, 0, 64 * 1024)             # the root volume's header, last
    assert all(e == ("sync", None, None, None) for e in log if e[0] == "sync")


def test_neighbouring_writes_reach_the_device_together(image):
    data = os.urandom(4 * MiB)                  # incompressible: 64 blocks side by side
    with pyh2.open(image, writable=True) as vol:
        vol.device.record(True)
        before = _core.dio_writes(vol.device)
        vol.pfs("DATA").create("/d/big", data)
        vol.flush()
        requests = _core.dio_writes(vol.device) - before
        blocks = [e for e in vol.device.take_record() if e[0] == "write"]
    assert len(blocks) > 64                     # the log still has each block
    assert requests * 4 <= len(blocks), (requests, len(blocks))
    with pyh2.open(image) as vol:
        assert vol.pfs("DATA").read("/d/big") == data


def test_a_write_fault_fails_one_block_not_its_run(image, tmp_path):
    """Blocks written in one request still meet an armed fault one by one: the
    one it hits is lost, its neighbours are written."""
    data = os.urandom(4 * MiB)
    twin = tmp_path / "twin.h2"
    twin.write_bytes(image.read_bytes())

    def flush_logged(img, fault):
        vol = pyh2.open(img, writable=True)
        try:
            vol.device.record(True)
            vol.pfs("DATA").create("/d/big", data)
            if fault:
                vol.device.inject_fault("write", after=10, limit=1)
                with pytest.raises(pyh2.H2Error) as ei:
                    vol.flush()
                assert ei.value.errno == errno.EIO and "injected" in str(ei.value)
                assert vol.device.faults_injected == 1
            else:
                vol.flush()
            return {(off, len(d)) for op, _, off, d in vol.device.take_record()
                    if op == "write"}
        finally:
            try:
                vol.close()
            except pyh2.H2Error:
                assert fault                    # the failed flush disabled flushes

    clean, faulted = flush_logged(image, False), flush_logged(twin, True)
    # the faulted flush stops at its barrier, before the header; every other block is there
    missing = clean - {(0, 64 * 1024)} - faulted
    assert len(missing) == 1 and faulted < clean, missing
