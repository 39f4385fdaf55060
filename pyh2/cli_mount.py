"""`pyh2 mount` and `pyh2 umount`."""
from __future__ import annotations

import os

from . import cli_args
from . import mount as _mount


def cmd_mount(args, out):
    images, label = _mount.parse_spec(args.spec)
    opts = dict(readonly=args.ro, debug=args.debug, flush_secs=args.flush_interval,
                options=",".join(args.options), retry_max=args.retry_max)
    if args.daemon:
        pid = _mount.daemon(images, label, args.mountpoint, threads=args.threads,
                            log=args.log, **opts)
        out(str(pid))
        return 0
    m = _mount.Mount(images, label, args.mountpoint, **opts)
    _mount.serve_until_unmounted(m, args.threads)
    return 0


def cmd_umount(args, out):
    _mount.umount(args.mountpoint, lazy=args.lazy)
    return 0


def register(sub):
    p = sub.add_parser("mount", help="mount a PFS (of an image or a cluster) through FUSE")
    p.add_argument("spec", metavar="IMG[,IMG...][:PFS]")
    p.add_argument("mountpoint")
    p.add_argument("--ro", action="store_true", help="read-only: nothing is written")
    p.add_argument("-d", dest="daemon", action="store_true",
                   help="run as a daemon; prints its pid once mounted")
    p.add_argument("--log", default=os.devnull, help="the daemon's stderr (default: none)")
    p.add_argument("-o", dest="options", action="append", default=[], metavar="OPT[,OPT]",
                   help="more FUSE mount options (allow_other, ...)")
    p.add_argument("--debug", action="store_true", help="trace FUSE requests on stderr")
    p.add_argument("--threads", type=cli_args.at_least(1), default=8,
                   help="request workers at most")
    p.add_argument("--flush-interval", type=cli_args.at_least(0), default=5, metavar="SECS",
                   help="commit modifications this often (0: only on fsync/unmount)")
    p.add_argument("--retry-max", type=cli_args.at_least(1), default=10, metavar="SECS",
                   help="a cluster node that cannot come back (its NBD server gone) is "
                        "retried after 250 ms, the wait doubling up to this")
    p.set_defaults(func=cmd_mount)
    p = sub.add_parser("umount", help="flush and detach a pyh2 mount")
    p.add_argument("mountpoint")
    p.add_argument("-l", dest="lazy", action="store_true", help="detach even if busy")
    p.set_defaults(func=cmd_umount)
