"""The `pyh2` command."""
from __future__ import annotations

import argparse
import os
import stat as _stat
import sys
import tempfile
import time

from . import show as _show
from .export import export
from .volume import H2Error, Volume


def _split_spec(spec: str) -> tuple[str, str]:
    """IMG[:PFS] -> (image, pfs label); a path that exists is never split."""
    if os.path.exists(spec) or ":" not in spec:
        return spec, "DATA"
    img, label = spec.rsplit(":", 1)
    return img, label or "DATA"


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.2f}{unit}"
        n /= 1024
    return ""


def cmd_info(args, out):
    with Volume(args.image) as vol:
        out(f"{vol.path}: {vol.size} bytes")
        for h in vol.volume_headers():
            state = "ok" if h["valid"] else h["error"]
            best = " (best)" if h["best"] else ""
            out(f"volume header {h['zone']} at 0x{h['offset']:x}: {state}{best}"
                + (f" mirror_tid=0x{h['mirror_tid']:x} version={h['version']} "
                   f"size={h['volu_size']}" if h["valid"] else ""))
        for w in vol.warnings:
            out(f"warning: {w}")
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
    img, label = _split_spec(args.spec)
    with Volume(img) as vol:
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


def cmd_cat(args, out):
    img, label = _split_spec(args.spec)
    with Volume(img) as vol:
        pfs = vol.pfs(label)
        size = pfs.stat(args.path).size
        sink = sys.stdout.buffer
        for off in range(0, size, 4 << 20):
            sink.write(pfs.read(args.path, off, min(4 << 20, size - off)))
        sink.flush()
    return 0


def cmd_export(args, out):
    img, label = _split_spec(args.spec)
    with Volume(img) as vol:
        n = export(vol.pfs(label), args.dest)
    out(f"exported {n} entries to {args.dest}")
    return 0


def cmd_show(args, out):
    with Volume(args.image) as vol:
        errors = _show.show(vol.device, out, args.zone)
    for e in errors:
        print(f"pyh2: {e}", file=sys.stderr)
    return 1 if errors else 0


def cmd_fsck(args, out):
    with Volume(args.image) as vol:
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
            errors += [f"zone.{h['zone']}: {e}" for e in results[h["zone"]]["errors"]]
    for e in errors:
        print(f"pyh2: {e}", file=sys.stderr)
    if errors:
        print(f"pyh2: fsck found {len(errors)} error(s)", file=sys.stderr)
    return 1 if errors else 0


def cmd_demo(args, out):
    """The main job until the torture suite exists: read, export and check
    the `basic` reference image against its manifest."""
    from harness import refimages

    img = refimages.decompressed("basic")
    out(f"== pyh2 demo on reference image 'basic' ({img})")
    cmd_info(argparse.Namespace(image=str(img)), out)
    out("== fsck")
    rc = cmd_fsck(argparse.Namespace(image=str(img), all_zones=False), out)
    expected = refimages.fsck_counts("basic")
    with Volume(img) as vol:
        got = vol.fsck()
        pfs = vol.pfs("DATA")
        tree = refimages.tree_from_volume(pfs)
        with tempfile.TemporaryDirectory(prefix="pyh2-demo-") as tmp:
            export(pfs, tmp)
            exported = refimages.tree_from_dir(tmp)
    manifest = refimages.expected_tree("basic", "DATA")
    problems = refimages.compare_trees(manifest, tree)
    problems += [f"export: {p}" for p in refimages.compare_trees(manifest, exported)]
    if any(got[k] != expected[k] for k in expected):
        problems.append(f"fsck counts {got} differ from the real fsck's {expected}")
    out(f"== {len(tree)} entries read, exported and compared with the manifest; "
        f"fsck counts {'match' if not problems else 'checked'} the real fsck")
    for p in problems:
        out(f"MISMATCH {p}")
    return 1 if problems or rc else 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pyh2", description=__doc__)
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
    p.add_argument("--zone", type=int, default=None)
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("fsck", help="verify every blockref and check code")
    p.add_argument("image")
    p.add_argument("--all-zones", action="store_true",
                   help="check the trees of every valid volume header, not only the best")
    p.set_defaults(func=cmd_fsck)
    p = sub.add_parser("demo", help="the main job: read, export and check a reference image")
    p.set_defaults(func=cmd_demo)
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
