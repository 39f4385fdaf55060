"""The core is used from many threads at once (the GIL is released around
every C call): concurrent readers of one volume all get verified data."""
import hashlib
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pyh2
from pyh2 import refimages
from pyh2 import _core


def test_concurrent_reads_of_one_volume(ref_image):
    files = [e for e in refimages.load_manifest("basic")["trees"]["DATA"]
             if e["type"] == "file" and e["size"] > 0]
    with pyh2.open(ref_image("basic")) as vol:
        pfs = vol.pfs("DATA")

        def check(entry):
            data = pfs.read(entry["path"])
            return entry["path"], hashlib.sha256(data).hexdigest() == entry["sha256"]

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(check, files * 8))
    bad = [p for p, ok in results if not ok]
    assert len(results) == 8 * len(files) and not bad, bad


def test_concurrent_fsck_and_reads(ref_image):
    want = refimages.fsck_counts("bigdir")
    with pyh2.open(ref_image("bigdir")) as vol:
        pfs = vol.pfs("DATA")
        with ThreadPoolExecutor(max_workers=4) as pool:
            fscks = [pool.submit(vol.fsck) for _ in range(2)]
            lists = [pool.submit(pfs.listdir, "/flat") for _ in range(4)]
            counts = [f.result() for f in fscks]
            names = [f.result() for f in lists]
    assert all({k: c[k] for k in want} == want for c in counts)
    assert all(n == names[0] and len(n) == 12000 for n in names)


def _wait_child(pid, seconds):
    """The child's exit code; a child still running after `seconds` is killed: None."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.002)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def test_fork_while_threads_churn_buffers(tmp_path):
    """A child forked while other threads take and return DIO buffers and queue pool
    reads opens and reads a volume: it inherits no lock held by a thread it lacks."""
    img, data = tmp_path / "v.h2", os.urandom(4 << 20)
    pyh2.newfs(img, 256 << 20, comp="none")
    with pyh2.open(img, writable=True) as vol:
        vol.pfs("DATA").create("/f", data)
    stop = threading.Event()

    def churn():
        with pyh2.open(img) as vol:
            pfs = vol.pfs("DATA")
            while not stop.is_set():
                _core.dio_purge(vol.device)
                for off in range(0, len(data), 128 << 10):     # under the direct-read size
                    pfs.read("/f", off, 128 << 10)

    churners = [threading.Thread(target=churn) for _ in range(2)]
    for t in churners:
        t.start()
    try:
        for _ in range(150):
            pid = os.fork()
            if pid == 0:
                try:
                    with pyh2.open(img) as vol:
                        os._exit(0 if vol.pfs("DATA").read("/f") == data else 1)
                finally:
                    os._exit(2)
            assert _wait_child(pid, 10) == 0
    finally:
        stop.set()
        for t in churners:
            t.join()
