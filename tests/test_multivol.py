"""Multi-volume filesystems: the reference set multivol-3 (three volumes, 1 + 1 + 2 GiB,
made by the real newfs_hammer2) opened, checked and filled past volume 0; sets made by
pyh2's newfs; a wrong set refused naming the volume."""
import errno
import hashlib
import os
import re
import subprocess

import pytest

import pyh2
from pyh2.testing.cli import assert_clean_failure, run_pyh2
from pyh2 import refimages

MiB, GiB = 1 << 20, 1 << 30
REF = "multivol/multivol-3"


def _header_fields(block):
    """A volhdr dump's numeric header fields (`    name   0x... | decimal`, indented by
    four: deeper lines belong to the blocksets' inodes): field -> int."""
    return {k: int(v, 16) if v.startswith("0x") else int(v)
            for k, v in re.findall(r"(?m)^ {4}(\w+(?:\[\d\])?)\s+(0x[0-9a-f]+|\d+)\b", block)}


def _ref_header(name):
    """What the real volhdr printed for volume `name`: field -> int."""
    text = (refimages.reference_dir() / f"{REF}.volhdr.txt").read_text()
    return _header_fields(text.split(f"multivol-3.{name}\n", 1)[1].split("----", 1)[0])


@pytest.fixture
def multivol3(tmp_path):
    """A writable sparse copy of the three volumes."""
    out = []
    for i in range(3):
        dst = tmp_path / f"vol{i}"
        subprocess.run(["cp", "--sparse=always",
                        str(refimages.decompressed(f"{REF}.vol{i}")), str(dst)], check=True)
        os.chmod(dst, 0o644)
        out.append(str(dst))
    return out


def test_open_reference_set(multivol3):
    real = _ref_header("vol0")
    with pyh2.open(":".join(reversed(multivol3))) as vol:     # any order
        assert vol.size == real["total_size"] == 4 * GiB
        assert sorted(p.label for p in vol.pfs_list()) == ["DATA", "LOCAL"]
        best = vol.volume_headers()[vol.best_zone]
        assert best["allocator_size"] == real["allocator_size"]
        assert best["volu_size"] == real["volu_size"]
        res = vol.fsck()
        assert not res["errors"] and res["total"] == 3, res


def test_volhdr_dumps_every_volume_as_the_real_tool(multivol3):
    """Each volume's own header copy, field for field what the real volhdr printed,
    sector CRCs included (stored and recomputed)."""
    proc = run_pyh2("volhdr", ":".join(multivol3))
    assert proc.returncode == 0, proc.stderr.decode()
    blocks = proc.stdout.decode().split("-" * 45)
    assert len(blocks) == 3, blocks
    names = {"magic", "boot_beg", "boot_end", "aux_beg", "aux_end", "volu_size", "version",
             "flags", "copyid", "freemap_vers", "peer_type", "volu_id", "nvolumes",
             "allocator_size", "allocator_free", "allocator_beg", "mirror_tid", "freemap_tid",
             "bulkfree_tid", "total_size", "icrc_sects[6]", "icrc_sects[7]", "icrc_volhdr",
             "volu_loff[0]", "volu_loff[1]", "volu_loff[2]"}
    for i, block in enumerate(blocks):
        real, ours = _ref_header(f"vol{i}"), _header_fields(block)
        assert block.strip().startswith(multivol3[i]), block
        assert names <= real.keys() and names <= ours.keys(), names - ours.keys()
        assert {k: ours[k] for k in names} == {k: real[k] for k in names}, i
        assert "324883b3-319e-6240-9625-38ff177dfc5f" in block and "(BAD)" not in block
    assert "(in use)" in blocks[0] and "(in use)" not in blocks[1] + blocks[2]


@pytest.mark.parametrize("pick,needle", [((0,), "volume 0 of a 3-volume"),
                                         ((1,), "volume 1 of a 3-volume"),
                                         ((0, 1), "volume 2 of 3 is missing"),
                                         ((0, 0, 2), "both volume 0"),
                                         ((0, 1, 2, "foreign"), "another filesystem")])
def test_wrong_set_refused(multivol3, tmp_path, pick, needle):
    foreign = tmp_path / "foreign"
    pyh2.newfs([str(tmp_path / "f0"), str(foreign)], [GiB, 64 * MiB])
    paths = [str(foreign) if p == "foreign" else multivol3[p] for p in pick]
    with pytest.raises(pyh2.H2Error) as ei:
        pyh2.open(paths)
    assert needle in str(ei.value), str(ei.value)
    assert_clean_failure(run_pyh2("info", ":".join(paths)), needle)
    # the volumes of one filesystem are no cluster's nodes
    if len(pick) == 2:
        assert_clean_failure(run_pyh2("ls", ",".join(paths)), "3-volume")


def test_fill_past_volume_0(multivol3):
    """A tree spanning all three volumes, read back exactly; fsck, show, bulkfree."""
    spec = ":".join(multivol3)
    chunk = os.urandom(4 * MiB)
    sums = {}
    with pyh2.open(spec, writable=True) as vol:
        pfs = vol.pfs("DATA")
        pfs.setcomp("/", "none")
        pfs.mkdir("/d")
        for f in range(6):
            h = hashlib.sha256()
            pfs.create(f"/d/f{f}", b"")
            for k in range(96):
                block = chunk[k + f:] + chunk[:k + f]
                pfs.write(f"/d/f{f}", block, k * 4 * MiB)
                h.update(block)
            sums[f"/d/f{f}"] = h.hexdigest()
            vol.flush()
        pfs.close()
    with pyh2.open(multivol3) as vol:
        pfs = vol.pfs("DATA")
        offs = [b["data_off"] & ~0x3f for p in sums for b in pfs.blocks(p) if b["type"] == "data"]
        for p, digest in sums.items():
            h = hashlib.sha256()
            for off in range(0, 384 * MiB, 16 * MiB):
                h.update(pfs.read(p, off, 16 * MiB))
            assert h.hexdigest() == digest, p
        res = vol.fsck()
        assert not res["errors"], res["errors"][:5]
        assert res["freemap"]["unmarked"] == 0 and res["freemap"]["overlaps"] == 0
    # blocks on every volume, none in a volume's first 4 MiB (header, freemap)
    assert {0, 1, 2} <= {min(o >> 30, 2) for o in offs}
    assert all(o & (GiB - 1) >= 4 * MiB for o in offs)
    proc = run_pyh2("fsck", spec)
    assert proc.returncode == 0, proc.stderr.decode()
    proc = run_pyh2("show", spec)
    assert proc.returncode == 0 and b"volume" in proc.stdout, proc.stderr.decode()
    with pyh2.open(spec, writable=True) as vol:
        vol.pfs("DATA").unlink("/d/f0")
        vol.flush()
        assert vol.bulkfree() >= 384 * MiB
    with pyh2.open(spec) as vol:
        assert not vol.fsck()["errors"]


def test_newfs_set_as_the_real_newfs(tmp_path, multivol3):
    """pyh2's newfs of 1 + 1 + 2 GiB lays the set out as the real one did."""
    paths = [str(tmp_path / f"n{i}") for i in range(3)]
    proc = run_pyh2("newfs", ":".join(paths), "--size", "1G:1G:2G")
    assert proc.returncode == 0, proc.stderr.decode()
    with pyh2.open(paths) as ours, pyh2.open(multivol3) as real:
        a, b = ours.volume_headers(), real.volume_headers()
        for k in ("volu_size", "total_size", "allocator_size", "allocator_free", "version"):
            assert a[0][k] == b[0][k], k
        assert not ours.fsck()["errors"]
    for i, name in enumerate(("vol0", "vol1", "vol2")):
        with open(paths[i], "rb") as f:
            hdr = f.read(512)
        want = _ref_header(name)
        assert (hdr[0x3b], hdr[0x3c]) == (want["volu_id"], want["nvolumes"]), name
        assert int.from_bytes(hdr[0x28:0x30], "little") == want["volu_size"], name


def test_growfs_last_volume(tmp_path):
    paths = [str(tmp_path / "g0"), str(tmp_path / "g1")]
    pyh2.newfs(paths, [GiB, 128 * MiB])
    with pyh2.open(paths, writable=True) as vol:
        before = vol.volume_headers()[vol.best_zone]
        vol.growfs(512 * MiB)
    with pyh2.open(paths, writable=True) as vol:
        after = vol.volume_headers()[vol.best_zone]
        assert vol.size == GiB + 512 * MiB
        assert after["total_size"] == GiB + 512 * MiB
        assert after["allocator_size"] - before["allocator_size"] == 384 * MiB
        pfs = vol.pfs("DATA")
        pfs.setcomp("/", "none")
        pfs.create("/big", os.urandom(4 * MiB) * 300)     # past the old end
        pfs.close()
    with pyh2.open(paths) as vol:
        assert not vol.fsck()["errors"]
        assert vol.pfs("DATA").stat("/big").size == 1200 * MiB


def test_cluster_of_multivolume_nodes(tmp_path):
    nodes = [":".join(str(tmp_path / f"c{n}v{i}") for i in range(2)) for n in range(2)]
    pyh2.newfs_cluster(nodes, [GiB, 64 * MiB])
    spec = ",".join(nodes) + ":DATA"
    proc = run_pyh2("mkdir", spec, "/shared")
    assert proc.returncode == 0, proc.stderr.decode()
    for node in nodes:
        with pyh2.open(node) as vol:
            assert vol.pfs("DATA").listdir("/") == ["shared"]


def test_bad_volume_count(tmp_path):
    with pytest.raises(pyh2.H2Error) as ei:
        pyh2.open([str(tmp_path / "x")] * 65)
    assert ei.value.errno == errno.EINVAL and "65" in str(ei.value)


def test_mount_a_volume_set(tmp_path):
    """`pyh2 mount v0:v1:v2`: a file larger than volume 0 written through the mount lands
    on the next volume, the unmount commits, the file reads back exactly; df counts
    every volume."""
    from pyh2.testing.fusemount import mounted, run_cli
    vols = [str(tmp_path / f"v{i}") for i in range(3)]
    pyh2.newfs(vols, [GiB, GiB, 256 * MiB])
    mnt, chunk = tmp_path / "mnt", os.urandom(MiB)
    h = hashlib.sha256()
    with mounted(":".join(vols), mnt):
        assert os.statvfs(mnt).f_blocks * os.statvfs(mnt).f_frsize > 2 * GiB
        with open(mnt / "big", "wb") as f:
            for k in range(1200):
                block = chunk[k:] + chunk[:k]
                f.write(block)
                h.update(block)
            os.fsync(f.fileno())
        r = run_cli("umount", mnt)
        assert r.returncode == 0, r.stderr
    with pyh2.open(vols) as vol:
        pfs = vol.pfs("DATA")
        offs = [b["data_off"] & ~0x3f for b in pfs.blocks("/big") if b["type"] == "data"]
        assert {o >> 30 for o in offs} >= {0, 1}, "nothing past volume 0"
        got = hashlib.sha256()
        for off in range(0, 1200 * MiB, 64 * MiB):
            got.update(pfs.read("/big", off, 64 * MiB))
        assert got.hexdigest() == h.hexdigest()
        assert not vol.fsck()["errors"]


def test_newfs_aux_area(tmp_path):
    """An aux area asked for (newfs_hammer2 -r) is never allocated, and on a file the
    zeroed areas are holes; over 1 GiB, or past volume 0's first GiB, is refused."""
    paths = [str(tmp_path / "a0"), str(tmp_path / "a1")]
    pyh2.newfs(paths, [GiB, 256 * MiB], aux=900 * MiB + 1)
    with pyh2.open(paths) as vol:
        h = vol.device.volume_header_copies()[0]["copies"][0]
        assert h["aux_end"] - h["aux_beg"] == 904 * MiB       # rounded up to 8 MiB
        assert h["allocator_size"] == GiB + 256 * MiB - 64 * MiB - 904 * MiB - 2 * 4 * MiB
        assert not vol.fsck()["errors"]
    assert os.stat(paths[0]).st_blocks * 512 < 4 * MiB
    for aux, why in ((GiB + 1, "at most 1 GiB"), (GiB, "cannot hold")):
        with pytest.raises(pyh2.H2Error, match=why):
            pyh2.newfs(paths, [GiB, 256 * MiB], aux=aux)
