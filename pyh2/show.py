"""`pyh2 show`: a topology dump of the whole volume, in the spirit of
`hammer2 show`: every blockref with its tids, check and, for inodes and
directory entries, what they hold."""
from __future__ import annotations

import errno
import time

from . import _core
from .volume import H2Error

INDENT = "  "


def _tstamp(us: int) -> str:
    return time.strftime("%d-%b-%Y %H:%M:%S", time.gmtime(us // 1_000_000))


def _dirent_name(bref: dict, data: bytes | None) -> str:
    d = _core.dirent_head(bref["raw"])
    raw = bref["raw"][64:64 + d["namlen"]] if d["namlen"] <= 64 else (data or b"")[:d["namlen"]]
    return f'dirent "{raw.decode("utf-8", "replace")}" inum=0x{d["inum"]:x} type={d["type"]}'


def _inode_lines(data: bytes) -> list[str]:
    m = _core.inode_meta_from_bytes(data)
    name = data[256:256 + min(m["name_len"], 256)].decode("utf-8", "replace")
    lines = [
        f'filename "{name}"',
        f'inum 0x{m["inum"]:016x} iparent 0x{m["iparent"]:016x} type {m["h2type"]} '
        f'mode {m["mode"]:o} nlinks {m["nlinks"]} size {m["size"]}'
        + (" (embedded data)" if m["op_flags"] & 1 else ""),
        f'uid {m["uid"]} gid {m["gid"]} mtime {_tstamp(m["mtime_us"])} '
        f'ctime {_tstamp(m["ctime_us"])}',
        f'comp_algo {m["comp_algo"]} check_algo {m["check_algo"]} op_flags 0x{m["op_flags"]:02x}',
    ]
    if m["op_flags"] & 0x02 or m["pfs_type"] == 0x08:
        lines.append(f'pfs_type {m["pfs_type"]} pfs_subtype {m["pfs_subtype"]} '
                     f'pfs_inum 0x{m["pfs_inum"]:x} pfs_clid {_core.uuid_str(m["pfs_clid"])}')
    return lines


def show(device: _core.Device, write, zone: int | None = None) -> list[str]:
    """Write the dump line by line; returns the errors met."""
    headers = device.volume_headers()
    zone = device.best_zone if zone is None else zone
    if zone >= len(headers):            # a damaged header of the volume is still shown
        raise H2Error(errno.EINVAL, f"{device.path}: no volume header zone {zone} (the "
                                    f"volume has zones 0 to {len(headers) - 1})")
    hdr = headers[zone]
    write(f"Volume header {zone}: mirror_tid={hdr['mirror_tid']:016x} "
          f"freemap_tid={hdr['freemap_tid']:016x} size={hdr['volu_size']}")
    errors = []

    def emit(depth, bref, data, error):
        pad = INDENT * depth
        write(f"{pad}{bref['type']:<13}{bref['data_off_raw']:016x} "
              f"{bref['key']:016x}/{bref['keybits']}")
        write(f"{pad}    mir={bref['mirror_tid']:016x} mod={bref['modify_tid']:016x} "
              f"lfcnt={bref['leaf_count']} meth={bref['methods']:02x} "
              f"check={_core.check_name(bref['check'])} comp={_core.comp_name(bref['comp'])}")
        if error:
            write(f"{pad}    ERROR {error}")
        elif bref["type"] == "inode" and data:
            for line in _inode_lines(data):
                write(f"{pad}    {line}")
        elif bref["type"] == "dirent":
            write(f"{pad}    {_dirent_name(bref, data)}")

    for freemap in (False, True):
        _, errs = device.walk_zone(zone, freemap, emit)
        errors += errs
    return errors
