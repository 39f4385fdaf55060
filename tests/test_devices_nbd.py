"""The native NBD client under faults injected by nbdkit's error and delay filters,
a server killed mid-write, timeouts; the asynchronous DIO path over NBD."""
import errno
import os
import re
import threading
import uuid

import pytest

import pyh2
from pyh2 import _core
from pyh2.volume import Pfs, check_algo, comp_algo

MiB = 1 << 20
SIZE = 128 * MiB
OFFSET = re.compile(r"0x[0-9a-f]+")
BOUND = 60          # seconds: a hang fails the test instead of stalling the run


@pytest.fixture(autouse=True)
def no_hang(watchdog):
    watchdog(BOUND)


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
    # alone, the NBD node fails; read-ahead makes few requests, so a pass over the
    # files can miss every failure: fresh connections read until one hits
    with pytest.raises(pyh2.H2Error) as e:
        for _ in range(20):
            with pyh2.open(srv.uri) as vol:
                pfs = vol.pfs("DATA")
                trigger.touch()
                try:
                    for name in files:
                        pfs.read(name)
                finally:
                    trigger.unlink()
    assert e.value.errno == errno.EIO
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
        for qd in (1, 8, 32, 300):                      # 300: more than the pool queues
            _core.dio_purge(vol.device)
            _core.dio_readmany(vol.device, offs * 8, qd)
            loaded = _core.dio_reads(vol.device)
            assert pfs.read("/d/f") == want
            assert _core.dio_reads(vol.device) == loaded     # served from the loaded buffers
        with pytest.raises(pyh2.H2Error) as e:
            _core.dio_readmany(vol.device, [SIZE + (1 << 16)], 4)
        assert e.value.errno == errno.EIO and OFFSET.search(str(e.value))


# ------------------------------------------------------------- hostile servers

def hostile_server(tmp_path, script):
    """A unix-socket peer that plays `script(conn)` to the one client it accepts."""
    import socket
    path = str(tmp_path / "hostile.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def serve():
        try:
            conn, _ = srv.accept()
            with conn:
                script(conn)
        except OSError:
            pass
        finally:
            srv.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return f"nbd+unix:///x?socket={path}&timeout=2", t


def _hello(conn):
    conn.sendall(b"NBDMAGIC" + b"IHAVEOPT" + (3).to_bytes(2, "big"))
    conn.recv(4)                                      # client flags


def _read_request_stream(conn):
    while conn.recv(65536):
        pass


@pytest.mark.parametrize("case, want, needle", [
    ("not-nbd", errno.EPROTO, "not an NBD server"),
    ("oldstyle", errno.ENOTSUP, "oldstyle"),
    ("hangup", errno.ENOTCONN, "server closed the connection"),
    ("silent", errno.ETIMEDOUT, "timed out"),
    ("huge-reply", errno.EPROTO, "malformed option reply"),
    ("no-size", errno.EPROTO, "no export size"),
    ("bad-reply-handle", errno.ENOTCONN, "protocol error"),
    ("endless-info", errno.EPROTO, "more than 64 replies"),
])
def test_hostile_server(tmp_path, case, want, needle):
    import struct
    rep = 0x3e889045565a9

    def script(conn):
        if case == "not-nbd":
            conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n\0\0\0\0")
        elif case == "oldstyle":
            conn.sendall(b"NBDMAGIC" + (0x00420281861253).to_bytes(8, "big") + bytes(2))
        elif case == "hangup":
            _hello(conn)
        elif case == "silent":                        # until the client gives up
            _hello(conn)
            _read_request_stream(conn)
        elif case == "huge-reply":
            _hello(conn)
            conn.recv(4096)
            conn.sendall(struct.pack(">QIII", rep, 7, 3, 1 << 30))
        elif case == "endless-info":                  # never the final ACK
            _hello(conn)
            conn.recv(4096)
            info = struct.pack(">QIIIHQH", rep, 7, 3, 12, 0, 64 << 20, 1)
            try:
                while True:
                    conn.sendall(info)
            except OSError:
                pass
        elif case == "no-size":
            _hello(conn)
            conn.recv(4096)
            conn.sendall(struct.pack(">QIII", rep, 7, 1, 0))
        elif case == "bad-reply-handle":
            _hello(conn)
            conn.recv(4096)
            conn.sendall(struct.pack(">QIIIHQH", rep, 7, 3, 12, 0, 64 << 20, 1)
                         + struct.pack(">QIII", rep, 7, 1, 0))
            conn.recv(28)                             # the first read request
            conn.sendall(struct.pack(">IIQ", 0x67446698, 0, 0xdeadbeef))
            _read_request_stream(conn)

    uri, t = hostile_server(tmp_path, script)
    with pytest.raises(pyh2.H2Error) as e:
        pyh2.open(uri)
    assert e.value.errno == want and needle in str(e.value), e.value
    t.join(10)


def test_concurrent_readers_over_nbd(tmp_path, nbd_server):
    """Threads reading (with read-ahead) through one NBD connection all get their data."""
    from concurrent.futures import ThreadPoolExecutor
    img = tmp_path / "many.img"
    pyh2.newfs(img, SIZE)
    files = {f"/f{i}": os.urandom(150_000 * (i % 5 + 1)) for i in range(16)}
    with pyh2.open(img, writable=True) as vol:
        for name, data in files.items():
            vol.pfs("DATA").create(name, data)
    srv = nbd_server(img, filters={"delay": {"delay-read": "1ms"}})
    with pyh2.open(srv.uri) as vol:
        pfs = vol.pfs("DATA")
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda n: (n, pfs.read(n)), list(files) * 3))
    assert len(got) == 48 and all(data == files[name] for name, data in got)


def test_export_block_size_minimum(image, nbd_server):
    """A 4 KiB minimum block size: read-only works, writing (1 KiB blocks) is refused."""
    srv = nbd_server(image, filters={"blocksize-policy": {"blocksize-minimum": "4096",
                                                          "blocksize-error-policy": "error"}})
    with pyh2.open(srv.uri) as vol:
        assert len(vol.pfs("DATA").read("/d/f")) == 3 * MiB
    with pytest.raises(pyh2.H2Error) as e:
        pyh2.open(srv.uri, writable=True)
    assert e.value.errno == errno.EINVAL and "4096 bytes" in str(e.value), e.value
