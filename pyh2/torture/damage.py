"""Damage at rest: blocks of a cluster's nodes overwritten on their media, on the run's
faulty minority of nodes (several, from five nodes up) at different places, so every
element keeps good copies on a quorum. Reads must still be exact (self-heal on read serves
a good copy and rewrites the bad one at the next flush); a modification of an element a
node cannot read fails that node, which its sync thread brings back; at the end a scrub
must leave every node exact and fsck clean.

A place is a block of the tree, named by its path of (type, key, keybits) from the volume
root; a node's damage never shares a path, or a path prefix, with another node's. Where two
nodes lay their indirect blocks out differently (after a resync) one element may still be
unreadable on both: the undamaged quorum serves it. The LOCAL PFS, which no node takes from
another, is left alone."""
from __future__ import annotations

import os
import random

import pyh2

from .volset import locate

MEDIA = ("inode", "indirect", "data", "dirent")
SPOTS = (1, 3)                         # places damaged on each node, at least and at most
SMASH = 32                             # bytes overwritten in a damaged block


def _places(image) -> list[tuple[tuple, int, int]]:
    """(element path, media offset, bytes) of every block the node's tree has on media
    (the LOCAL PFS excluded)."""
    out, stack, skip = [], [], None

    def visit(depth, bref, data, error):
        nonlocal skip
        del stack[depth:]
        stack.append((bref["type"], bref["key"], bref["keybits"]))
        if skip is not None and depth > skip:
            return
        skip = None
        if bref["type"] == "inode" and data and data[256:256 + 6] == b"LOCAL\0":
            skip = depth
            return
        if bref["type"] in MEDIA and bref["bytes"]:
            out.append((tuple(stack), bref["data_off"], bref["bytes"]))

    with pyh2.open(image) as vol:
        _, errors = vol.device.walk_zone(vol.best_zone, False, visit)
    if errors:
        raise pyh2.H2Error(5, f"{image}: not clean before damage: {errors[0]}")
    return out


def _overlaps(path: tuple, taken: list[tuple]) -> bool:
    return any(path[:len(t)] == t or t[:len(path)] == path for t in taken)


def plan(images, seed: int, nodes) -> dict[int, list[tuple[int, int]]]:
    """{node: [(offset, bytes)]}: the places to damage on each of nodes."""
    r = random.Random(seed)
    taken: list[tuple] = []
    out = {}
    for i in nodes:
        places = _places(images[i])
        r.shuffle(places)
        mine, want = [], r.randint(*SPOTS)
        for path, off, size in places:
            if len(mine) == want:
                break
            if not _overlaps(path, taken):
                mine.append((path, off, size))
        taken += [p for p, _, _ in mine]
        out[i] = [(off, size) for _, off, size in mine]
    return out


def apply(vols, spots: list[tuple[int, int]], seed: int):
    """Overwrite SMASH bytes inside each block (the node, its volume files vols, is
    closed)."""
    r = random.Random(seed)
    for off, size in spots:
        path, at = locate(vols, off + r.randrange(max(1, size - SMASH)))
        fd = os.open(path, os.O_RDWR)
        try:
            os.pwrite(fd, r.randbytes(min(SMASH, size)), at)
        finally:
            os.close(fd)
