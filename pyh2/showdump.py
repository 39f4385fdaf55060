"""Parse the real `hammer2 show` dump (NAME.show.txt.zst) into per-PFS path -> inode fields.

Why: the manifests' directory mtimes were taken from the source tree, and a few differ from what
makefs stored (e.g. basic's /times is 0 on media). The dump is the real tool's view of the image.
Its layout: a blockref header line (`inode.3  <data_off> <key>/<keybits>`), continuation lines,
and `{` at the end of a line when the block has printed content, closed by `} (inode.3 ...)`.
"""
import calendar
import re
import subprocess
import time

_HEADER = re.compile(r"^\s*([a-z_]+)\.\d+\s+[0-9a-f]{16}\s")
_FIELD = re.compile(r"^\s*(filename|inum|mtime|type)\s+(.*?)\s*$")
_CLOSE = re.compile(r"^\s*\} \(")


def _mtime(text):
    return calendar.timegm(time.strptime(text, "%d-%b-%Y %H:%M:%S"))


def parse(text: str) -> dict:
    """{pfs label: {path: {'inum', 'mtime', 'type'}}} for every path reachable by dirents."""
    root = {"kind": "root", "f": {}, "kids": []}
    stack, pending = [root], None
    for line in text.splitlines():
        if m := _HEADER.match(line):
            pending = {"kind": m.group(1), "f": {}, "kids": []}
        elif _CLOSE.match(line):
            stack.pop()
            continue
        elif m := _FIELD.match(line):
            stack[-1]["f"].setdefault(m.group(1), m.group(2))
            continue
        if pending and line.rstrip().endswith("{"):
            stack[-1]["kids"].append(pending)
            stack.append(pending)
            pending = None
    return {_unquote(pfs["f"]["filename"]): _paths(pfs)
            for vol in root["kids"] for suproot in _inodes_below(vol)
            for pfs in _inodes_below(suproot)}


def _inodes_below(node):
    """Nearest inode blocks under node (through indirect blocks, as with >4 PFSes)."""
    for k in node["kids"]:
        if k["kind"] == "inode":
            yield k
        else:
            yield from _inodes_below(k)


def _unquote(s):
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] == '"' else s


def _paths(pfs_inode):
    inodes, dirents = {}, {}

    def visit(node, owner):
        f = node["f"]
        if node["kind"] == "inode" and "inum" in f:
            owner = int(f["inum"], 16)
            inodes[owner] = {"inum": owner, "mtime": _mtime(f["mtime"]), "type": f.get("type")}
        elif node["kind"] == "dirent" and "inum" in f:
            dirents.setdefault(owner, []).append((_unquote(f["filename"]), int(f["inum"], 16)))
        for k in node["kids"]:
            visit(k, owner)

    visit(pfs_inode, None)
    paths, todo = {}, [("", int(pfs_inode["f"]["inum"], 16))]
    while todo:
        prefix, inum = todo.pop()
        for name, child in dirents.get(inum, ()):
            if child in inodes:
                paths[prefix + "/" + name] = inodes[child]
                todo.append((prefix + "/" + name, child))
    return paths


def load(path) -> dict:
    text = subprocess.run(["zstd", "-d", "-q", "-c", str(path)], check=True,
                          capture_output=True).stdout.decode("utf-8", "surrogateescape")
    return parse(text)
