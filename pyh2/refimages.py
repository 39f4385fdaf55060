"""Reference images: locate, decompress (cached), parse their manifests and fsck output,
and compare a live pyh2 PFS against a manifest.

The images live in `<repo>/../shared/reference-images` (override: PYH2_REFERENCE_IMAGES);
decompressed copies are cached in ~/.cache/pyh2/reference (override: PYH2_CACHE).
"""
import fcntl
import functools
import hashlib
import json
import os
import re
import stat as statmod
import subprocess
from pathlib import Path

from . import showdump

REPO = Path(__file__).resolve().parent.parent
READ_CHUNK = 4 << 20  # bounded reads: bigfile holds a 1 GiB sparse file


class ReferenceImagesMissing(RuntimeError):
    pass


def reference_dir() -> Path:
    env = os.environ.get("PYH2_REFERENCE_IMAGES")
    d = Path(env) if env else REPO.parent / "shared" / "reference-images"
    if not d.is_dir():
        raise ReferenceImagesMissing(
            f"reference images not found at {d} (set PYH2_REFERENCE_IMAGES, or put "
            f"shared/reference-images beside the repo)")
    return d


def cache_dir() -> Path:
    env = os.environ.get("PYH2_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "pyh2" / "reference"


def image_names() -> list[str]:
    """Every NAME with a NAME.h2.zst, so images added later are picked up."""
    return sorted(p.name[:-len(".h2.zst")] for p in reference_dir().glob("*.h2.zst"))


def _fresh(out: Path, src: Path) -> bool:
    try:
        return out.stat().st_mtime >= src.stat().st_mtime
    except FileNotFoundError:
        return False


def decompressed(name: str) -> Path:
    """Path of the decompressed (sparse) image NAME; treat it as read-only.

    Safe across processes (pytest-xdist workers): one decompresses under an flock while the
    others wait, and the result appears atomically via os.replace.
    """
    src = reference_dir() / f"{name}.h2.zst"
    if not src.is_file():
        raise FileNotFoundError(f"no reference image {src}")
    out = cache_dir() / f"{name}.h2"
    if _fresh(out, src):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _fresh(out, src):  # another worker may have finished meanwhile
            tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
            subprocess.run(["zstd", "-d", "-q", "-f", str(src), "-o", str(tmp)], check=True)
            os.utime(tmp)  # zstd copies the source mtime; ours must read as newer
            os.replace(tmp, out)
    return out


@functools.lru_cache(maxsize=None)
def _manifest_text(name: str) -> str:
    return (reference_dir() / f"{name}.json").read_text(encoding="utf-8")


def load_manifest(name: str) -> dict:
    """NAME.json as a fresh dict (callers may mutate it)."""
    return json.loads(_manifest_text(name))


@functools.lru_cache(maxsize=None)
def show_paths(name: str) -> dict:
    """{pfs label: {path: {inum, mtime, type}}} from the real `hammer2 show` dump."""
    return showdump.load(reference_dir() / f"{name}.show.txt.zst")


def pfs_label(manifest: dict) -> str:
    """The PFS the CLI uses by default (DATA), else the first one with a tree."""
    return "DATA" if "DATA" in manifest["trees"] else next(iter(manifest["trees"]))


def expected_tree(name: str, label: str) -> list[dict]:
    """The manifest's tree for PFS label, with mtimes as the real `hammer2 show` printed them
    (the manifest took a few directory mtimes from the source tree, not from the image)."""
    on_media = show_paths(name).get(label, {})
    tree = load_manifest(name)["trees"][label]
    for e in tree:
        if e["path"] in on_media:
            e["mtime"] = on_media[e["path"]]["mtime"]
    return tree


# --- fsck output -------------------------------------------------------------------------

_COUNTS_RE = re.compile(
    r"^\s*(\d+) blockref \((\d+) inode, (\d+) indirect, (\d+) data, (\d+) dirent\)")
COUNT_KEYS = ("total", "inode", "indirect", "data", "dirent")


def parse_fsck_counts(text: str) -> dict:
    """Counts of the real fsck's `volume` section, for the zone marked `(best)`
    (else the first zone with counts): the zone's last progress line is its total."""
    lines = text.splitlines()
    try:
        start = lines.index("volume") + 1
    except ValueError:
        raise ValueError("fsck output has no 'volume' section") from None
    zones = []  # [is_best, last counts]
    for line in lines[start:]:
        if line.startswith("zone."):
            zones.append([line.rstrip().endswith("(best)"), None])
        elif (m := _COUNTS_RE.match(line)) and zones:
            zones[-1][1] = dict(zip(COUNT_KEYS, map(int, m.groups())))
        elif line.strip() and not line[0].isspace():
            break  # a later section
    counted = [z for z in zones if z[1] is not None]
    chosen = [z for z in counted if z[0]] or counted
    if not chosen:
        raise ValueError("fsck output has no blockref counts in its 'volume' section")
    return chosen[0][1]


def fsck_counts(name: str) -> dict:
    return parse_fsck_counts((reference_dir() / f"{name}.fsck.txt").read_text())


def fsck_line_re(counts: dict) -> re.Pattern:
    """Matches the line `N blockref (I inode, X indirect, D data, E dirent)` for counts."""
    c = counts
    return re.compile(
        rf"(?m)(?:^|\s){c['total']} blockref \({c['inode']} inode, {c['indirect']} "
        rf"indirect, {c['data']} data, {c['dirent']} dirent\)")


# --- trees -------------------------------------------------------------------------------

def sha256_of(pfs, path: str, size: int) -> str:
    h = hashlib.sha256()
    off = 0
    while off < size:
        chunk = pfs.read(path, off, min(READ_CHUNK, size - off))
        if not chunk:
            break  # short file: the digest will differ, which reports it
        h.update(chunk)
        off += len(chunk)
    return h.hexdigest()


def _entry(path, ftype, mode, mtime_s, size, nlinks, ino, target, digest):
    """One manifest-shaped entry; the fields present depend on the type, as in NAME.json."""
    e = {"path": path, "type": ftype, "mode": mode & 0o7777, "mtime": mtime_s}
    if ftype == "file":
        e["size"] = size
        e["sha256"] = digest()
        if nlinks > 1:
            e["nlinks"] = nlinks
            e["link_group"] = ino  # only the partition matters, see compare_trees
    elif ftype == "symlink":
        e["target"] = target()
        e["size"] = size
    return e


def tree_from_volume(pfs) -> list[dict]:
    """Every path below the root of a live pyh2 PFS, shaped like a NAME.json tree."""
    out = []
    for dirpath, dirnames, filenames in pfs.walk("/"):
        for n in sorted(dirnames) + sorted(filenames):
            p = dirpath.rstrip("/") + "/" + n
            st = pfs.stat(p)
            out.append(_entry(p, st.type, st.mode, st.mtime_us // 1_000_000, st.size,
                              st.nlinks, st.inum, lambda: pfs.readlink(p),
                              lambda: sha256_of(pfs, p, st.size)))
    return out


_S_TYPES = {statmod.S_IFREG: "file", statmod.S_IFDIR: "dir", statmod.S_IFLNK: "symlink",
            statmod.S_IFIFO: "fifo", statmod.S_IFCHR: "cdev", statmod.S_IFBLK: "bdev",
            statmod.S_IFSOCK: "socket"}


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(READ_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def tree_from_dir(root) -> list[dict]:
    """The same shape for a host directory (e.g. what `pyh2 export` wrote)."""
    root = Path(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in sorted(dirnames) + sorted(filenames):
            full = Path(dirpath) / n
            st = os.lstat(full)
            rel = "/" + full.relative_to(root).as_posix()
            out.append(_entry(rel, _S_TYPES.get(statmod.S_IFMT(st.st_mode), "?"), st.st_mode,
                              st.st_mtime_ns // 1_000_000_000, st.st_size, st.st_nlink,
                              st.st_ino, lambda: os.readlink(full),
                              lambda: _file_sha256(full)))
    return out


def _link_partition(entries) -> dict:
    """path -> frozenset of paths sharing its link_group."""
    groups = {}
    for e in entries:
        if "link_group" in e:
            groups.setdefault(e["link_group"], set()).add(e["path"])
    return {p: frozenset(g) for g in groups.values() for p in g}


def compare_trees(expected: list[dict], actual: list[dict]) -> list[str]:
    """Differences as readable lines; [] means equal. link_group numbers are compared as
    a partition (which paths share an inode), not as values."""
    exp = {e["path"]: e for e in expected}
    act = {e["path"]: e for e in actual}
    diffs = [f"missing: {p}" for p in sorted(exp.keys() - act.keys())]
    diffs += [f"unexpected: {p}" for p in sorted(act.keys() - exp.keys())]
    for p in sorted(exp.keys() & act.keys()):
        a, b = exp[p], act[p]
        for k in sorted((a.keys() | b.keys()) - {"link_group"}):
            if a.get(k) != b.get(k):
                diffs.append(f"{p}: {k} expected {a.get(k)!r}, got {b.get(k)!r}")
    pe, pa = _link_partition(expected), _link_partition(actual)
    for p in sorted(pe.keys() | pa.keys()):
        if pe.get(p, {p}) != pa.get(p, {p}):
            diffs.append(f"{p}: hardlinked with {sorted(pe.get(p, {p}))}, "
                         f"got {sorted(pa.get(p, {p}))}")
    return diffs


def diff_pfs(name: str, label: str, pfs) -> list[str]:
    """Differences between a live PFS and what the reference image NAME holds for label."""
    return compare_trees(expected_tree(name, label), tree_from_volume(pfs))


def read_all(vol) -> int:
    """Walk and read every PFS of an open volume; returns the number of entries.
    Used to prove a damaged image fails cleanly (an H2Error) instead of crashing."""
    return sum(len(tree_from_volume(vol.pfs(p.label))) for p in vol.pfs_list())
