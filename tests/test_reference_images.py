"""pyh2 must read every reference image exactly as the real HAMMER2 tools described it."""
import hashlib

import pytest

import pyh2
from pyh2.testing.cli import run_pyh2
from pyh2 import refimages

ALL_IMAGES = refimages.image_names()
IMAGE_PFS = [(n, label) for n in ALL_IMAGES for label in refimages.load_manifest(n)["trees"]]
EXPORT_IMAGES = ["basic", "pfs-snapshot"]  # small trees; bigfile would export 1 GiB


def _diff_report(diffs):
    return f"{len(diffs)} differences:\n" + "\n".join(diffs[:40])


@pytest.mark.parametrize("name", ALL_IMAGES)
def test_pfs_list(name, ref_image, ref_json):
    with pyh2.open(ref_image(name)) as vol:
        got = sorted((p.label, p.type, p.clid) for p in vol.pfs_list())
    assert got == sorted((p["label"], p["type"], p["clid"]) for p in ref_json(name)["pfs"])


@pytest.mark.parametrize("name,label", IMAGE_PFS)
def test_tree_matches_manifest(name, label, ref_image):
    with pyh2.open(ref_image(name)) as vol:
        diffs = refimages.diff_pfs(name, label, vol.pfs(label))
    assert not diffs, _diff_report(diffs)


# manifest field -> (Stat attribute, parser of the string the real tool printed)
INODE_FIELDS = {
    "inum": ("inum", lambda s: int(s, 16)),
    "size": ("size", int),
    "nlinks": ("nlinks", int),
    "mode": ("mode", lambda s: int(s, 8)),
    "type": ("h2type", lambda s: int(s.split()[0])),  # '2 (FILE)'
    "comp_algo": ("comp_algo", lambda s: int(s, 16)),
    "check_algo": ("check_algo", int),
    "iparent": ("iparent", lambda s: int(s, 16)),
}


@pytest.mark.parametrize("name", ALL_IMAGES)
def test_sampled_inode_fields(name, ref_image, ref_json):
    sample = ref_json(name)["inodes_DATA"]
    diffs = []
    with pyh2.open(ref_image(name)) as vol:
        pfs = vol.pfs("DATA")
        for path, fields in sample.items():
            st = pfs.stat(path)
            for key, text in fields.items():
                attr, parse = INODE_FIELDS[key]
                if getattr(st, attr) != parse(text):
                    diffs.append(f"{path}: {key} expected {text}, got {getattr(st, attr)!r}")
    assert not diffs, _diff_report(diffs)


@pytest.mark.parametrize("name", ALL_IMAGES)
def test_fsck_counts(name, ref_image, ref_fsck_counts):
    want = ref_fsck_counts(name)
    with pyh2.open(ref_image(name)) as vol:
        res = vol.fsck()
    assert {k: res[k] for k in want} == want
    assert res["errors"] == []
    proc = run_pyh2("fsck", ref_image(name))
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert refimages.fsck_line_re(want).search(out), out


def _smallest_file(tree):
    files = [e for e in tree if e["type"] == "file" and 0 < e["size"] <= 65536]
    return min(files, key=lambda e: (e["size"], e["path"]), default=None)


@pytest.mark.parametrize("name", ALL_IMAGES)
def test_cli_smoke(name, ref_image, ref_json):
    img, manifest = ref_image(name), ref_json(name)
    label = refimages.pfs_label(manifest)
    target = img if label == "DATA" else f"{img}:{label}"  # bare IMG exercises the default

    proc = run_pyh2("info", img)
    assert proc.returncode == 0, proc.stderr
    info = proc.stdout.decode(errors="replace")
    for p in manifest["pfs"]:
        assert p["label"] in info

    proc = run_pyh2("ls", "-lR", target)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()

    entry = _smallest_file(manifest["trees"][label])
    if entry is None:
        return
    proc = run_pyh2("cat", target, entry["path"])
    assert proc.returncode == 0, proc.stderr
    assert hashlib.sha256(proc.stdout).hexdigest() == entry["sha256"]
    with pyh2.open(img) as vol:
        assert proc.stdout == vol.pfs(label).read(entry["path"])


@pytest.mark.parametrize("name", EXPORT_IMAGES)
def test_cli_export(name, ref_image, tmp_path):
    out = tmp_path / "export"
    proc = run_pyh2("export", f"{ref_image(name)}:DATA", out)
    assert proc.returncode == 0, proc.stderr
    diffs = refimages.compare_trees(refimages.expected_tree(name, "DATA"),
                                    refimages.tree_from_dir(out))
    assert not diffs, _diff_report(diffs)


def _cli_stat(image, paths):
    """`pyh2 stat` output parsed into {path: {field: text}}."""
    proc = run_pyh2("stat", image, *paths)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    result, cur = {}, None
    for line in proc.stdout.decode().splitlines():
        if not line.startswith(" "):
            cur = result.setdefault(line[:-1], {})
        else:
            key, _, value = line.strip().partition(" ")
            cur[key] = value.strip()
    return result


@pytest.mark.parametrize("name", ["basic", "comp-zlib-crc32", "autozero-nocheck"])
def test_cli_stat_prints_fields_as_the_real_tool(name, ref_image, ref_json):
    sample = dict(list(ref_json(name)["inodes_DATA"].items())[:40])
    got = _cli_stat(ref_image(name), sample)
    for path, fields in sample.items():
        for key, text in fields.items():
            # comp/check also carry the algorithm's name after the real tool's number
            assert got[path][key].split(" (")[0] == text.split(" (")[0], (path, key)
            if key == "type":
                assert got[path][key] == text, (path, key)
