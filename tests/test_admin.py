"""Administration: PFS create/delete, snapshots, bulkfree, growfs, setcomp/setcheck,
destroy/destroy-inum, and their commands. Snapshots must share, never lose, the source's
blocks; bulkfree must free exactly what nothing references; bad input must leave the
image untouched."""
import copy
import errno
import hashlib
import random
import re

import pytest

import pyh2
from pyh2.testing.cli import assert_clean_failure, run_pyh2
from pyh2.torture import model as h2model
from pyh2 import refimages

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


# ------------------------------------------------------------------------------- helpers

def rand(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def text(n: int, tag: str = "") -> bytes:
    """n bytes of compressible text."""
    line = f"{tag} the quick brown fox jumps over the lazy dog 0123456789\n".encode()
    return (line * (n // len(line) + 1))[:n]


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def assert_fsck_clean(vol, leaked_zero: bool = False) -> dict:
    res = vol.fsck()
    fm = res["freemap"]
    assert res["errors"] == [], res["errors"][:10]
    assert fm["unmarked"] == 0 and fm["overlaps"] == 0, fm
    if leaked_zero:
        assert fm["leaked_bytes"] == 0, fm
    return res


def snapshot_model(m: h2model.Model) -> h2model.Model:
    """An independent copy of a model (NOW, the 'set while the test ran' marker, kept)."""
    return copy.deepcopy(m, {id(h2model.NOW): h2model.NOW})


def assert_tree(pfs, m: h2model.Model, what: str):
    diffs = refimages.compare_trees(m.manifest(), refimages.tree_from_volume(pfs))
    assert not diffs, f"{what}: {len(diffs)} differences:\n" + "\n".join(diffs[:40])


def data_bytes(pfs, path) -> int:
    return sum(b["bytes"] for b in pfs.blocks(path) if b["type"] == "data")


def pfs_state(img):
    """(PFS list, every PFS's tree) of an image, to show that a failed call changed nothing."""
    with pyh2.open(img) as vol:
        infos = sorted((p.label, p.type, p.clid, p.fsid) for p in vol.pfs_list())
        trees = {p.label: refimages.tree_from_volume(vol.pfs(p.label)) for p in vol.pfs_list()}
        size = vol.volume_headers()[vol.best_zone]["volu_size"]
    return infos, trees, size


# ------------------------------------------------------- 1. the real tools' snapshots

def test_pfs_snapshot_reference_image(ref_image, ref_json):
    name = "pfs-snapshot"
    manifest = ref_json(name)
    words = next(e for e in manifest["trees"]["snap1"] if e["path"] == "/text/words.txt")
    with pyh2.open(ref_image(name)) as vol:
        got = sorted((p.label, p.type, p.clid) for p in vol.pfs_list())
        assert got == sorted((p["label"], p["type"], p["clid"]) for p in manifest["pfs"])
        assert {"snap1", "snap2"} <= {p.label for p in vol.pfs_list() if p.type == "SNAPSHOT"}

        snap1 = vol.pfs("snap1")
        st = snap1.stat("/text/words.txt")
        assert st.size == words["size"]
        assert refimages.sha256_of(snap1, "/text/words.txt", st.size) == words["sha256"]
        for label in ("DATA", "snap2"):
            with pytest.raises(pyh2.H2Error) as ei:
                vol.pfs(label).stat("/text/words.txt")
            assert ei.value.errno == errno.ENOENT, (label, ei.value)

        labels = {p.label for p in vol.pfs_list()}
        assert set(manifest["trees"]) <= labels
        for label in manifest["trees"]:
            diffs = refimages.diff_pfs(name, label, vol.pfs(label))
            assert not diffs, f"{label}: " + "\n".join(diffs[:40])


def test_pfs_snapshot_reference_reclaim(scratch_copy):
    """On the real tools' image: deleting both snapshots keeps every other tree; the real
    `destroy` of /text/words.txt left its inode an orphan in DATA, which destroy-inum
    removes, and bulkfree then reclaims its blocks."""
    name = "pfs-snapshot"
    img = scratch_copy(name)
    with pyh2.open(img, writable=True) as vol:
        snap1 = vol.pfs("snap1")
        inum = snap1.stat("/text/words.txt").inum
        wbytes = data_bytes(snap1, "/text/words.txt")
        snap1.close()
        del snap1   # (a closed but referenced Pfs: see test_pfs_delete_after_close)
        vol.pfs_delete("snap1")
        vol.pfs_delete("snap2")
    with pyh2.open(img, writable=True) as vol:
        assert {p.label for p in vol.pfs_list()} == {"DATA", "EXTRA", "LOCAL"}
        before = assert_fsck_clean(vol)["freemap"]["allocated_bytes"]
        freed = vol.bulkfree()
    with pyh2.open(img, writable=True) as vol:
        res = assert_fsck_clean(vol, leaked_zero=True)
        assert res["freemap"]["allocated_bytes"] == before - freed
        for label in ("DATA", "EXTRA"):
            diffs = refimages.diff_pfs(name, label, vol.pfs(label))
            assert not diffs, f"{label}: " + "\n".join(diffs[:40])
        inodes = res["inode"]
        data = vol.pfs("DATA")
        data.destroy_inum(inum)
        data.close()
    with pyh2.open(img, writable=True) as vol:
        res = assert_fsck_clean(vol)
        assert res["inode"] == inodes - 1
        assert res["freemap"]["leaked_bytes"] >= wbytes
        before = res["freemap"]["allocated_bytes"]
        freed = vol.bulkfree()
        assert freed >= wbytes, (freed, wbytes)
    with pyh2.open(img) as vol:
        res = assert_fsck_clean(vol, leaked_zero=True)
        assert res["freemap"]["allocated_bytes"] == before - freed
        for label in ("DATA", "EXTRA"):
            diffs = refimages.diff_pfs(name, label, vol.pfs(label))
            assert not diffs, f"{label}: " + "\n".join(diffs[:40])


PFS_TYPES = ["MASTER", "SLAVE", "SOFT_MASTER", "SOFT_SLAVE", "CACHE"]


def test_pfs_create_delete(tmp_path):
    img = tmp_path / "pfs.h2"
    pyh2.newfs(img, 256 * MiB)
    clid = "0badc0de-1234-4abc-8def-0123456789ab"
    with pyh2.open(img, writable=True) as vol:
        d = vol.pfs("DATA")
        d.create("/keep", b"data stays")
        d.close()
        data_clid = {p.label: p.clid for p in vol.pfs_list()}["DATA"]
        for t in PFS_TYPES:
            vol.pfs_create(f"P-{t}", type=t)
        vol.pfs_create("FIXED", type="SOFT_SLAVE", clid=clid)
        vol.pfs_create("JOIN", type="SLAVE", clid=data_clid)
        vol.pfs_create("ZS", comp="zlib:6", check="sha192")
        z = vol.pfs("ZS")
        z.mkdir("/d")
        z.create("/d/f", text(100 * KiB, "zs"))
        z.close()
    with pyh2.open(img, writable=True) as vol:
        infos = {p.label: p for p in vol.pfs_list()}
        assert set(infos) == {"DATA", "LOCAL", "FIXED", "JOIN", "ZS"} | {f"P-{t}" for t in
                                                                         PFS_TYPES}
        for t in PFS_TYPES:
            assert infos[f"P-{t}"].type == t
            assert vol.pfs(f"P-{t}").listdir("/") == []
        assert (infos["FIXED"].type, infos["FIXED"].clid) == ("SOFT_SLAVE", clid)
        assert (infos["JOIN"].type, infos["JOIN"].clid) == ("SLAVE", data_clid)
        clids = [p.clid for label, p in infos.items() if label not in ("JOIN", "DATA")]
        assert len(set(clids)) == len(clids), "new PFSes need fresh cluster ids"
        assert len({p.fsid for p in infos.values()}) == len(infos), "fsids must be unique"
        z = vol.pfs("ZS")
        assert (z.stat("/").comp_algo, z.stat("/").check_algo) == (3 | 6 << 4, 4)
        assert _methods(z, "/d/f") == {(3, 4)}
        assert z.read("/d/f") == text(100 * KiB, "zs")
        zbytes = data_bytes(z, "/d/f")
        z.close()
        del z       # (a closed but referenced Pfs: see test_pfs_delete_after_close)
        assert_fsck_clean(vol)
        for t in PFS_TYPES:
            vol.pfs_delete(f"P-{t}")
        vol.pfs_delete("ZS")
    with pyh2.open(img, writable=True) as vol:
        assert {p.label for p in vol.pfs_list()} == {"DATA", "LOCAL", "FIXED", "JOIN"}
        assert vol.pfs("DATA").read("/keep") == b"data stays"
        for label in ("ZS", "P-MASTER"):
            with pytest.raises(pyh2.H2Error) as ei:
                vol.pfs(label)
            assert ei.value.errno == errno.ENOENT
        assert_fsck_clean(vol)
        assert vol.bulkfree() >= zbytes
    with pyh2.open(img) as vol:
        assert_fsck_clean(vol, leaked_zero=True)


def test_pfs_delete_after_close(tmp_path):
    """EBUSY only while a Pfs is open: a closed one (still referenced) does not block."""
    img = tmp_path / "closed.h2"
    pyh2.newfs(img, 64 * MiB)
    with pyh2.open(img, writable=True) as vol:
        local = vol.pfs("LOCAL")
        assert local.listdir("/") == []
        with pytest.raises(pyh2.H2Error) as ei:
            vol.pfs_delete("LOCAL")
        assert ei.value.errno == errno.EBUSY
        local.close()
        vol.pfs_delete("LOCAL")
    with pyh2.open(img) as vol:
        assert [p.label for p in vol.pfs_list()] == ["DATA"]


# ------------------------------------------------------- 2./3. snapshots and bulkfree

BIG = "/data/big.bin"


def build_snapshotted(img):
    """A 1 GiB image with a tree, a snapshot 'snap' of DATA, then in DATA: a file modified,
    the big file deleted, one added. Returns (model of DATA, model of snap, on-media bytes
    of the big file's data blocks)."""
    pyh2.newfs(img, 1 * GiB)
    m = h2model.Model()
    with pyh2.open(img, writable=True) as vol:
        w = h2model.Mirror(vol.pfs("DATA"), m)
        w.mkdir("/data")
        w.mkdir("/data/sub")
        w.mkdir("/docs")
        w.create(BIG, rand(1, 3 * MiB + 12345))
        w.create("/data/mod.bin", rand(2, 400 * KiB + 7))
        w.create("/data/sub/small", b"small file\n")
        w.create("/docs/readme.txt", text(150 * KiB, "readme"))
        w.symlink("../data/big.bin", "/docs/link")
        w.create("/docs/hard", text(20 * KiB, "hard"))
        w.link("/docs/hard", "/data/hard2")

        snap = snapshot_model(m)
        assert vol.snapshot("DATA", "snap") == "snap"
        big_bytes = data_bytes(w.pfs, BIG)
        assert big_bytes >= 3 * MiB

        w.write("/data/mod.bin", rand(3, 70 * KiB), 100 * KiB)   # rewrite in the middle
        w.write("/docs/readme.txt", b"APPENDED\n", 150 * KiB)
        w.unlink(BIG)
        w.create("/data/new.bin", rand(4, 1 * MiB + 3))
        w.chmod("/docs/hard", 0o600)

        # before any further flush: the snapshot still shows the old state
        assert_tree(vol.pfs("snap"), snap, "snapshot, same session")
        assert_tree(w.pfs, m, "source, same session")
    return m, snap, big_bytes


def test_snapshot_semantics(tmp_path):
    img = tmp_path / "snap.h2"
    m, snap, _ = build_snapshotted(img)
    with pyh2.open(img) as vol:
        infos = {p.label: p for p in vol.pfs_list()}
        assert set(infos) == {"DATA", "LOCAL", "snap"}
        assert infos["snap"].type == "SNAPSHOT"
        assert infos["DATA"].type == "MASTER"
        assert infos["snap"].clid != infos["DATA"].clid
        assert_tree(vol.pfs("snap"), snap, "snapshot after reopen")
        assert_tree(vol.pfs("DATA"), m, "source after reopen")
        s, d = vol.pfs("snap"), vol.pfs("DATA")
        assert s.read(BIG) == rand(1, 3 * MiB + 12345)
        assert s.read("/data/mod.bin") == rand(2, 400 * KiB + 7)
        with pytest.raises(pyh2.H2Error) as ei:
            d.stat(BIG)
        assert ei.value.errno == errno.ENOENT
        with pytest.raises(pyh2.H2Error) as ei:
            s.stat("/data/new.bin")
        assert ei.value.errno == errno.ENOENT
        assert_fsck_clean(vol)


def test_snapshot_is_writable_and_independent(tmp_path):
    img = tmp_path / "snapw.h2"
    m, snap, _ = build_snapshotted(img)
    with pyh2.open(img, writable=True) as vol:
        w = h2model.Mirror(vol.pfs("snap"), snap)
        w.write(BIG, rand(5, 64 * KiB), 1 * MiB)
        w.unlink("/docs/readme.txt")
        w.create("/docs/only-in-snap", b"snap data")
        w.pfs.close()
        snap2 = snapshot_model(snap)
        assert vol.snapshot("snap", "snap-of-snap") == "snap-of-snap"
        w = h2model.Mirror(vol.pfs("snap"), snap)
        w.truncate(BIG, 10)
        w.pfs.close()
    with pyh2.open(img) as vol:
        assert {p.label: p.type for p in vol.pfs_list()}["snap-of-snap"] == "SNAPSHOT"
        assert_tree(vol.pfs("DATA"), m, "source")
        assert_tree(vol.pfs("snap"), snap, "written snapshot")
        assert_tree(vol.pfs("snap-of-snap"), snap2, "snapshot of the snapshot")
        assert_fsck_clean(vol)


def test_bulkfree_keeps_snapshot_then_frees_it(tmp_path):
    img = tmp_path / "bulk.h2"
    m, snap, big_bytes = build_snapshotted(img)

    # 1. with the snapshot: nothing it references may be freed
    with pyh2.open(img, writable=True) as vol:
        before = vol.fsck()["freemap"]["allocated_bytes"]
        freed = vol.bulkfree()
        assert freed >= 0
    with pyh2.open(img) as vol:
        res = assert_fsck_clean(vol, leaked_zero=True)
        assert res["freemap"]["allocated_bytes"] == before - freed
        assert_tree(vol.pfs("snap"), snap, "snapshot after bulkfree")
        assert_tree(vol.pfs("DATA"), m, "source after bulkfree")
        assert vol.pfs("snap").read(BIG) == rand(1, 3 * MiB + 12345)

    # 2. delete the snapshot: its own blocks (the big file at least) become free
    with pyh2.open(img, writable=True) as vol:
        vol.pfs_delete("snap")
    with pyh2.open(img, writable=True) as vol:
        assert "snap" not in {p.label for p in vol.pfs_list()}
        fm = assert_fsck_clean(vol)["freemap"]
        assert fm["leaked_bytes"] >= big_bytes, (fm, big_bytes)
        before = fm["allocated_bytes"]
        freed = vol.bulkfree()
        assert freed >= big_bytes, (freed, big_bytes)
    with pyh2.open(img) as vol:
        res = assert_fsck_clean(vol, leaked_zero=True)
        assert res["freemap"]["allocated_bytes"] == before - freed, (res["freemap"], before,
                                                                     freed)
        assert_tree(vol.pfs("DATA"), m, "source after deleting the snapshot")

    # 3. a second bulkfree finds nothing more
    with pyh2.open(img, writable=True) as vol:
        assert vol.bulkfree() == 0
    with pyh2.open(img) as vol:
        assert_fsck_clean(vol, leaked_zero=True)


# ------------------------------------------------------------------------ 4. growfs

def test_growfs_basic_reference(scratch_copy, ref_image):
    img = scratch_copy("basic")
    with pyh2.open(img, writable=True) as vol:
        assert vol.volume_headers()[vol.best_zone]["volu_size"] == 2 * GiB
        vol.growfs(4 * GiB)
    for _ in range(2):      # the image as left, then after another writable open/close
        with pyh2.open(img) as vol:
            hdrs = {h["zone"]: h for h in vol.volume_headers()}
            best = hdrs[vol.best_zone]
            assert best["volu_size"] == 4 * GiB
            assert 1 in hdrs and hdrs[1]["valid"], hdrs
            assert vol.size >= 4 * GiB
            diffs = refimages.diff_pfs("basic", "DATA", vol.pfs("DATA"))
            assert not diffs, "\n".join(diffs[:40])
            assert_fsck_clean(vol)
        with pyh2.open(img, writable=True) as vol:
            vol.pfs("DATA").close()
    # the header copies as the real growfs left them (reference image `grown`)
    with pyh2.open(ref_image("grown")) as vol:
        real = {h["zone"]: h["valid"] for h in vol.volume_headers()}
    with pyh2.open(img) as vol:
        ours = {h["zone"]: h["valid"] for h in vol.volume_headers()}
    assert ours == real


def test_growfs_allocator_as_the_real_growfs(tmp_path, ref_image):
    """The real growfs adds every new byte to allocator_size and allocator_free
    (2 GiB -> 8 GiB: 0x1f7800000), as the reference image `grown` shows for 2 -> 4 GiB."""
    with pyh2.open(ref_image("grown")) as vol:
        real = {h["zone"]: h for h in vol.volume_headers() if h["valid"]}
    assert real[1]["allocator_size"] - real[0]["allocator_size"] == 2 * GiB
    img = tmp_path / "g.h2"
    pyh2.newfs(img, 2 * GiB)
    with pyh2.open(img) as vol:
        before = vol.volume_headers()[vol.best_zone]
    assert before["allocator_size"] == real[0]["allocator_size"]
    with pyh2.open(img, writable=True) as vol:
        vol.growfs(8 * GiB)
    with pyh2.open(img) as vol:
        after = vol.volume_headers()[vol.best_zone]
        assert_fsck_clean(vol)
    assert after["allocator_size"] == 0x1f7800000
    assert after["allocator_free"] - before["allocator_free"] == 6 * GiB
    assert after["total_size"] == after["volu_size"] == 8 * GiB


@pytest.mark.parametrize("spec,ok", [("zlib", True), ("zlib:0", True), ("zlib:default", True),
                                     ("zlib:6", True), ("zlib:9", True), ("lz4:default", True),
                                     ("zlib:1", False), ("zlib:5", False), ("zlib:10", False),
                                     ("lz4:1", False), ("none:9", False), ("zlib:x", False)])
def test_comp_levels_as_the_real_tools(spec, ok, tmp_path):
    """setcomp and makefs take a level for zlib only, 6..9 (0/default: the default)."""
    img = tmp_path / "c.h2"
    pyh2.newfs(img, 64 * MiB)
    with pyh2.open(img, writable=True) as vol:
        pfs = vol.pfs("DATA")
        if ok:
            assert pfs.setcomp("/", spec) == 1
            assert pfs.stat("/").comp_algo == pyh2.volume.comp_algo(spec)
        else:
            with pytest.raises(pyh2.H2Error) as ei:
                pfs.setcomp("/", spec)
            assert ei.value.errno == errno.EINVAL
            assert spec.split(":")[1] in str(ei.value), str(ei.value)
        pfs.close()
    proc = run_pyh2("setcomp", spec, f"{img}:DATA", "/")
    if ok:
        assert proc.returncode == 0, proc.stderr
    else:
        assert_clean_failure(proc, spec.split(":")[1])


def test_growfs_makes_space_allocatable(tmp_path):
    img = tmp_path / "small.h2"
    pyh2.newfs(img, 96 * MiB)
    vol = pyh2.open(img, writable=True)
    pfs = vol.pfs("DATA")
    written, n = [], 0
    try:
        while True:
            assert n < 200, "96 MiB image never ran out of space"
            pfs.create(f"/f{n:03d}", rand(100 + n, MiB))
            vol.flush()
            written.append(n)
            n += 1
    except pyh2.H2Error as e:
        assert e.errno == errno.ENOSPC, e
    finally:
        pfs.close()
        vol.close()         # discard the failed transaction
    failed = n
    assert len(written) >= 32, f"ENOSPC after only {len(written)} MiB of 96"

    with pyh2.open(img) as vol:
        pfs = vol.pfs("DATA")
        assert sorted(pfs.listdir("/")) == [f"f{i:03d}" for i in written]
        assert_fsck_clean(vol)

    with pyh2.open(img, writable=True) as vol:
        vol.growfs(256 * MiB)
        assert vol.volume_headers()[vol.best_zone]["volu_size"] == 256 * MiB

    # the same write now succeeds, and more: past what the old size could ever hold
    extra = list(range(failed, failed + 48))
    with pyh2.open(img, writable=True) as vol:
        pfs = vol.pfs("DATA")
        for i in extra:
            pfs.create(f"/f{i:03d}", rand(100 + i, MiB))
            if i % 8 == 0:
                vol.flush()
        pfs.close()
    with pyh2.open(img) as vol:
        assert vol.volume_headers()[vol.best_zone]["volu_size"] == 256 * MiB
        pfs = vol.pfs("DATA")
        names = written + extra
        assert len(names) * MiB > 96 * MiB
        assert sorted(pfs.listdir("/")) == [f"f{i:03d}" for i in names]
        for i in names:
            assert pfs.read(f"/f{i:03d}") == rand(100 + i, MiB), i
        assert_fsck_clean(vol)


# --------------------------------------------------------------- 5. setcomp/setcheck

def _methods(pfs, path):
    return {(b["comp"], b["check"]) for b in pfs.blocks(path) if b["type"] == "data"}


def test_setcomp_setcheck(tmp_path):
    img = tmp_path / "algo.h2"
    pyh2.newfs(img, 1 * GiB)                       # default lz4 + xxhash64
    old_txt, new_txt = text(200 * KiB, "old"), text(300 * KiB, "new")
    with pyh2.open(img, writable=True) as vol:
        p = vol.pfs("DATA")
        p.mkdir("/d")
        p.mkdir("/d/sub")
        p.create("/d/old", old_txt)
        p.create("/d/sub/old2", old_txt)
        p.create("/outside", old_txt)

    with pyh2.open(img, writable=True) as vol:
        p = vol.pfs("DATA")
        assert _methods(p, "/d/old") == {(2, 3)}
        assert p.setcomp("/d", "zlib:9", recursive=True) == 4
        assert p.setcheck("/d", "sha192", recursive=True) == 4
        p.create("/d/new", new_txt)
        p.create("/d/sub/new2", new_txt)
        p.create("/d/random", rand(7, 200 * KiB))
        p.mkdir("/d/newdir")
        p.create("/d/newdir/x", new_txt)
        p.create("/outside2", new_txt)

    zlib9, sha192 = 3 | (9 << 4), 4
    with pyh2.open(img, writable=True) as vol:
        p = vol.pfs("DATA")
        for path in ("/d", "/d/sub", "/d/old", "/d/sub/old2", "/d/new", "/d/sub/new2",
                     "/d/random", "/d/newdir", "/d/newdir/x"):
            st = p.stat(path)
            assert (st.comp_algo, st.check_algo) == (zlib9, sha192), (path, st)
        for path in ("/outside", "/outside2", "/"):
            st = p.stat(path)
            assert (st.comp_algo, st.check_algo) == (2, 3), (path, st)
        # new writes below /d: zlib-compressed, sha192-checked
        for path in ("/d/new", "/d/sub/new2", "/d/newdir/x"):
            assert _methods(p, path) == {(3, 4)}, path
        assert {c for _, c in _methods(p, "/d/random")} == {4}     # incompressible: any comp
        # older files keep their blocks until rewritten; files outside are untouched
        assert _methods(p, "/d/old") == {(2, 3)}
        assert _methods(p, "/d/sub/old2") == {(2, 3)}
        assert _methods(p, "/outside") == {(2, 3)}
        assert _methods(p, "/outside2") == {(2, 3)}
        p.write("/d/old", old_txt, 0)                            # rewrite every block

    with pyh2.open(img) as vol:
        p = vol.pfs("DATA")
        assert _methods(p, "/d/old") == {(3, 4)}
        assert _methods(p, "/d/sub/old2") == {(2, 3)}
        for path, data in (("/d/old", old_txt), ("/d/sub/old2", old_txt), ("/d/new", new_txt),
                           ("/d/sub/new2", new_txt), ("/d/newdir/x", new_txt),
                           ("/d/random", rand(7, 200 * KiB)), ("/outside", old_txt),
                           ("/outside2", new_txt)):
            assert p.read(path) == data, path
        assert_fsck_clean(vol)


def test_setcomp_not_recursive(tmp_path):
    img = tmp_path / "algo1.h2"
    pyh2.newfs(img, 256 * MiB)
    with pyh2.open(img, writable=True) as vol:
        p = vol.pfs("DATA")
        p.mkdir("/d")
        p.create("/d/f", text(10 * KiB))
        assert p.setcomp("/d", "none") == 1
        assert p.setcheck("/d/f", "crc32") == 1
        assert (p.stat("/d").comp_algo, p.stat("/d").check_algo) == (0, 3)
        assert (p.stat("/d/f").comp_algo, p.stat("/d/f").check_algo) == (2, 2)
    proc = run_pyh2("stat", img, "/d", "/d/f")
    assert proc.returncode == 0, proc.stderr
    lines = [l.split() for l in proc.stdout.decode().splitlines()]
    algos = [l[1:] for l in lines if l[0] in ("comp_algo", "check_algo")]
    assert algos == [["0x0", "(none)"], ["3", "(xxhash64)"], ["0x2", "(lz4)"], ["2", "(crc32)"]]


# ------------------------------------------------------------ 6. destroy/destroy-inum

def test_destroy_and_destroy_inum(tmp_path):
    img = tmp_path / "destroy.h2"
    pyh2.newfs(img, 256 * MiB)
    victim = rand(11, 500 * KiB)
    with pyh2.open(img, writable=True) as vol:
        p = vol.pfs("DATA")
        p.mkdir("/d")
        p.create("/d/victim", victim)
        p.create("/d/keep", b"keep me\n")

    with pyh2.open(img, writable=True) as vol:
        p = vol.pfs("DATA")
        inum = p.stat("/d/victim").inum
        vbytes = data_bytes(p, "/d/victim")
        c0 = assert_fsck_clean(vol)

        p.destroy("/d/victim")
        assert sorted(p.listdir("/d")) == ["keep"]
        vol.flush()
        c1 = assert_fsck_clean(vol)
        assert c1["dirent"] == c0["dirent"] - 1
        assert c1["inode"] == c0["inode"]           # the inode is an orphan now
        assert c1["data"] == c0["data"]

        p.destroy_inum(inum)
        vol.flush()
        c2 = assert_fsck_clean(vol)
        assert c2["inode"] == c0["inode"] - 1
        assert c2["data"] < c0["data"]
        assert c2["freemap"]["leaked_bytes"] >= vbytes

        for call in (lambda: p.destroy("/d/victim"), lambda: p.destroy_inum(inum),
                     lambda: p.destroy("/nodir/x")):
            with pytest.raises(pyh2.H2Error) as ei:
                call()
            assert ei.value.errno == errno.ENOENT, ei.value

        assert vol.bulkfree() >= vbytes

    with pyh2.open(img) as vol:
        p = vol.pfs("DATA")
        assert sorted(p.listdir("/d")) == ["keep"]
        assert p.read("/d/keep") == b"keep me\n"
        assert_fsck_clean(vol, leaked_zero=True)


# ----------------------------------------------------------------- 7. bad input

def _setup_last_pfs(vol):
    vol.pfs_delete("LOCAL")


def _delete_open(vol):
    pfs = vol.pfs("DATA")
    try:
        vol.pfs_delete("DATA")
    finally:
        pfs.close()


BAD_API = {
    # name: (setup or None, call, errno, needles in the message)
    "duplicate-label": (None, lambda v: v.pfs_create("DATA"), errno.EEXIST, ["DATA"]),
    "duplicate-label-slave": (None, lambda v: v.pfs_create("LOCAL", type="SLAVE"),
                              errno.EEXIST, ["LOCAL"]),
    "delete-open-pfs": (None, _delete_open, errno.EBUSY, ["DATA"]),
    "delete-last-pfs": (_setup_last_pfs, lambda v: v.pfs_delete("DATA"), errno.EINVAL,
                        ["DATA"]),
    "delete-missing-pfs": (None, lambda v: v.pfs_delete("NOPE"), errno.ENOENT, ["NOPE"]),
    "growfs-smaller": (None, lambda v: v.growfs(32 * MiB), errno.EINVAL, []),
    "growfs-same": (None, lambda v: v.growfs(64 * MiB), errno.EINVAL, []),
    "setcomp-unknown": (None, lambda v: _on_data(v, "setcomp", "/", "lzma7"), errno.EINVAL,
                        ["lzma7"]),
    "setcomp-bad-level": (None, lambda v: _on_data(v, "setcomp", "/", "zlib:12"),
                          errno.EINVAL, ["12"]),
    "setcheck-unknown": (None, lambda v: _on_data(v, "setcheck", "/", "md5x"), errno.EINVAL,
                         ["md5x"]),
    "pfs-create-bad-comp": (None, lambda v: v.pfs_create("NEW", comp="brotli"), errno.EINVAL,
                            ["brotli"]),
    "pfs-create-bad-check": (None, lambda v: v.pfs_create("NEW", check="crc64"),
                             errno.EINVAL, ["crc64"]),
    "pfs-create-bad-type": (None, lambda v: v.pfs_create("NEW", type="PRIMARY"),
                            errno.EINVAL, ["PRIMARY"]),
    "destroy-missing": (None, lambda v: _on_data(v, "destroy", "/missing"), errno.ENOENT,
                        ["missing"]),
}


def _on_data(vol, method, *args):
    pfs = vol.pfs("DATA")
    try:
        return getattr(pfs, method)(*args)
    finally:
        pfs.close()


@pytest.mark.parametrize("case", sorted(BAD_API))
def test_bad_input_api(case, tmp_path):
    setup, call, code, needles = BAD_API[case]
    img = tmp_path / "bad.h2"
    pyh2.newfs(img, 64 * MiB)
    with pyh2.open(img, writable=True) as vol:
        p = vol.pfs("DATA")
        p.mkdir("/d")
        p.create("/d/f", text(5000))
        p.close()
        if setup:
            setup(vol)
    state, digest = pfs_state(img), sha256_file(img)

    # the failed call writes nothing ...
    vol = pyh2.open(img, writable=True)
    try:
        with pytest.raises(pyh2.H2Error) as ei:
            call(vol)
    finally:
        vol.close()
    assert ei.value.errno == code, ei.value
    for n in needles:
        assert n in str(ei.value), (n, str(ei.value))
    assert sha256_file(img) == digest

    # ... and leaves nothing behind for the next flush
    with pyh2.open(img, writable=True) as vol:
        with pytest.raises(pyh2.H2Error):
            call(vol)
    assert pfs_state(img) == state
    with pyh2.open(img) as vol:
        assert_fsck_clean(vol)


@pytest.mark.parametrize("kw,bad", [({"comp": "lzo"}, "lzo"), ({"check": "sha256"}, "sha256"),
                                    ({"comp": "zlib:5"}, "5"), ({"comp": "lz4:1"}, "1")])
def test_bad_input_newfs(kw, bad, tmp_path):
    img = tmp_path / "nf.h2"
    with pytest.raises(pyh2.H2Error) as ei:
        pyh2.newfs(img, 64 * MiB, **kw)
    assert ei.value.errno == errno.EINVAL and bad in str(ei.value)
    assert not img.exists()
    # over an existing image: untouched
    pyh2.newfs(img, 64 * MiB)
    digest = sha256_file(img)
    with pytest.raises(pyh2.H2Error):
        pyh2.newfs(img, 128 * MiB, **kw)
    assert sha256_file(img) == digest


BAD_CLI = [
    (("pfs", "create", "{img}", "DATA"), ["DATA"]),
    (("pfs", "delete", "{img}", "NOPE"), ["NOPE"]),
    (("growfs", "{img}", "--size", "32M"), []),
    (("setcomp", "lzma7", "{img}", "/"), ["lzma7"]),
    (("setcomp", "-r", "zlib:42", "{img}:DATA", "/"), ["42"]),
    (("setcheck", "md5x", "{img}:DATA", "/"), ["md5x"]),
    (("pfs", "create", "{img}", "NEW", "--comp", "brotli"), ["brotli"]),
    (("pfs", "create", "{img}", "NEW", "--type", "PRIMARY"), ["PRIMARY"]),
    (("newfs", "{img}", "--size", "128M", "--check", "sha256"), ["sha256"]),
    (("destroy", "{img}", "/missing"), ["missing"]),
    (("snapshot", "{img}:NOPE"), ["NOPE"]),
]


def test_bad_input_cli(tmp_path):
    img = tmp_path / "badcli.h2"
    pyh2.newfs(img, 64 * MiB)
    with pyh2.open(img, writable=True) as vol:
        vol.pfs("DATA").create("/f", b"content")
    digest = sha256_file(img)
    for args, needles in BAD_CLI:
        proc = run_pyh2(*(a.format(img=img) for a in args))
        assert_clean_failure(proc, *needles)
        assert sha256_file(img) == digest, f"{args} changed the image"


# ----------------------------------------------------------------------- 8. the CLI

def test_cli_volhdr_freemap(ref_image):
    img = ref_image("basic")
    with pyh2.open(img) as vol:
        best = vol.best_zone
    proc = run_pyh2("volhdr", img)
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert re.search(rf"(?m)^Volume header {best}: mirror_tid=[0-9a-f]{{16}} \(in use\)$", out), out
    assert re.search(r"(?m)^    volu_size\s+0x0000000080000000$", out), out
    assert "(OK)" in out and "(BAD)" not in out, out

    proc = run_pyh2("freemap", img)
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert re.search(r"(?m)^\s*freemap_leaf [0-9a-f]{16} key 0x[0-9a-f]+/\d+", out), out


def test_cli_admin_round_trip(tmp_path):
    img = tmp_path / "cli.h2"

    def ok(*args):
        proc = run_pyh2(*args)
        assert proc.returncode == 0, (args, proc.stderr.decode())
        assert "Traceback" not in proc.stderr.decode()
        return proc.stdout.decode()

    ok("newfs", img, "--size", "256M")
    ok("mkdir", f"{img}:DATA", "/d")
    with pyh2.open(img, writable=True) as vol:
        p = vol.pfs("DATA")
        p.create("/d/a", text(100 * KiB, "a"))
        p.create("/d/victim", rand(21, 300 * KiB))

    label = ok("snapshot", img).strip()
    assert re.fullmatch(r"DATA\.\d{8}\.\d{6}", label), label
    ok("snapshot", f"{img}:DATA", "named")
    clid = "12345678-9abc-4def-8123-456789abcdef"
    ok("pfs", "create", img, "SL", "--type", "SLAVE", "--clid", clid)
    listing = ok("pfs", "list", img)
    rows = {ln.split()[-1]: ln.split() for ln in listing.splitlines() if ln.strip()}
    assert rows[label][0] == "SNAPSHOT" and rows["named"][0] == "SNAPSHOT"
    assert rows["SL"][:2] == ["SLAVE", clid]
    assert rows["DATA"][0] == "MASTER" and rows["LOCAL"][0] == "MASTER"
    with pyh2.open(img) as vol:
        infos = {p.label: p for p in vol.pfs_list()}
        assert infos["SL"].type == "SLAVE" and infos["SL"].clid == clid
        assert vol.pfs(label).read("/d/a") == text(100 * KiB, "a")

    ok("pfs", "delete", img, "named")
    ok("pfs", "delete", img, label)
    ok("setcomp", "-r", "zlib:6", f"{img}:DATA", "/d")
    ok("setcheck", "-r", "sha192", img, "/d")
    with pyh2.open(img) as vol:
        p = vol.pfs("DATA")
        assert {x.label for x in vol.pfs_list()} == {"DATA", "LOCAL", "SL"}
        assert (p.stat("/d/a").comp_algo, p.stat("/d/a").check_algo) == (3 | 6 << 4, 4)
        inum = p.stat("/d/victim").inum

    ok("destroy", img, "/d/victim")
    ok("destroy-inum", f"{img}:DATA", hex(inum))
    proc = run_pyh2("destroy-inum", f"{img}:DATA", str(inum))
    assert_clean_failure(proc)
    out = ok("bulkfree", img)
    m = re.search(r"freed (\d+) bytes", out)
    assert m and int(m.group(1)) >= 300 * KiB, out
    out = ok("growfs", img, "--size", "512M")
    assert "268435456" in out and "536870912" in out, out
    with pyh2.open(img) as vol:
        p = vol.pfs("DATA")
        assert p.listdir("/d") == ["a"]
        assert p.read("/d/a") == text(100 * KiB, "a")
        assert vol.volume_headers()[vol.best_zone]["volu_size"] == 512 * MiB
        assert_fsck_clean(vol, leaked_zero=True)
    ok("fsck", img)
