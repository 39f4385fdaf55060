"""Where the commands' volumes come from: IMG[:PFS] specs (a path, a device URI, or a
cluster's nodes IMG1,IMG2,...) split and opened."""
from __future__ import annotations

import os
import sys

from .cluster import open_cluster
from .volume import Volume


def split_spec(spec: str) -> tuple[str, str]:
    """IMG[:PFS] or IMG1,IMG2,...[:PFS] (a cluster) -> (image(s), pfs label); a path
    that exists is never split, nor a device URI's own colons (nbd://HOST:PORT/EXPORT,
    nbd+unix:///EXPORT?socket=PATH, mem:NAME)."""
    if os.path.exists(spec) or ":" not in spec:
        return spec, "DATA"
    img, label = spec.rsplit(":", 1)
    if (any(c in label for c in "/?=") or img in ("mem", "nbd", "nbd+unix")
            or ("://" in img and "/" not in img.split("://", 1)[1])):
        return spec, "DATA"
    return img, label or "DATA"


def cluster_paths(img: str) -> list[str] | None:
    """The nodes of a cluster spec IMG1,IMG2,..., None for one image."""
    if "," not in img or os.path.exists(img):
        return None
    return [p for p in img.split(",") if p]


def open_volume(img: str, writable: bool = False, retry_max: float = 10.0) -> Volume:
    """One image, or a cluster spec opened as one volume (saying on
    stderr which nodes are out; retry_max: see open_cluster)."""
    paths = cluster_paths(img)
    if paths is None:
        return Volume(img, writable)
    vol = open_cluster(paths, writable, retry_max=retry_max)
    for n in vol.nodes():
        if n["state"] != "live":
            print(f"pyh2: warning: node {n['path']} is {n['state']}: {n['why']}",
                  file=sys.stderr)
    return vol
