"""Operations of the torture runs: plain tuples (JSON-able, so a failing sequence can be
printed, saved and replayed), generated from a seeded random stream against the model of
the tree, and checked for applicability against the model (a shrunk sequence drops ops
whose objects no longer exist)."""
from __future__ import annotations

import errno
import random

from .model import Mirror
from pyh2 import H2Error

from .errors import WrongErrno
from .faults import FaultPlan

KiB = 1024
MAX_FILE = 768 * KiB                  # keeps a long run inside a small image
MAX_ENTRIES = 80                      # beyond this the generator prefers removals
BOUNDARIES = (1 * KiB, 16 * KiB, 64 * KiB)   # allocation granule, freemap block, buffer
LONG_NAMES = 0.1                      # share of names longer than a blockref holds

# ops that only the runner handles (they act on the volume, not on one path)
VOLUME_OPS = ("flush", "reopen", "snapshot", "bulkfree", "verify", "fault", "clear",
              "damage")
# ops that leave the model as it is
NEUTRAL_OPS = VOLUME_OPS + ("expect", "read")


def payload(dseed: int, size: int) -> bytes:
    """Deterministic data: 0 zeros (to become holes), 1 mod 3 compressible, else random."""
    if dseed == 0:
        return bytes(size)
    r = random.Random(dseed)
    if dseed % 3 == 1:
        unit = r.randbytes(r.randint(1, 64))
        return (unit * (size // len(unit) + 1))[:size]
    return r.randbytes(size)


def _name(r: random.Random, prefix: str) -> str:
    if r.random() < LONG_NAMES:       # long names live in a dirent block, not the bref
        return prefix + "".join(r.choice("abcdefghijklmnop") for _ in range(r.randint(20, 200)))
    return f"{prefix}{r.randrange(1000)}"


class Generator:
    """next_op(model) -> an op valid against the model's current tree."""

    WEIGHTS = {"create": 12, "write": 22, "read": 6, "truncate": 6, "mkdir": 5, "rmdir": 3,
               "unlink": 6, "rename": 9, "link": 4, "symlink": 4, "mkfifo": 1, "chmod": 3,
               "chown": 2, "utime": 2, "expect": 4, "flush": 4, "reopen": 0.7,
               "snapshot": 0.4, "bulkfree": 0.7}

    def __init__(self, seed: int, weights: dict | None = None, fault_nodes: int = 0,
                 root: str = "/", spare: int | None = None):
        """weights: overrides of WEIGHTS (0 turns an op off); fault_nodes: the run's node
        count when device faults are wanted, else 0; root: the directory the ops stay in;
        spare: a node never to fault."""
        self.r = random.Random(seed)
        self.root = root
        self.faults = FaultPlan(seed ^ 0x5EED, fault_nodes, spare=spare) if fault_nodes else None
        w = dict(self.WEIGHTS, **(weights or {}))
        self.kinds = [k for k in w if w[k] > 0]
        self.weights = [w[k] for k in self.kinds]
        self.snapshots = 0

    @classmethod
    def for_run(cls, cfg, weights: dict | None = None) -> "Generator":
        """The op stream of a run with Config cfg: faults (cfg.faults) on a minority of
        its nodes, never on node 0 when the crash engine watches it."""
        return cls(cfg.seed, weights, fault_nodes=cfg.nodes if cfg.faults else 0,
                   spare=0 if cfg.crash else None)

    # ----------------------------------------------------------- picking
    def _entries(self, model):
        files, dirs, others = [], [self.root], []
        for p, n in model.walk():
            if not p.startswith(self.root.rstrip("/") + "/"):
                continue
            (files if n.type == "file" else dirs if n.type == "dir" else others).append(p)
        return files, dirs, others

    def _new_path(self, model, dirs, prefix):
        for _ in range(8):
            d = self.r.choice(dirs)
            p = d.rstrip("/") + "/" + _name(self.r, prefix)
            if not model.exists(p):
                return p
        return None

    def _offset_size(self, cur: int) -> tuple[int, int]:
        r = self.r
        b = r.choice(BOUNDARIES)
        off = r.choice([0, r.randrange(cur + 1), cur, cur + r.randrange(1, 200 * KiB),
                        b * r.randrange(1, 8) + r.choice((-1, 0, 1)) * r.randrange(0, 300)])
        size = r.choice([r.randint(1, 64), r.randint(100, 4000), 64 * KiB,
                         b + r.choice((-1, 0, 1)) * r.randrange(0, 300),
                         r.randint(1, 150 * KiB)])
        off = max(0, min(off, MAX_FILE - 1))
        return off, max(1, min(size, MAX_FILE - off))

    def _dseed(self):
        return 0 if self.r.random() < 0.1 else self.r.randrange(1, 1 << 30)

    # ----------------------------------------------------------- one op
    def next_op(self, model) -> tuple:
        fault = self.faults.next_op() if self.faults else None
        if fault:
            return fault
        files, dirs, others = self._entries(model)
        crowded = len(files) + len(dirs) + len(others) > MAX_ENTRIES
        for _ in range(50):
            kind = self.r.choices(self.kinds, self.weights)[0]
            if crowded and kind in ("create", "mkdir", "symlink", "mkfifo", "link"):
                kind = self.r.choice(("unlink", "rmdir"))
            op = getattr(self, "_" + kind)(model, files, dirs, others)
            if op is not None:
                return op
        return ("flush",)

    def _create(self, model, files, dirs, others):
        p = self._new_path(model, dirs, "f")
        if p:
            size = self.r.choice([0, self.r.randint(1, 512), self.r.randint(1, 100 * KiB)])
            return ("create", p, size, self._dseed(), self.r.choice((0o644, 0o600, 0o755)))

    def _write(self, model, files, dirs, others):
        if files:
            p = self.r.choice(files)
            off, size = self._offset_size(model.node(p).size)
            return ("write", p, off, size, self._dseed())

    def _read(self, model, files, dirs, others):
        """A partial read (across holes, block boundaries, past the end)."""
        if files:
            p = self.r.choice(files)
            off, size = self._offset_size(model.node(p).size)
            return ("read", p, off, size)

    def _truncate(self, model, files, dirs, others):
        if files:
            p = self.r.choice(files)
            cur = model.node(p).size
            b = self.r.choice(BOUNDARIES)
            size = self.r.choice([0, self.r.randrange(cur + 1),
                                  cur + self.r.randrange(1, 100 * KiB),
                                  b * self.r.randrange(1, 6) + self.r.choice((-1, 0, 1))])
            return ("truncate", p, max(0, min(size, MAX_FILE)))

    def _mkdir(self, model, files, dirs, others):
        p = self._new_path(model, dirs, "d")
        if p and p.count("/") <= 6:
            return ("mkdir", p, self.r.choice((0o755, 0o700, 0o1777)))

    def _rmdir(self, model, files, dirs, others):
        empty = [d for d in dirs[1:] if not model.node(d).children]
        if empty:
            return ("rmdir", self.r.choice(empty))

    def _unlink(self, model, files, dirs, others):
        if files or others:
            return ("unlink", self.r.choice(files + others))

    def _rename(self, model, files, dirs, others):
        r = self.r
        src = r.choice(files + others + dirs[1:]) if len(files + others + dirs) > 1 else None
        if src is None:
            return None
        n = model.node(src)
        if r.random() < 0.3:              # over an existing entry of a compatible type
            if n.type == "dir":
                cands = [d for d in dirs[1:] if not model.node(d).children
                         and not (d + "/").startswith(src + "/")]
            else:
                cands = [p for p in files + others if p != src]
            if cands:
                return ("rename", src, r.choice(cands))
        tdirs = [d for d in dirs if n.type != "dir" or not (d + "/").startswith(src + "/")]
        same = src.rpartition("/")[0] or "/"
        d = same if r.random() < 0.4 else r.choice(tdirs)
        dst = d.rstrip("/") + "/" + _name(r, src.rpartition("/")[2][:1])
        if not model.exists(dst):
            return ("rename", src, dst)

    def _link(self, model, files, dirs, others):
        if files:
            dst = self._new_path(model, dirs, "h")
            if dst:
                return ("link", self.r.choice(files), dst)

    def _symlink(self, model, files, dirs, others):
        p = self._new_path(model, dirs, "s")
        if p:
            n = self.r.choice([1, 20, 63, 64, 65, 200, 1000])   # embedded, or a data block
            return ("symlink", "t" * (n - 1) + "x", p)

    def _mkfifo(self, model, files, dirs, others):
        p = self._new_path(model, dirs, "p")
        if p:
            return ("mkfifo", p, self.r.choice((0o644, 0o600)))

    def _chmod(self, model, files, dirs, others):
        pool = files + dirs[1:]
        if pool:
            return ("chmod", self.r.choice(pool),
                    self.r.choice((0o600, 0o644, 0o755, 0o4755, 0o1777)))

    def _chown(self, model, files, dirs, others):
        pool = files + dirs[1:] + others
        if pool:
            return ("chown", self.r.choice(pool), self.r.randrange(70000), self.r.randrange(70000))

    def _utime(self, model, files, dirs, others):
        pool = files + dirs[1:] + others
        if pool:
            return ("utime", self.r.choice(pool), self.r.randrange(0, 2_000_000_000) * 1_000_000)

    def _expect(self, model, files, dirs, others):
        """An op the filesystem must refuse, with its errno; the tree stays unchanged."""
        r = self.r
        choices = [("ENOENT", ("unlink", r.choice(dirs).rstrip("/") + "/nonexistent"))]
        if files:
            choices += [("EEXIST", ("create", r.choice(files), 0, 0, 0o644)),
                        ("ENOTDIR", ("rmdir", r.choice(files)))]
        if len(dirs) > 1:
            d = r.choice(dirs[1:])
            choices += [("EEXIST", ("mkdir", d, 0o755)), ("EISDIR", ("unlink", d)),
                        ("EINVAL", ("rename", d, d + "/into-itself"))]
            if model.node(d).children:
                choices.append(("ENOTEMPTY", ("rmdir", d)))
        name, op = r.choice(choices)
        return ("expect", name, op)

    def _flush(self, *_):
        return ("flush",)

    def _reopen(self, *_):
        return ("reopen",)

    def _bulkfree(self, *_):
        return ("bulkfree",)

    def _snapshot(self, *_):
        if self.snapshots < 3:
            self.snapshots += 1
            return ("snapshot", f"SNAP{self.snapshots}")


# ------------------------------------------------------------------ application

def applicable(model, op) -> bool:
    """Whether op is still valid against model (after the shrinker dropped earlier ops)."""
    kind = op[0]
    ex = model.exists

    def isdir(p):
        return ex(p) and model.node(p).type == "dir"

    def parent_ok(p):
        return isdir(p.rpartition("/")[0] or "/") and not ex(p)
    if kind in VOLUME_OPS:
        return True
    if kind == "expect":
        return _expect_holds(model, op[1], op[2])
    if kind in ("create", "mkdir", "mkfifo"):
        return parent_ok(op[1])
    if kind == "symlink":
        return parent_ok(op[2])
    if kind in ("write", "truncate", "read"):
        return ex(op[1]) and model.node(op[1]).type == "file"
    if kind == "rmdir":
        return isdir(op[1]) and op[1] != "/" and not model.node(op[1]).children
    if kind == "unlink":
        return ex(op[1]) and model.node(op[1]).type != "dir"
    if kind == "link":
        return ex(op[1]) and model.node(op[1]).type == "file" and parent_ok(op[2])
    if kind == "rename":
        src, dst = op[1], op[2]
        if not ex(src) or src == "/" or not isdir(dst.rpartition("/")[0] or "/"):
            return False
        n = model.node(src)
        if n.type == "dir" and (dst + "/").startswith(src + "/"):
            return False
        if ex(dst):
            t = model.node(dst)
            return (t.type == "dir") == (n.type == "dir") and not (t.type == "dir" and t.children)
        return True
    if kind in ("chmod", "chown", "utime"):
        return ex(op[1]) and op[1] != "/"
    raise ValueError(f"unknown op {op!r}")


def applied(ops, model) -> list:
    """The ops of a sequence a replay applies (the others no longer apply and are skipped);
    model: a fresh Model, run through the sequence."""
    out = []
    for op in ops:
        if applicable(model, op):
            out.append(op)
            if op[0] not in NEUTRAL_OPS:
                _call(model, op)
    return out


def _expect_holds(model, name, sub) -> bool:
    kind, p = sub[0], sub[1]
    ex = model.exists
    node = model.node(p) if ex(p) else None
    if name == "EEXIST":
        return node is not None
    if name == "ENOTDIR":
        return node is not None and node.type != "dir"
    if name == "EISDIR":
        return node is not None and node.type == "dir"
    if name == "ENOTEMPTY":
        return node is not None and node.type == "dir" and bool(node.children)
    if name == "ENOENT":
        return node is None and ex(p.rpartition("/")[0] or "/")
    if name == "EINVAL":                 # a directory moved into itself
        return node is not None and node.type == "dir" and not ex(sub[2])
    return False


def apply_path_op(pfs, model, op):
    """Apply a path op to a pyh2.Pfs and to the model (an 'expect' op: to the Pfs only, which
    must fail with that errno). Raises AssertionError on a divergence."""
    kind = op[0]
    if kind == "expect":
        name, sub = op[1], op[2]
        try:
            _call(pfs, sub)
        except OSError as e:
            if e.errno == getattr(errno, name):
                return
            if isinstance(e, H2Error):      # the core's own: a device fault may explain it
                raise
            raise WrongErrno(f"expected {name}, got "
                             f"{errno.errorcode.get(e.errno, e.errno)}: {e}") from None
        raise WrongErrno(f"succeeded, expected {name}")
    if kind == "read":
        got = pfs.read(op[1], op[2], op[3])
        want = bytes(model.filedata(op[1])[op[2]:op[2] + op[3]])
        if got != want:
            at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                      min(len(got), len(want)))
            raise AssertionError(f"read {len(got)} bytes, expected {len(want)}, first "
                                 f"difference at file offset {op[2] + at}")
        return
    _call(Mirror(pfs, model), op)


def _call(target, op):
    kind = op[0]
    if kind == "create":
        target.create(op[1], payload(op[3], op[2]), mode=op[4])
    elif kind == "write":
        target.write(op[1], payload(op[4], op[3]), op[2])
    elif kind in ("mkdir", "mkfifo"):
        getattr(target, kind)(op[1], mode=op[2])
    elif kind in ("truncate", "rename", "link", "symlink", "chmod", "utime"):
        getattr(target, kind)(*op[1:])
    elif kind == "chown":
        target.chown(op[1], op[2], op[3])
    elif kind in ("unlink", "rmdir"):
        getattr(target, kind)(op[1])
    else:
        raise ValueError(f"not a path op: {op!r}")
