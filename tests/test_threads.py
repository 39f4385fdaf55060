"""The core is used from many threads at once (the GIL is released around
every C call): concurrent readers of one volume all get verified data."""
import hashlib
from concurrent.futures import ThreadPoolExecutor

import pyh2
from harness import refimages


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
