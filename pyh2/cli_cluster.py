"""`pyh2 resync` and `pyh2 nodes`: cluster maintenance commands."""
from __future__ import annotations

import time

from .cluster import open_cluster
from .spec import cluster_paths, split_spec
from .volume import H2Error


def _paths(spec: str) -> list[str]:
    img, _ = split_spec(spec)
    paths = cluster_paths(img)
    if paths is None:
        raise H2Error(22, f"{spec}: not a cluster (IMG1,IMG2,...)")
    return paths


def node_line(n: dict) -> str:
    sync = n["sync"]
    line = f"{n['state']:<7} tid {n['mirror_tid']:<8} {n['path']}"
    if n["read_errors"]:
        line += f" ({n['read_errors']} read error(s), {n['healed']} healed)"
    if sync["running"]:
        line += (f" [syncing: {sync['done_elems']} element(s), {sync['done_bytes']} bytes "
                 f"done, at most {sync['left_elems']} element(s), {sync['left_bytes']} "
                 "bytes left]")
    if sync["last_error"]:
        line += f" [last sync: {sync['last_error']}]"
    return line + (f": {n['why']}" if n["state"] != "live" and n["why"] else "")


def cmd_nodes(args, out):
    with open_cluster(_paths(args.spec)) as vol:
        for n in vol.nodes():
            out(node_line(n))
    return 0


def cmd_resync(args, out):
    t = time.perf_counter()
    with open_cluster(_paths(args.spec), writable=True, sync=False) as vol:
        done = vol.resync()
        for path, st in done.items():
            out(f"{path}: {st['copied']} element(s) copied ({st['bytes']} data bytes), "
                f"{st['deleted']} deleted, {st['skipped']} unchanged subtree(s) skipped")
        lost = []
        if args.scrub:
            for path, st in vol.scrub().items():
                out(f"{path}: scrubbed, {st['repaired']} damaged element(s) replaced"
                    + (f", {st['unreadable']} unreadable on every node"
                       if st["unreadable"] else ""))
                lost += [f"{path}: unrecoverable: {x['path']}" for x in st["lost"]]
        for n in vol.nodes():
            out(node_line(n))
        left = [n for n in vol.nodes() if n["state"] != "live"]
    out(f"resynced {len(done)} node(s) in {time.perf_counter() - t:.2f}s")
    if lost:
        raise H2Error(5, "\n".join(lost))
    if left:
        raise H2Error(5, f"{len(left)} node(s) still out of the cluster: "
                         + "; ".join(n["why"] for n in left))
    return 0


def register(sub):
    p = sub.add_parser("resync", help="bring a cluster's stale nodes back (offline)")
    p.add_argument("spec", metavar="IMG1,IMG2,...")
    p.add_argument("--scrub", action="store_true",
                   help="then read every node back, replacing blocks that fail their check")
    p.set_defaults(func=cmd_resync)
    p = sub.add_parser("nodes", help="a cluster's nodes: live, stale or failed, and why")
    p.add_argument("spec", metavar="IMG1,IMG2,...")
    p.set_defaults(func=cmd_nodes)
