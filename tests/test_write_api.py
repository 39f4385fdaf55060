"""The write path through the Python API, against in-memory models: newfs, every kind of
object, every compression and check code, in-place modification, rename/unlink semantics,
large directories, the flush protocol (crash safety, header rotation) and threads."""
import errno
import random
import subprocess
import threading

import pytest

import pyh2
from pyh2 import refimages
from pyh2.torture.model import Mirror, Model, watchdog
from pyh2.volume import CHECK_ALGOS, COMP_ALGOS

MiB = 1 << 20
BLOCK = 65536


@pytest.fixture(autouse=True)
def _no_hang():
    """A deadlock in the core fails the test (its worker dies) instead of hanging the run."""
    cancel = watchdog(40)
    yield
    cancel()


# --------------------------------------------------------------------------- helpers

def new_image(tmp_path, size=256 * MiB, name="x.h2", **kw):
    img = tmp_path / name
    pyh2.newfs(img, size, **kw)
    return img


def assert_fsck_clean(vol):
    r = vol.fsck()
    assert r["errors"] == [], r["errors"][:20]
    assert r["freemap"]["unmarked"] == 0 and r["freemap"]["overlaps"] == 0, r["freemap"]
    return r


def short(diffs, n=30):
    return "\n".join(d if len(d) < 300 else d[:300] + "..." for d in diffs[:n])


def assert_same(expected, pfs, ignore=()):
    """The PFS's tree equals the manifest-shaped expected tree (paths in ignore skipped)."""
    actual = [e for e in refimages.tree_from_volume(pfs) if e["path"] not in ignore]
    diffs = refimages.compare_trees(expected, actual)
    assert not diffs, short(diffs)


def assert_tree(pfs, model):
    assert_same(model.manifest(), pfs)


def pin_mtimes(m: Mirror, mtime_us=1_600_000_000_000_000):
    """Give every entry whose mtime the filesystem set an explicit one (deepest first, so
    setting a directory's time is not undone), making a later comparison exact."""
    for path, node in sorted(m.model.walk(), key=lambda pn: -pn[0].count("/")):
        if not isinstance(node.mtime_us, int):
            m.utime(path, mtime_us)


def text_bytes(n, seed=0):
    """Compressible text of exactly n bytes."""
    words = [b"alpha", b"beta", b"gamma", b"delta", b"hammer2", b"chain", b"flush"]
    rnd = random.Random(seed)
    out = bytearray()
    while len(out) < n:
        out += b" ".join(rnd.choice(words) for _ in range(8)) + b"\n"
    return bytes(out[:n])


def rand_bytes(n, seed=0):
    return random.Random(seed).randbytes(n)


def data_blocks(pfs, path):
    return [b for b in pfs.blocks(path) if b["type"] == "data"]


def copy_image(src, dst):
    subprocess.run(["cp", "--sparse=always", str(src), str(dst)], check=True)


# --------------------------------------------------------------------------- newfs

@pytest.mark.parametrize("size,nheaders", [(256 * MiB, 1), (5 << 30, 3)])
def test_newfs_then_open(tmp_path, size, nheaders):
    img = new_image(tmp_path, size)
    with pyh2.open(img) as vol:
        pfs_list = vol.pfs_list()
        assert sorted((p.label, p.type) for p in pfs_list) == [("DATA", "MASTER"),
                                                               ("LOCAL", "MASTER")]
        assert len({p.clid for p in pfs_list}) == 2
        headers = vol.volume_headers()
        assert len(headers) == nheaders
        assert all(h["valid"] for h in headers), headers
        assert [h["best"] for h in headers].count(True) == 1
        assert all(h["volu_size"] == size for h in headers)
        assert vol.warnings == []
        for label in ("DATA", "LOCAL"):
            pfs = vol.pfs(label)
            assert pfs.listdir("/") == []
            assert pfs.stat("/").type == "dir"
        assert_fsck_clean(vol)


def test_newfs_algorithms_are_inherited(tmp_path):
    img = new_image(tmp_path, comp="zlib:9", check="sha192")
    with pyh2.open(img, writable=True) as vol:
        pfs = vol.pfs("DATA")
        pfs.mkdir("/d")
        pfs.create("/d/f", text_bytes(100_000))
    with pyh2.open(img) as vol:
        pfs = vol.pfs("DATA")
        for p in ("/", "/d", "/d/f"):
            st = pfs.stat(p)
            assert (st.comp_algo & 0x0F, st.check_algo) == (COMP_ALGOS["zlib"], 4), p
        assert {b["check"] for b in data_blocks(pfs, "/d/f")} == {4}


# --------------------------------------------------------------------------- model round trip

SIZES = [0, 1, 511, 512, 513, 1023, 1024, 65535, 65536, 65537, 200_000, 1_000_000]
T_EPOCH, T_2038, T_2100 = 0, (2**31 + 5) * 10**6, 4_102_444_800 * 10**6


def build_tree(m: Mirror):
    """A tree exercising every kind of object; returns {path: expected Stat.embedded}."""
    embedded = {}
    m.mkdir("/sizes", 0o755)
    for n in SIZES:
        m.create(f"/sizes/rand-{n:07d}", rand_bytes(n, n), mtime_us=T_2038 + n)
        m.create(f"/sizes/text-{n:07d}", text_bytes(n, n), 0o600, mtime_us=1_234_567_000_000)
        embedded[f"/sizes/rand-{n:07d}"] = embedded[f"/sizes/text-{n:07d}"] = n <= 512
    path = ""
    for depth in range(7):
        path += f"/level{depth}"
        m.mkdir(path, 0o750 if depth % 2 else 0o755)
        m.create(f"{path}/leaf{depth}.txt", text_bytes(100 + 777 * depth, depth))
    m.mkdir("/links")
    for n in (10, 511, 512, 513, 1000):
        target = ("t" * (n - 4) + "/end")[:n]
        m.symlink(target, f"/links/sym{n}", mtime_us=T_2100)
        embedded[f"/links/sym{n}"] = n <= 512
    m.symlink("does/not/exist", "/links/dangling")
    m.mkfifo("/links/fifo", 0o600, mtime_us=T_EPOCH)
    m.mkfifo("/fifo2")
    m.create("/links/hard-a", rand_bytes(5000, 99), mtime_us=T_2038)
    m.mkdir("/links/sub")
    m.link("/links/hard-a", "/links/sub/hard-b")
    m.link("/links/hard-a", "/hard-c")
    m.mkdir("/modes", 0o755)
    m.create("/modes/setuid", b"x", 0o4755)
    m.create("/modes/setgid", b"y", 0o2711)
    m.create("/modes/none", b"", 0o000)
    m.create("/modes/readonly", b"r", 0o444)
    m.mkdir("/modes/sticky", 0o1777)
    m.mkdir("/modes/private", 0o700)
    m.mkdir("/empty-dir", 0o755, mtime_us=T_2100)
    m.mkdir("/times")
    for name, t in (("epoch", T_EPOCH), ("y2038", T_2038), ("y2100", T_2100)):
        m.create(f"/times/{name}", name.encode(), mtime_us=t)
    m.utime("/times", T_2038 + 1)
    m.chown("/modes/setuid", 1001, 1002)
    m.chmod("/modes/readonly", 0o440)
    # explicit directory times last (creating entries set them to now)
    m.utime("/links/sub", T_2038)
    m.utime("/level0/level1", T_EPOCH)
    return embedded


def test_model_round_trip(tmp_path):
    img = new_image(tmp_path)
    vol = pyh2.open(img, writable=True)
    m = Mirror(vol.pfs("DATA"), Model())
    embedded = build_tree(m)
    assert_tree(m.pfs, m.model)                 # before any flush: the in-memory chains
    vol.flush()
    assert_tree(m.pfs, m.model)
    vol.close()
    with pyh2.open(img) as vol:
        pfs = vol.pfs("DATA")
        assert_tree(pfs, m.model)
        for p, emb in embedded.items():
            assert pfs.stat(p).embedded == emb, p
        st = pfs.stat("/modes/setuid")
        assert (st.uid, st.gid, st.mode) == (1001, 1002, 0o4755)
        assert pfs.stat("/links/sub/hard-b").nlinks == 3
        assert pfs.stat("/links/sub/hard-b").inum == pfs.stat("/hard-c").inum
        assert pfs.stat("/links/fifo").st_mode == 0o010600
        assert pfs.readlink("/links/sym1000") == m.model.node("/links/sym1000").target
        assert pfs.stat("/level0/level1").iparent == pfs.stat("/level0").inum
        assert_fsck_clean(vol)


# --------------------------------------------------------------------------- algorithms

@pytest.mark.parametrize("check", ["none", "crc32", "xxhash64", "sha192"])
@pytest.mark.parametrize("comp", ["none", "autozero", "lz4", "zlib"])
def test_compression_and_check(tmp_path, comp, check):
    img = new_image(tmp_path, comp=comp, check=check)
    files = {
        "/text": text_bytes(300_000, 1),
        "/random": rand_bytes(200_000, 2),
        "/zeros": bytes(4 * BLOCK),
        "/mixed": rand_bytes(BLOCK, 3) + bytes(2 * BLOCK) + rand_bytes(BLOCK, 4),
        "/small": text_bytes(300, 5),
    }
    with pyh2.open(img, writable=True) as vol:
        pfs = vol.pfs("DATA")
        for p, data in files.items():
            pfs.create(p, data)
    with pyh2.open(img) as vol:
        pfs = vol.pfs("DATA")
        for p, data in files.items():
            assert pfs.read(p) == data, p
            st = pfs.stat(p)
            assert st.comp_algo & 0x0F == COMP_ALGOS[comp], p
            assert st.check_algo == CHECK_ALGOS[check], p
            assert {b["check"] for b in data_blocks(pfs, p)} <= {CHECK_ALGOS[check]}, p
        assert pfs.stat("/small").embedded and data_blocks(pfs, "/small") == []
        text_media = sum(b["bytes"] for b in data_blocks(pfs, "/text"))
        if comp in ("lz4", "zlib"):
            assert text_media <= len(files["/text"]) * 3 // 4, text_media
        else:
            assert text_media >= len(files["/text"])
        assert sum(b["bytes"] for b in data_blocks(pfs, "/random")) >= 200_000
        if comp != "none" and check != "none":
            assert data_blocks(pfs, "/zeros") == []
            assert sorted(b["key"] for b in data_blocks(pfs, "/mixed")) == [0, 3 * BLOCK]
        assert_fsck_clean(vol)


# --------------------------------------------------------------------------- modify in place

def test_overwrite_extend_truncate(tmp_path):
    img = new_image(tmp_path)
    model = {}
    vol = pyh2.open(img, writable=True)
    pfs = vol.pfs("DATA")

    def check(vpfs):
        for p, buf in model.items():
            assert vpfs.stat(p).size == len(buf), p
            got = vpfs.read(p)
            assert got == bytes(buf), (p, len(got), len(buf),
                                       next((i for i, (a, b) in enumerate(zip(got, buf))
                                             if a != b), None))

    def write(p, data, off):
        pfs.write(p, data, off)
        buf = model[p]
        if off > len(buf):
            buf.extend(bytes(off - len(buf)))
        buf[off:off + len(data)] = data
        check(pfs)

    def truncate(p, size):
        pfs.truncate(p, size)
        buf = model[p]
        del buf[size:]
        buf.extend(bytes(size - len(buf)))
        check(pfs)

    model["/big"] = bytearray(rand_bytes(1_000_000, 1))
    pfs.create("/big", bytes(model["/big"]))
    check(pfs)
    write("/big", rand_bytes(100_000, 2), 300_000)          # across the 327680 boundary
    write("/big", b"!", 0)
    write("/big", b"tail", len(model["/big"]) - 2)           # extends by 2 bytes
    write("/big", b"after a hole", 2_500_000)                 # a hole of ~1.5 MB
    hole = range(-(-1_000_002 // BLOCK) * BLOCK, 2_500_000 // BLOCK * BLOCK)
    keys = [b["key"] for b in data_blocks(pfs, "/big")]
    assert not [k for k in keys if k in hole], keys           # the hole stores nothing
    vol.flush()
    check(pfs)
    keys = [b["key"] for b in data_blocks(pfs, "/big")]
    assert not [k for k in keys if k in hole], keys
    truncate("/big", 123_457)                                 # inside a block
    truncate("/big", 400_000)                                 # back up: zeros after 123457
    assert pfs.read("/big", 123_457, 1000) == bytes(1000)
    truncate("/big", 131_072)                                 # on a block boundary
    truncate("/big", 0)
    assert pfs.read("/big") == b""
    write("/big", b"again", 70_000)

    model["/small"] = bytearray(b"s" * 500)
    pfs.create("/small", b"s" * 500)
    assert pfs.stat("/small").embedded
    write("/small", b"0123456789ab", 500)                     # exactly 512: still embedded
    assert pfs.stat("/small").embedded
    write("/small", b"X", 512)                                # 513: out of the inode
    assert not pfs.stat("/small").embedded
    write("/small", b"mid", 100)
    write("/small", rand_bytes(100_000, 3), 50)

    model["/short-tail"] = bytearray(rand_bytes(1000, 4))    # a short last block, grown
    pfs.create("/short-tail", bytes(model["/short-tail"]))
    write("/short-tail", rand_bytes(70_000, 5), 900)
    truncate("/short-tail", 65_537)
    write("/short-tail", b"end", 65_537)

    model["/emb"] = bytearray(b"e" * 100)
    pfs.create("/emb", b"e" * 100)
    truncate("/emb", 50)
    truncate("/emb", 400)                                     # zeros after 50, in the inode
    truncate("/emb", 5000)                                    # past the inode
    write("/emb", b"z", 4999)

    vol.flush()
    check(pfs)
    vol.close()
    with pyh2.open(img) as vol:
        check(vol.pfs("DATA"))
        assert_fsck_clean(vol)


# --------------------------------------------------------------------------- rename / unlink

def test_rename(tmp_path):
    img = new_image(tmp_path)
    vol = pyh2.open(img, writable=True)
    m = Mirror(vol.pfs("DATA"), Model())
    pfs = m.pfs
    m.mkdir("/d")
    m.mkdir("/e")
    m.create("/d/a", b"a data")
    inum_a = pfs.stat("/d/a").inum

    m.rename("/d/a", "/d/b")                                  # within a directory
    assert pfs.stat("/d/b").inum == inum_a and "a" not in pfs.listdir("/d")
    m.rename("/d/b", "/e/b")                                  # across directories
    assert pfs.stat("/e/b").inum == inum_a and pfs.listdir("/d") == []

    m.create("/d/x", rand_bytes(100_000, 1))                 # over an existing file
    old_x = pfs.stat("/d/x").inum
    m.rename("/e/b", "/d/x")
    assert pfs.stat("/d/x").inum == inum_a and pfs.read("/d/x") == b"a data"
    with pytest.raises(pyh2.H2Error) as ei:
        pfs._core.inode(old_x)
    assert ei.value.errno == errno.ENOENT                     # the replaced inode is gone

    m.create("/d/h1", b"hard")                                # over a hardlinked target
    m.link("/d/h1", "/e/h2")
    assert pfs.stat("/e/h2").nlinks == 2
    m.create("/d/y", b"y data")
    m.rename("/d/y", "/d/h1")
    assert pfs.stat("/e/h2").nlinks == 1 and pfs.read("/e/h2") == b"hard"
    assert pfs.read("/d/h1") == b"y data"

    with pytest.raises(pyh2.H2Error) as ei:                   # noreplace
        pfs.rename("/d/x", "/e/h2", noreplace=True)
    assert ei.value.errno == errno.EEXIST
    assert pfs.read("/d/x") == b"a data" and pfs.read("/e/h2") == b"hard"
    m.rename("/d/x", "/e/new", noreplace=True)

    m.mkdir("/d/sub")                                         # directories
    m.mkdir("/d/sub/deeper")
    m.create("/d/sub/deeper/f", b"f")
    for bad in ("/d/sub/deeper/moved", "/d/sub/moved", "/d/sub"):
        with pytest.raises(pyh2.H2Error) as ei:
            pfs.rename("/d", bad)
        assert ei.value.errno == errno.EINVAL, bad
    m.rename("/d/sub", "/e/sub")
    assert pfs.stat("/e/sub").iparent == pfs.stat("/e").inum
    assert pfs.stat("/e/sub/deeper").iparent == pfs.stat("/e/sub").inum
    assert pfs.read("/e/sub/deeper/f") == b"f"
    m.rename("/e/sub", "/e/sub2")
    assert pfs.stat("/e/sub2").iparent == pfs.stat("/e").inum
    assert_tree(pfs, m.model)
    vol.flush()
    vol.close()
    with pyh2.open(img) as vol:
        pfs = vol.pfs("DATA")
        assert_tree(pfs, m.model)
        assert pfs.stat("/e/sub2").iparent == pfs.stat("/e").inum
        assert pfs.stat("/e/h2").nlinks == 1
        assert_fsck_clean(vol)


def test_rename_posix_type_rules(tmp_path):
    """rename(2): a directory may replace only an empty directory, a file only a non-directory."""
    img = new_image(tmp_path)
    with pyh2.open(img, writable=True) as vol:
        m = Mirror(vol.pfs("DATA"), Model())
        m.mkdir("/full")
        m.create("/full/f", b"f")
        m.mkdir("/dir")
        m.mkdir("/empty")
        m.create("/file", b"file")
        cases = [("/file", "/dir", errno.EISDIR), ("/dir", "/file", errno.ENOTDIR),
                 ("/dir", "/full", errno.ENOTEMPTY)]
        for src, dst, err in cases:
            with pytest.raises(pyh2.H2Error) as ei:
                m.pfs.rename(src, dst)
            assert ei.value.errno == err, (src, dst, ei.value)
        m.rename("/dir", "/empty")                             # over an empty directory
        assert_tree(m.pfs, m.model)
    with pyh2.open(img) as vol:
        assert_tree(vol.pfs("DATA"), m.model)
        assert_fsck_clean(vol)


def test_unlink_and_rmdir(tmp_path):
    img = new_image(tmp_path)
    vol = pyh2.open(img, writable=True)
    m = Mirror(vol.pfs("DATA"), Model())
    pfs = m.pfs
    data = rand_bytes(300_000, 7)
    m.mkdir("/d")
    m.create("/d/f", data)
    m.link("/d/f", "/g")
    m.link("/d/f", "/h")
    inum = pfs.stat("/g").inum
    assert pfs.stat("/d/f").nlinks == 3
    m.unlink("/d/f")
    assert pfs.stat("/g").nlinks == 2 and pfs.read("/h") == data
    m.unlink("/g")
    assert pfs.stat("/h").nlinks == 1 and pfs.read("/h") == data
    vol.flush()
    assert pfs.read("/h") == data
    m.unlink("/h")                                            # the last link: inode gone
    with pytest.raises(pyh2.H2Error) as ei:
        pfs._core.inode(inum)
    assert ei.value.errno == errno.ENOENT

    m.create("/d/keep", b"k")
    for call, path, err in ((pfs.rmdir, "/d", errno.ENOTEMPTY),
                            (pfs.unlink, "/d", errno.EISDIR),
                            (pfs.rmdir, "/d/keep", errno.ENOTDIR)):
        with pytest.raises(pyh2.H2Error) as ei:
            call(path)
        assert ei.value.errno == err, (call.__name__, path)
        assert path in str(ei.value)
    m.unlink("/d/keep")
    m.rmdir("/d")
    assert pfs.listdir("/") == []
    m.mkdir("/d")                                             # the name is reusable
    m.symlink("x", "/d/s")
    m.mkfifo("/d/p")
    m.unlink("/d/s")
    m.unlink("/d/p")
    assert_tree(pfs, m.model)
    vol.flush()
    vol.close()
    with pyh2.open(img) as vol:
        assert_tree(vol.pfs("DATA"), m.model)
        r = assert_fsck_clean(vol)
        assert r["data"] == 0                                 # /d/f's blocks unreferenced


# --------------------------------------------------------------------------- big directories

def test_many_files(tmp_path):
    img = new_image(tmp_path)
    files = {}
    for i in range(3000):
        files[f"/flat/file-{i:05d}"] = f"{i}\n".encode() * (i % 200)
    for d in range(50):
        for i in range(40):
            files[f"/d{d:02d}/n{i}"] = f"{d}/{i}".encode() * (i % 3)

    def verify(pfs):
        want = {}
        for p in files:
            head, _, name = p.rpartition("/")
            want.setdefault(head, []).append(name)
        for head, names in want.items():
            got = pfs.listdir(head)
            assert len(got) == len(names) and sorted(got) == sorted(names), head
        assert sorted(pfs.listdir("/")) == sorted(h[1:] for h in want)
        for p, data in files.items():
            assert pfs.read(p) == data, p

    vol = pyh2.open(img, writable=True)
    pfs = vol.pfs("DATA")
    pfs.mkdir("/flat")
    for d in range(50):
        pfs.mkdir(f"/d{d:02d}")
    for p, data in files.items():
        pfs.create(p, data)
    verify(pfs)
    vol.flush()
    verify(pfs)
    for i in range(0, 3000, 3):                               # delete a third again
        pfs.unlink(f"/flat/file-{i:05d}")
        del files[f"/flat/file-{i:05d}"]
    verify(pfs)
    vol.flush()
    vol.close()
    with pyh2.open(img) as vol:
        verify(vol.pfs("DATA"))
        r = assert_fsck_clean(vol)
        assert r["indirect"] > 0                              # the directories were split


# --------------------------------------------------------------------------- flush protocol

def build_state(m: Mirror, tag: str):
    m.mkdir(f"/{tag}")
    m.create(f"/{tag}/big", rand_bytes(500_000, sum(tag.encode())))
    m.create(f"/{tag}/small", tag.encode() * 10)
    m.symlink(f"target-{tag}", f"/{tag}/link")
    m.link(f"/{tag}/small", f"/{tag}/small-link")
    pin_mtimes(m)


def test_unflushed_changes_are_discarded(tmp_path):
    img = new_image(tmp_path)
    vol = pyh2.open(img, writable=True)
    m = Mirror(vol.pfs("DATA"), Model())
    build_state(m, "a")
    vol.flush()
    expected = m.model.manifest()
    pfs = m.pfs
    pfs.write("/a/big", b"changed", 1000)
    pfs.truncate("/a/big", 10)
    pfs.create("/new", rand_bytes(200_000, 1))
    pfs.unlink("/a/small-link")
    pfs.rename("/a/link", "/moved")
    pfs.chmod("/a/small", 0o600)
    pfs.mkdir("/a/newdir")
    vol.close()                                               # no flush
    with pyh2.open(img) as vol:
        assert_same(expected, vol.pfs("DATA"))
        assert_fsck_clean(vol)


def test_context_manager_flushes_or_discards(tmp_path):
    img = new_image(tmp_path)
    with pyh2.open(img, writable=True) as vol:
        vol.pfs("DATA").create("/kept", b"kept")
    with pytest.raises(RuntimeError):
        with pyh2.open(img, writable=True) as vol:
            vol.pfs("DATA").create("/discarded", b"x" * 100_000)
            vol.pfs("DATA").unlink("/kept")
            raise RuntimeError("boom")
    with pyh2.open(img) as vol:
        pfs = vol.pfs("DATA")
        assert pfs.listdir("/") == ["kept"] and pfs.read("/kept") == b"kept"
        assert_fsck_clean(vol)


def test_copy_between_flushes(tmp_path):
    img = new_image(tmp_path)
    vol = pyh2.open(img, writable=True)
    m = Mirror(vol.pfs("DATA"), Model())
    build_state(m, "a")
    vol.flush()
    state_a = m.model.manifest()
    build_state(m, "b")
    m.write("/a/big", b"overwritten", 4096)
    m.unlink("/a/small-link")
    pin_mtimes(m)
    copy_image(img, tmp_path / "pending.h2")                 # B pending, not flushed
    vol.flush()
    state_b = m.model.manifest()
    copy_image(img, tmp_path / "flushed.h2")
    vol.close()
    for path, state in ((tmp_path / "pending.h2", state_a), (tmp_path / "flushed.h2", state_b),
                        (img, state_b)):
        with pyh2.open(path) as vol:
            assert_same(state, vol.pfs("DATA"))
            assert_fsck_clean(vol)


def test_header_rotation(tmp_path):
    img = new_image(tmp_path, 5 << 30)
    zones, tids = [], []
    for i in range(3):
        with pyh2.open(img, writable=True) as vol:
            vol.pfs("DATA").create(f"/f{i}", b"x" * i)
        with pyh2.open(img) as vol:
            zones.append(vol.best_zone)
            tids.append(next(h["mirror_tid"] for h in vol.volume_headers() if h["best"]))
            assert sorted(vol.pfs("DATA").listdir("/")) == [f"f{j}" for j in range(i + 1)]
    assert sorted(zones) == [0, 1, 2], zones                  # every copy used in turn
    assert tids == sorted(tids) and len(set(tids)) == 3, tids


def test_corrupt_newest_header_falls_back(tmp_path):
    img = new_image(tmp_path, (4 << 30) + BLOCK)
    vol = pyh2.open(img, writable=True)
    m = Mirror(vol.pfs("DATA"), Model())
    build_state(m, "a")
    vol.flush()
    vol.close()
    state_a = m.model.manifest()
    with pyh2.open(img) as vol:
        zone_a = vol.best_zone
        assert len([h for h in vol.volume_headers() if h["valid"]]) >= 2
    vol = pyh2.open(img, writable=True)
    m.pfs = vol.pfs("DATA")
    build_state(m, "b")
    m.write("/a/big", b"B" * 70_000, 10)
    m.unlink("/a/small")
    pin_mtimes(m)
    vol.flush()
    vol.close()
    with pyh2.open(img) as vol:
        zone_b = vol.best_zone
        assert zone_b != zone_a
        assert_tree(vol.pfs("DATA"), m.model)
    with open(img, "r+b") as f:                               # damage the newest header
        f.seek((zone_b << 31) + 16)
        f.write(b"\xa5" * 64)
    with pyh2.open(img) as vol:
        assert vol.best_zone == zone_a
        assert vol.warnings, "no warning about the damaged header"
        assert not vol.volume_headers()[zone_b]["valid"]
        assert_same(state_a, vol.pfs("DATA"))
        assert_fsck_clean(vol)
    with pyh2.open(img, writable=True) as vol:                # and it goes on from there
        vol.pfs("DATA").create("/after", b"after")
    with pyh2.open(img) as vol:
        pfs = vol.pfs("DATA")
        assert sorted(pfs.listdir("/")) == ["a", "after"]
        assert_same(state_a, pfs, ignore={"/after"})
        assert pfs.read("/after") == b"after"
        assert_fsck_clean(vol)


# --------------------------------------------------------------------------- threads

def test_threads_write_through_one_volume(tmp_path):
    img = new_image(tmp_path)
    vol = pyh2.open(img, writable=True)
    pfs = vol.pfs("DATA")
    pfs.mkdir("/shared")
    models, errors = [{} for _ in range(4)], []

    def worker(t):
        try:
            rnd = random.Random(t)
            model = models[t]
            pfs.mkdir(f"/t{t}")
            for i in range(60):
                data = rnd.randbytes(rnd.choice([0, 100, 600, 70_000, 150_000]))
                pfs.create(f"/t{t}/f{i}", data)
                model[f"/t{t}/f{i}"] = bytearray(data)
                pfs.create(f"/shared/t{t}-{i}", data[:200])
                model[f"/shared/t{t}-{i}"] = bytearray(data[:200])
                if i % 7 == 3:
                    pfs.write(f"/t{t}/f{i}", b"patch", 3)
                    buf = model[f"/t{t}/f{i}"]
                    buf.extend(bytes(max(0, 8 - len(buf))))
                    buf[3:8] = b"patch"
                if i % 11 == 5:
                    pfs.unlink(f"/shared/t{t}-{i}")
                    del model[f"/shared/t{t}-{i}"]
                if i % 20 == 19:
                    vol.flush()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append((t, e))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors

    def verify(p):
        everything = {k: v for mdl in models for k, v in mdl.items()}
        assert sorted(p.listdir("/shared")) == sorted(k[8:] for k in everything
                                                      if k.startswith("/shared/"))
        for t in range(4):
            assert len(p.listdir(f"/t{t}")) == 60
        for path, data in everything.items():
            assert p.read(path) == bytes(data), path

    verify(pfs)
    vol.flush()
    vol.close()
    with pyh2.open(img) as vol:
        verify(vol.pfs("DATA"))
        assert_fsck_clean(vol)
