"""Round trip through the write path: every reference image's trees are
exported to a host directory, imported into a fresh pyh2-made image,
exported again, and must still be exactly the trees the real tools
recorded; the new image passes fsck with a consistent freemap."""
import pytest

import pyh2
from pyh2.testing.cli import run_pyh2
from pyh2 import refimages
from pyh2.export import export
from pyh2.importer import Importer

IMAGE_PFS = [(n, label) for n in refimages.image_names()
             for label, tree in refimages.load_manifest(n)["trees"].items() if tree]


@pytest.mark.parametrize("name,label", IMAGE_PFS)
def test_export_import_export(name, label, ref_image, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    with pyh2.open(ref_image(name)) as vol:
        export(vol.pfs(label), str(first))
    img = tmp_path / "copy.h2"
    pyh2.newfs(img, 4 << 30)
    proc = run_pyh2("import", first, f"{img}:DATA")
    assert proc.returncode == 0, proc.stderr.decode()
    with pyh2.open(img) as vol:
        export(vol.pfs("DATA"), str(second))
        result = vol.fsck()
    assert result["errors"] == []
    assert result["freemap"]["unmarked"] == 0 and result["freemap"]["overlaps"] == 0
    diffs = refimages.compare_trees(refimages.expected_tree(name, label),
                                    refimages.tree_from_dir(second))
    assert not diffs, "\n".join(diffs[:40])


def test_imported_image_reads_like_its_source(ref_image, tmp_path):
    """Read through the core (not via export): same manifest."""
    src = tmp_path / "src"
    with pyh2.open(ref_image("basic")) as vol:
        export(vol.pfs("DATA"), str(src))
    img = tmp_path / "x.h2"
    pyh2.newfs(img, 1 << 30, comp="zlib:9", check="sha192")
    with pyh2.open(img, writable=True) as vol:
        Importer(vol.pfs("DATA")).run(str(src))
    with pyh2.open(img) as vol:
        pfs = vol.pfs("DATA")
        diffs = refimages.compare_trees(refimages.expected_tree("basic", "DATA"),
                                        refimages.tree_from_volume(pfs))
        checks = {b["check"] for b in pfs.blocks("/text/words.txt")}
    assert not diffs, "\n".join(diffs[:40])
    assert checks == {4}        # sha192 everywhere under the file
