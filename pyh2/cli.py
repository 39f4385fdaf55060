"""The `pyh2` command."""
from __future__ import annotations

import argparse
import os
import stat as _stat
import sys
import tempfile
import time

from . import __version__
from . import cli_args
from . import cli_cluster
from . import cli_mount
from . import cli_torture
from . import show as _show
from .export import export
from .importer import Importer
from .spec import cluster_paths, open_volume, split_spec
from .cluster import ClusterVolume, newfs_cluster
from .volume import CHECK_ALGOS, COMP_ALGOS, H2Error, newfs

DEMO_SIZE = 256 << 20          # the demo's volume: one header copy, room for the sample


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.2f}{unit}"
        n /= 1024
    return ""


def cmd_newfs(args, out):
    size = args.size or 0
    if args.cluster:
        clid = newfs_cluster(args.image, size, args.label, args.volhdrs, args.comp,
                             args.check)
        out(f"{','.join(args.image)}: formatted as a cluster of {len(args.image)} "
            f"masters (cluster id {clid}), PFS {args.label} and LOCAL on each")
        return 0
    if len(args.image) != 1:
        raise H2Error(22, "one image (or --cluster IMG1 IMG2 ...)")
    newfs(args.image[0], size, args.label, args.volhdrs, args.comp, args.check)
    out(f"{args.image[0]}: formatted, PFS {args.label} and LOCAL")
    return 0


class _Edit:
    """One offline edit: open writable, run, flush (one transaction)."""

    def __init__(self, spec):
        self.img, self.label = split_spec(spec)

    def __enter__(self):
        self.vol = open_volume(self.img, writable=True)
        try:
            return self.vol.pfs(self.label)
        except BaseException:
            self.vol.close()
            raise

    def __exit__(self, exc_type, *exc):
        self.vol.__exit__(exc_type, *exc)


def cmd_import(args, out):
    t = time.perf_counter()
    with _Edit(args.spec) as pfs:
        imp = Importer(pfs).run(args.src, args.dest)
    dt = time.perf_counter() - t
    out(f"imported {imp.files} entries, {imp.bytes} bytes in {dt:.2f}s")
    return 0


def cmd_put(args, out):
    with _Edit(args.spec) as pfs, open(args.src, "rb") as f:
        data = f.read()
        try:
            pfs.truncate(args.path, 0)
        except H2Error as e:
            if e.errno != 2:
                raise
            pfs.create(args.path, b"", _stat.S_IMODE(os.stat(args.src).st_mode))
        pfs.write(args.path, data)
    return 0


def cmd_mkdir(args, out):
    with _Edit(args.spec) as pfs:
        parts = [p for p in args.path.split("/") if p]
        for i in range(0 if args.parents else len(parts) - 1, len(parts)):
            path = "/" + "/".join(parts[:i + 1])
            try:
                pfs.mkdir(path, args.mode)
            except H2Error as e:
                if not (args.parents and e.errno == 17):
                    raise
    return 0


def _rm_tree(pfs, path):
    for e in pfs.scandir(path):
        child = os.path.join(path, e.name)
        if e.type == "dir":
            _rm_tree(pfs, child)
            pfs.rmdir(child)
        else:
            pfs.unlink(child)


def cmd_rm(args, out):
    with _Edit(args.spec) as pfs:
        for path in args.paths:
            if args.recursive and pfs.stat(path).type == "dir":
                _rm_tree(pfs, path)
                pfs.rmdir(path)
            else:
                pfs.unlink(path)
    return 0


def cmd_rmdir(args, out):
    with _Edit(args.spec) as pfs:
        for path in args.paths:
            pfs.rmdir(path)
    return 0


def cmd_mv(args, out):
    with _Edit(args.spec) as pfs:
        pfs.rename(args.src, args.dst)
    return 0


def cmd_ln(args, out):
    with _Edit(args.spec) as pfs:
        if args.symbolic:
            pfs.symlink(args.target, args.link)
        else:
            pfs.link(args.target, args.link)
    return 0


def cmd_chmod(args, out):
    with _Edit(args.spec) as pfs:
        pfs.chmod(args.path, args.mode)
    return 0


def cmd_truncate(args, out):
    with _Edit(args.spec) as pfs:
        pfs.truncate(args.path, args.size)
    return 0


def cmd_pfs(args, out):
    with open_volume(args.image, writable=args.action != "list") as vol:
        if args.action == "list":
            for p in sorted(vol.pfs_list(), key=lambda p: p.label):
                out(f"{p.type:<11} {p.clid} {p.label}")
        elif args.action == "create":
            vol.pfs_create(args.label, args.type, args.clid, args.comp, args.check)
        else:
            vol.pfs_delete(args.label)
    return 0


def cmd_snapshot(args, out):
    img, label = split_spec(args.spec)
    with open_volume(img, writable=True) as vol:
        out(vol.snapshot(label, args.label, args.path))
    return 0


def cmd_bulkfree(args, out):
    with open_volume(args.image, writable=True) as vol:
        freed = vol.bulkfree()
        out(f"freed {freed} bytes ({_human(freed)}); "
            f"{_human(vol.fsck()['freemap']['leaked_bytes'])} left unreferenced")
    return 0


def cmd_growfs(args, out):
    def total(vol):         # a version 1 header has no total_size
        h = vol.volume_headers()[vol.best_zone]
        return h["total_size"] or h["volu_size"]

    with open_volume(args.image, writable=True) as vol:
        old = total(vol)
        last = vol.volumes[-1] if hasattr(vol, "volumes") else args.image
        vol.growfs(args.size if args.size is not None else os.stat(last).st_size)
        new = total(vol)
    out(f"{args.image}: grown from {old} to {new} bytes")
    return 0


def cmd_setalgo(args, out):
    img, label = split_spec(args.spec)
    path = args.path
    with _Edit(f"{img}:{label}") as pfs:
        set_ = pfs.setcomp if args.cmd == "setcomp" else pfs.setcheck
        n = set_(path, args.algo, args.recursive)
    out(f"{n} inode(s) now use {args.algo} for new writes")
    return 0


def cmd_destroy(args, out):
    with _Edit(args.spec) as pfs:
        if args.cmd == "destroy":
            pfs.destroy(args.target)
        else:
            pfs.destroy_inum(args.target)
    return 0


def cmd_orphans(args, out):
    img, label = split_spec(args.spec)
    with open_volume(img, writable=args.destroy) as vol:
        pfs = vol.pfs(label)
        for st in pfs.orphans():
            out(f"{st.inum:#x} {st.size} bytes" + (", destroyed" if args.destroy else ""))
            if args.destroy:
                pfs.destroy_inum(st.inum)
    return 0


_VOLHDR_HEX = ("magic", "boot_beg", "boot_end", "aux_beg", "aux_end", "volu_size")
_VOLHDR_DEC = ("version", "flags", "copyid", "freemap_vers", "peer_type", "volu_id",
               "nvolumes", "fsid", "fstype")
_VOLHDR_ALLOC = ("allocator_size", "allocator_free", "allocator_beg", "mirror_tid",
                 "freemap_tid", "bulkfree_tid", "total_size")


def _volhdr_copy(h, out):
    """One header copy, laid out (names, order, widths) as the real `hammer2 volhdr`."""
    def crc(name, pair):
        out(f"    {name:<14} 0x{pair[0]:08x}/0x{pair[1]:08x} "
            f"({'OK' if pair[0] == pair[1] else 'BAD'})")

    out(f"Volume header {h['zone']} {{")
    for k in _VOLHDR_HEX:
        out(f"    {k:<14} 0x{h[k]:016x}")
    for k in _VOLHDR_DEC:
        out(f"    {k:<14} " + (f"0x{h[k]:08x}" if k == "flags" else f"{h[k]}"))
    for k in _VOLHDR_ALLOC:
        out(f"    {k:<14} 0x{h[k]:016x}")
    for sect, pair in sorted(h["icrc_sects"].items()):
        crc(f"icrc_sects[{sect}]", pair)
    crc("icrc_volhdr", h["icrc_volhdr"])
    for i, loff in enumerate(h["volu_loff"]):
        out(f"    {f'volu_loff[{i}]':<14} 0x{loff:016x}")
    out("}")


def cmd_volhdr(args, out):
    """Every volume's header copies: a summary line each (the root volume's copy in use
    marked), then each copy that has a HAMMER2 magic in full."""
    with open_volume(args.image) as vol:
        best = vol.best_zone
        for vid, v in enumerate(vol.device.volume_header_copies()):
            if vid:
                out("-" * 45)
            out(v["path"])
            for h in v["copies"]:
                state = (f"mirror_tid={h['mirror_tid']:016x}" if h["error"] is None
                         else f"invalid ({h['error']})")
                out(f"Volume header {h['zone']}: {state}"
                    + (" (in use)" if vid == 0 and h["zone"] == best else ""))
            for h in v["copies"]:
                if h["error"] != "bad magic":
                    out("")
                    _volhdr_copy(h, out)
    return 0


def cmd_freemap(args, out):
    with open_volume(args.image) as vol:
        def leaf(depth, bref, data, error):
            if bref["type"] in ("freemap_node", "freemap_leaf"):
                out(f"{'  ' * depth}{bref['type']} {bref['data_off_raw']:016x} "
                    f"key {bref['key']:#x}/{bref['keybits']} mirror_tid {bref['mirror_tid']:#x}")
            if bref["type"] == "freemap_leaf" and data:
                for seg in _core_bmaps(data):
                    if seg["class"] or seg["used"]:
                        base = bref["key"] + seg["index"] * (4 << 20)
                        out(f"{'  ' * depth}  {base:#014x} class {seg['class']:#06x} "
                            f"avail {seg['avail']:>8} used {seg['used'] * 16:>5}K "
                            f"linear {seg['linear']:#x}")
        vol.device.walk_zone(vol.best_zone, True, leaf)
        fm = vol.fsck()["freemap"]
        out(f"{_human(fm['allocated_bytes'])} allocated, {_human(fm['leaked_bytes'])} "
            f"unreferenced")
    return 0


def _core_bmaps(data: bytes):
    from . import _core
    return _core.bmap_summary(data)


def cmd_info(args, out):
    with open_volume(args.image) as vol:
        out(f"{vol.path}: {vol.size} bytes")
        for h in vol.volume_headers():
            state = "ok" if h["valid"] else h["error"]
            best = " (best)" if h["best"] else ""
            out(f"volume header {h['zone']} at 0x{h['offset']:x}: {state}{best}"
                + (f" mirror_tid=0x{h['mirror_tid']:x} version={h['version']} "
                   f"size={h['volu_size']}" if h["valid"] else ""))
        for w in vol.warnings:
            out(f"warning: {w}")
        if isinstance(vol, ClusterVolume):
            out("nodes:")
            for n in vol.nodes():
                out(f"  {cli_cluster.node_line(n)}")
        out("PFS:")
        for p in sorted(vol.pfs_list(), key=lambda p: p.label):
            out(f"  {p.type:<11} {p.clid} {p.label}")
    return 0


def _ls_line(pfs, path, name, long):
    if not long:
        return name
    st = pfs.stat(path)
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(st.mtime_us // 1_000_000))
    line = (f"{_stat.filemode(st.st_mode)} {st.nlinks:>3} {st.uid:>5} {st.gid:>5} "
            f"{st.size:>12} {when} {name}")
    if st.type == "symlink":
        line += f" -> {pfs.readlink(path)}"
    return line


def cmd_ls(args, out):
    img, label = split_spec(args.spec)
    with open_volume(img) as vol:
        pfs = vol.pfs(label)
        top = args.path
        if pfs.stat(top).type != "dir":
            out(_ls_line(pfs, top, top, args.long))
            return 0
        walk = pfs.walk(top) if args.recursive else [(top, None, None)]
        for i, (dirpath, _, _) in enumerate(walk):
            if args.recursive:
                out(("\n" if i else "") + f"{dirpath}:")
            for name in sorted(pfs.listdir(dirpath)):
                out(_ls_line(pfs, os.path.join(dirpath, name), name, args.long))
    return 0


_H2_TYPES = {1: "DIR", 2: "FILE", 4: "FIFO", 5: "CDEV", 6: "BDEV", 7: "SOFTLINK",
             9: "SOCKET"}


def _algo_name(names: dict, value: int) -> str:
    name = next((n for n, v in names.items() if v == value & 0x0F), f"type{value & 0x0F}")
    return f"{name}:{value >> 4}" if value >> 4 else name


def cmd_stat(args, out):
    """Inode fields, numbered as the real hammer2 tool prints them."""
    img, label = split_spec(args.spec)
    with open_volume(img) as vol:
        pfs = vol.pfs(label)
        for path in args.paths:
            st = pfs.stat(path)
            out(f"{path}:")
            for key, value in (
                    ("inum", f"{st.inum:#x}"), ("size", st.size), ("nlinks", st.nlinks),
                    ("mode", f"0{st.mode:o}"),
                    ("type", f"{st.h2type} ({_H2_TYPES.get(st.h2type, 'UNKNOWN')})"),
                    ("uid", st.uid), ("gid", st.gid),
                    ("mtime", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(st.mtime))),
                    ("comp_algo", f"{st.comp_algo:#x} ({_algo_name(COMP_ALGOS, st.comp_algo)})"),
                    ("check_algo", f"{st.check_algo} ({_algo_name(CHECK_ALGOS, st.check_algo)})"),
                    ("iparent", f"{st.iparent:#x}"),
                    ("data", "embedded" if st.embedded else "blocks")):
                out(f"    {key:<11}{value}")
    return 0


def cmd_cat(args, out):
    img, label = split_spec(args.spec)
    with open_volume(img) as vol:
        pfs = vol.pfs(label)
        size = pfs.stat(args.path).size
        sink = sys.stdout.buffer
        for off in range(0, size, 4 << 20):
            sink.write(pfs.read(args.path, off, min(4 << 20, size - off)))
        sink.flush()
    return 0


def cmd_export(args, out):
    img, label = split_spec(args.spec)
    with open_volume(img) as vol:
        n = export(vol.pfs(label), args.dest)
    out(f"exported {n} entries to {args.dest}")
    return 0


def cmd_show(args, out):
    with open_volume(args.image) as vol:
        errors = _show.show(vol.device, out, args.zone)
    for e in errors:
        print(f"pyh2: {e}", file=sys.stderr)
    return 1 if errors else 0


def _fsck_volume(vol, args, out) -> list[str]:
    headers = vol.volume_headers()
    out("volume header")
    for h in headers:
        best = " (best)" if h["best"] else ""
        out(f"zone.{h['zone']} {h['offset'] | 16:016x} "
            f"{'ok' if h['valid'] else h['error']}{best}")
    zones = [h for h in headers if h["valid"] and (args.all_zones or h["best"])]
    results = {h["zone"]: vol.fsck(h["zone"]) for h in zones}
    errors = []
    for section in ("freemap", "volume"):
        out(section)
        for h in zones:
            r = results[h["zone"]]
            out(f"zone.{h['zone']} {h['offset'] | 16:016x}" + (" (best)" if h["best"] else ""))
            if section == "freemap":
                out(f"\t{r['freemap_total']} blockref ({r['freemap_node']} node, "
                    f"{r['freemap_leaf']} leaf), {_human(r['freemap_bytes'])}")
            else:
                out(f"\t{r['total']} blockref ({r['inode']} inode, {r['indirect']} "
                    f"indirect, {r['data']} data, {r['dirent']} dirent), "
                    f"{_human(r['bytes'])}")
    for h in zones:
        fm = results[h["zone"]]["freemap"]
        out(f"freemap check zone.{h['zone']}: {fm['referenced']} blocks referenced, "
            f"{fm['unmarked']} marked free, {fm['overlaps']} overlapping, "
            f"{_human(fm['leaked_bytes'])} allocated but unreferenced (leaked)")
        errors += [f"zone.{h['zone']}: {e}" for e in results[h["zone"]]["errors"]]
    return errors


def cmd_fsck(args, out):
    """One image; or every node of a cluster spec, and with --cluster the
    nodes compared with each other (same logical tree and data)."""
    paths = cluster_paths(args.image)
    if args.cluster and paths is None:
        raise H2Error(22, f"{args.image}: --cluster needs IMG1,IMG2,...")
    with open_volume(args.image) as vol:
        if paths is None:
            errors = _fsck_volume(vol, args, out)
        else:
            errors = []
            for node in vol.node_volumes():
                out(f"== node {node.path}")
                errors += [f"{node.path}: {e}" for e in _fsck_volume(node, args, out)]
            if args.cluster:
                diffs = vol.compare()
                out(f"== nodes compared: {len(diffs) or 'no'} difference(s)")
                errors += diffs
    for e in errors:
        print(f"pyh2: {e}", file=sys.stderr)
    if errors:
        print(f"pyh2: fsck found {len(errors)} error(s)", file=sys.stderr)
    return 1 if errors else 0


def cmd_demo(args, out):
    """The whole cycle on a volume made here: newfs, import of a sample host tree,
    fsck, then the tree read back and exported, each compared with the source."""
    from . import refimages
    from .sample import make_tree

    with tempfile.TemporaryDirectory(prefix="pyh2-demo-") as tmp:
        src = make_tree(os.path.join(tmp, "src"))
        img = os.path.join(tmp, "demo.h2")
        out(f"== pyh2 demo: newfs {img}, import a sample tree")
        newfs(img, DEMO_SIZE)
        with open_volume(img, writable=True) as vol:
            Importer(vol.pfs("DATA")).run(str(src))
        cmd_info(argparse.Namespace(image=img), out)
        out("== fsck")
        rc = cmd_fsck(argparse.Namespace(image=img, all_zones=False, cluster=False), out)
        with open_volume(img) as vol:
            pfs = vol.pfs("DATA")
            tree = refimages.tree_from_volume(pfs)
            export(pfs, os.path.join(tmp, "export"))
        expected = refimages.tree_from_dir(src)
        problems = refimages.compare_trees(expected, tree)
        problems += [f"export: {p}" for p in refimages.compare_trees(
            expected, refimages.tree_from_dir(os.path.join(tmp, "export")))]
    out(f"== {len(tree)} entries imported, read back and exported: "
        f"{'identical to' if not problems else 'DIFFERENT from'} the source")
    for p in problems:
        out(f"MISMATCH {p}")
    return 1 if problems or rc else 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pyh2", description=__doc__)
    ap.add_argument("--version", action="version", version=f"pyh2 {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("info", help="volume headers and PFS list")
    p.add_argument("image")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("ls", help="list a directory")
    p.add_argument("-l", dest="long", action="store_true")
    p.add_argument("-R", dest="recursive", action="store_true")
    p.add_argument("spec", metavar="IMG[:PFS]")
    p.add_argument("path", nargs="?", default="/")
    p.set_defaults(func=cmd_ls)
    p = sub.add_parser("stat", help="inode fields (type, mode, size, algorithms, ...)")
    p.add_argument("spec", metavar="IMG[:PFS]")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.set_defaults(func=cmd_stat)
    p = sub.add_parser("cat", help="write a file to stdout")
    p.add_argument("spec", metavar="IMG[:PFS]")
    p.add_argument("path")
    p.set_defaults(func=cmd_cat)
    p = sub.add_parser("export", help="copy a PFS out to a directory")
    p.add_argument("spec", metavar="IMG[:PFS]")
    p.add_argument("dest")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("show", help="dump the whole blockref topology")
    p.add_argument("image")
    p.add_argument("--zone", type=cli_args.at_least(0), default=None)
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("fsck", help="verify every blockref and check code")
    p.add_argument("image")
    p.add_argument("--all-zones", action="store_true",
                   help="check the trees of every valid volume header, not only the best")
    p.add_argument("--cluster", action="store_true",
                   help="IMAGE is IMG1,IMG2,...: also compare the nodes' trees and data")
    p.set_defaults(func=cmd_fsck)
    p = sub.add_parser("newfs", help="format an image file or device")
    p.add_argument("image", nargs="+")
    p.add_argument("--cluster", action="store_true",
                   help="format every IMG as a master of one new cluster")
    p.add_argument("--size", type=cli_args.sizes,
                   help="e.g. 4G (files are created or resized); VOL0:VOL1:... takes one "
                        "per volume, 1G:1G:2G")
    p.add_argument("--label", default="DATA")
    p.add_argument("--volhdrs", type=int, default=0, help="header copies (1-4; default all)")
    p.add_argument("--comp", default="lz4", help="none, autozero, lz4, zlib[:LEVEL]")
    p.add_argument("--check", default="xxhash64",
                   help="none, disabled, crc32, xxhash64, sha192")
    p.set_defaults(func=cmd_newfs)
    p = sub.add_parser("import", help="copy a directory tree in (as makefs does)")
    p.add_argument("src")
    p.add_argument("spec", metavar="IMG[:PFS]")
    p.add_argument("dest", nargs="?", default="/")
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("put", help="copy a host file to PATH")
    p.add_argument("src")
    p.add_argument("spec", metavar="IMG[:PFS]")
    p.add_argument("path")
    p.set_defaults(func=cmd_put)
    p = sub.add_parser("mkdir")
    p.add_argument("-p", dest="parents", action="store_true")
    p.add_argument("-m", dest="mode", type=cli_args.mode, default="755")
    p.add_argument("spec", metavar="IMG[:PFS]")
    p.add_argument("path")
    p.set_defaults(func=cmd_mkdir)
    p = sub.add_parser("rm")
    p.add_argument("-r", dest="recursive", action="store_true")
    p.add_argument("spec", metavar="IMG[:PFS]")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=cmd_rm)
    p = sub.add_parser("rmdir")
    p.add_argument("spec", metavar="IMG[:PFS]")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=cmd_rmdir)
    p = sub.add_parser("mv")
    p.add_argument("spec", metavar="IMG[:PFS]")
    p.add_argument("src")
    p.add_argument("dst")
    p.set_defaults(func=cmd_mv)
    p = sub.add_parser("ln")
    p.add_argument("-s", dest="symbolic", action="store_true")
    p.add_argument("spec", metavar="IMG[:PFS]")
    p.add_argument("target")
    p.add_argument("link")
    p.set_defaults(func=cmd_ln)
    p = sub.add_parser("chmod")
    p.add_argument("mode", type=cli_args.mode)
    p.add_argument("spec", metavar="IMG[:PFS]")
    p.add_argument("path")
    p.set_defaults(func=cmd_chmod)
    p = sub.add_parser("truncate")
    p.add_argument("spec", metavar="IMG[:PFS]")
    p.add_argument("path")
    p.add_argument("size", type=cli_args.size)
    p.set_defaults(func=cmd_truncate)
    p = sub.add_parser("pfs", help="list, create or delete PFSes")
    p.add_argument("action", choices=("list", "create", "delete"))
    p.add_argument("image")
    p.add_argument("label", nargs="?")
    p.add_argument("--type", default="MASTER",
                   help="MASTER, SLAVE, SOFT_MASTER, SOFT_SLAVE or CACHE")
    p.add_argument("--clid", help="cluster id (uuid) to join; default a new one")
    p.add_argument("--comp", default="lz4")
    p.add_argument("--check", default="xxhash64")
    p.set_defaults(func=cmd_pfs)
    p = sub.add_parser("snapshot", help="snapshot a PFS (default label PFS.YYYYMMDD.HHMMSS)")
    p.add_argument("spec", metavar="IMG[:PFS]")
    p.add_argument("label", nargs="?")
    p.add_argument("--path", default="/", help="snapshot this directory of the PFS")
    p.set_defaults(func=cmd_snapshot)
    p = sub.add_parser("bulkfree", help="free every block nothing references")
    p.add_argument("image")
    p.set_defaults(func=cmd_bulkfree)
    p = sub.add_parser("growfs", help="grow the (last) volume into a larger file or device")
    p.add_argument("image")
    p.add_argument("--size", type=cli_args.size,
                   help="new size (default: the file's or device's size)")
    p.set_defaults(func=cmd_growfs)
    for name in ("setcomp", "setcheck"):
        p = sub.add_parser(name, help=f"algorithm for new writes ({name[3:]})")
        p.add_argument("-r", dest="recursive", action="store_true")
        p.add_argument("algo")
        p.add_argument("spec", metavar="IMG[:PFS]")
        p.add_argument("path")
        p.set_defaults(func=cmd_setalgo)
    for name, what in (("destroy", "PATH"), ("destroy-inum", "INUM")):
        p = sub.add_parser(name, help=f"remove a damaged entry by {what.lower()} without reading it")
        p.add_argument("spec", metavar="IMG[:PFS]")
        p.add_argument("target", metavar=what, type=cli_args.inum if what == "INUM" else str)
        p.set_defaults(func=cmd_destroy)
    p = sub.add_parser("orphans", help="list (--destroy: remove) inodes with no name left")
    p.add_argument("spec", metavar="IMG[:PFS]")
    p.add_argument("--destroy", action="store_true",
                   help="remove them (a bulkfree then takes back their blocks)")
    p.set_defaults(func=cmd_orphans)
    p = sub.add_parser("volhdr", help="dump the volume header copies")
    p.add_argument("image")
    p.set_defaults(func=cmd_volhdr)
    p = sub.add_parser("freemap", help="dump the freemap")
    p.add_argument("image")
    p.set_defaults(func=cmd_freemap)
    p = sub.add_parser("demo", help="newfs, import, fsck, read back and export a sample tree")
    p.set_defaults(func=cmd_demo)
    cli_cluster.register(sub)
    cli_mount.register(sub)
    cli_torture.register(sub)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def out(line):
        print(line, flush=False)

    try:
        return args.func(args, out)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (H2Error, OSError) as e:
        print(f"pyh2: {e.strerror or e}" + (f": {e.filename}" if e.filename else ""),
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
