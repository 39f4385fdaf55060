"""Where the commands' volumes come from: IMG[:PFS] specs (a path, a device URI, a
multi-volume filesystem VOL0:VOL1:..., or a cluster's nodes IMG1,IMG2,...) split and
opened."""
from __future__ import annotations

import os
import sys

from .cluster import open_cluster
from .volume import Volume, split_volumes


def _is_label(part: str) -> bool:
    """What a PFS label after the last ':' looks like: not a path, URI or node list."""
    return bool(part) and not any(c in part for c in "/?=,") and not os.path.exists(part)


def split_spec(spec: str) -> tuple[str, str]:
    """IMG[:PFS] -> (image(s), pfs label). IMG is a path or device URI, VOL0:VOL1:...
    (the volumes of one filesystem, as DragonFly names them; VOL0:VOL1@PFS as its mount
    does) or IMG1,IMG2,... (a cluster, each node any of these). A path that exists is
    never split, nor a device URI's own colons (nbd://HOST:PORT/EXPORT, mem:NAME)."""
    if os.path.exists(spec):
        return spec, "DATA"
    img, at, label = spec.rpartition("@")
    if at and _is_label(label) and ":" not in label:
        return img, label
    parts = split_volumes(spec)
    if len(parts) > 1 and _is_label(parts[-1]):
        return spec[:-len(parts[-1]) - 1], parts[-1]
    return spec, "DATA"


def cluster_paths(img: str) -> list[str] | None:
    """The nodes of a cluster spec IMG1,IMG2,..., None for one image."""
    if "," not in img or os.path.exists(img):
        return None
    return [p for p in img.split(",") if p]


def open_volume(img: str, writable: bool = False, retry_max: float = 10.0) -> Volume:
    """One image (or the volumes of one filesystem), or a cluster spec opened as one
    volume (saying on stderr which nodes are out; retry_max: see open_cluster)."""
    paths = cluster_paths(img)
    if paths is None:
        return Volume(img, writable)
    vol = open_cluster(paths, writable, retry_max=retry_max)
    for n in vol.nodes():
        if n["state"] != "live":
            print(f"pyh2: warning: node {n['path']} is {n['state']}: {n['why']}",
                  file=sys.stderr)
    return vol
