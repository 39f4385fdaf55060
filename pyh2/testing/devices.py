"""Control plane for the device backends: image files, loop devices, NBD servers.

Every class is a context manager that undoes what it set up even when the block
inside fails or is interrupted: loop devices are detached, servers (started by
us, tracked by pid) are stopped, sockets removed.  Each exposes `.uri`, the
device URI `pyh2.open` accepts.  The pytest fixtures built on them are in
pyh2.testing.plugin.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
import warnings
from pathlib import Path

START_TIMEOUT = 10.0            # seconds for a server's socket to appear


class DeviceUnavailable(RuntimeError):
    """This machine cannot provide the device; str(e) is the skip reason."""


class ImageFile:
    """A sparse image file of `size` bytes (removed on exit unless `keep`)."""

    def __init__(self, path, size: int, keep: bool = False):
        self.path = Path(path)
        self.size = size
        self.keep = keep

    @property
    def uri(self) -> str:
        return str(self.path)

    def __enter__(self):
        with open(self.path, "wb") as f:
            f.truncate(self.size)
        return self

    def __exit__(self, *exc):
        if not self.keep:
            self.path.unlink(missing_ok=True)


class MemDevice:
    """A process-wide memory device `mem:NAME` (pyh2's memory backend)."""

    def __init__(self, size: int, name: str | None = None):
        self.size = size
        self.name = name or f"t{uuid.uuid4().hex[:12]}"

    @property
    def uri(self) -> str:
        return f"mem:{self.name}"

    def __enter__(self):
        from pyh2 import _core
        _core.mem_create(self.name, self.size)
        return self

    def __exit__(self, *exc):
        from pyh2 import _core
        _core.mem_delete(self.name)


def loop_unavailable() -> str | None:
    """Why loop devices cannot be used here, or None."""
    if not shutil.which("losetup"):
        return "losetup is not installed"
    if not os.path.exists("/dev/loop-control"):
        return "no /dev/loop-control (loop module absent)"
    if os.geteuid() != 0:
        return "loop devices need root"
    return None


class LoopDevice:
    """`losetup --find --show FILE` (read-only, or with another logical sector size
    on request); detached on exit."""

    def __init__(self, backing, read_only: bool = False, sector_size: int | None = None):
        self.backing = Path(backing)
        self.read_only = read_only
        self.sector_size = sector_size
        self.path: str | None = None

    @property
    def uri(self) -> str:
        return self.path

    def __enter__(self):
        reason = loop_unavailable()
        if reason:
            raise DeviceUnavailable(reason)
        cmd = ["losetup", "--find", "--show"] + (["--read-only"] if self.read_only else [])
        if self.sector_size:
            cmd.append(f"--sector-size={self.sector_size}")
        proc = subprocess.run(cmd + [str(self.backing)], capture_output=True, text=True,
                              timeout=30)
        if proc.returncode:
            raise DeviceUnavailable(f"losetup failed: {proc.stderr.strip()}")
        self.path = proc.stdout.strip()
        return self

    def detach(self):
        if self.path is None:
            return
        # udev or a closing opener may hold the device for a moment
        for _ in range(50):
            proc = subprocess.run(["losetup", "-d", self.path], capture_output=True,
                                  text=True, timeout=30)
            if proc.returncode == 0:
                break
            time.sleep(0.1)
        else:
            warnings.warn(f"{self.path} left attached: {proc.stderr.strip()}")
        self.path = None

    def __exit__(self, *exc):
        self.detach()


_prctl = ctypes.CDLL(None, use_errno=True).prctl   # looked up here, not in a forked child


def _die_with_parent():
    """In the child: SIGKILL when the parent dies, so a killed test run leaves no
    server behind (qemu-nbd has no --exit-with-parent)."""
    _prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NbdServer:
    """An NBD server on a unix socket in a private temporary directory.

    server="nbdkit" (default): `plugin` "file" (serving `target`, a path) or
    "memory" (`size` bytes), with nbdkit `filters` given as
    {"error": {"error-pread": "EIO", ...}, "delay": {"delay-read": "1"}, ...}.
    `export`, when set, is the only export name accepted.  server="qemu-nbd"
    serves `target` with qemu-nbd (export name `export` or "").  tcp=True listens
    on a free port of 127.0.0.1 instead (`.uri` is then nbd://127.0.0.1:PORT/EXPORT).
    """

    def __init__(self, target=None, *, plugin: str = "file", size: int | None = None,
                 export: str | None = None, filters: dict | None = None,
                 read_only: bool = False, server: str = "nbdkit", timeout: float | None = None,
                 tcp: bool = False):
        self.target = target
        self.plugin = plugin
        self.size = size
        self.export = export
        self.filters = filters or {}
        self.read_only = read_only
        self.server = server
        self.timeout = timeout
        self.port = _free_port() if tcp else None
        self.proc: subprocess.Popen | None = None
        self.tmpdir: str | None = None

    @property
    def sock(self) -> str:
        return os.path.join(self.tmpdir, "nbd.sock")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def uri_for(self, export: str | None = None, timeout: float | None = None) -> str:
        export = (self.export or "") if export is None else export
        timeout = self.timeout if timeout is None else timeout
        if self.port:
            return f"nbd://127.0.0.1:{self.port}/{export}" + (f"?timeout={timeout}" if timeout else "")
        extra = f"&timeout={timeout}" if timeout else ""
        return f"nbd+unix:///{export}?socket={self.sock}{extra}"

    @property
    def uri(self) -> str:
        return self.uri_for()

    def _command(self) -> list[str]:
        if self.server == "qemu-nbd":
            listen = (["-b", "127.0.0.1", "-p", str(self.port)] if self.port
                      else ["-k", self.sock])
            return (["qemu-nbd", "--persistent", "--shared=16", "-f", "raw", *listen,
                     "-x", self.export or ""] + (["--read-only"] if self.read_only else [])
                    + [str(self.target)])
        listen = ["-i", "127.0.0.1", "-p", str(self.port)] if self.port else ["--unix", self.sock]
        cmd = ["nbdkit", "--foreground", "--exit-with-parent", *listen]
        if self.read_only:
            cmd.append("--readonly")
        filters = dict(self.filters)
        if self.export is not None:
            filters.setdefault("exportname", {}).update(
                {"exportname": self.export, "exportname-strict": "true"})
        for name in filters:
            cmd.append(f"--filter={name}")
        if self.plugin == "file":
            cmd += ["file", str(self.target)]
        elif self.plugin == "memory":
            cmd += ["memory", str(self.size)]
        else:
            raise ValueError(f"unknown nbdkit plugin {self.plugin!r}")
        for params in filters.values():
            cmd += [f"{k}={v}" for k, v in params.items()]
        return cmd

    def start(self):
        """Start (or restart, on the same socket) the server."""
        self.stop()                     # a killed one: reap it, close its log
        if self.tmpdir is None:
            self.tmpdir = tempfile.mkdtemp(prefix="pyh2-nbd-")
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        exe = "qemu-nbd" if self.server == "qemu-nbd" else "nbdkit"
        if not shutil.which(exe):
            raise DeviceUnavailable(f"{exe} is not installed (run scripts/setup.sh)")
        self.log = open(os.path.join(self.tmpdir, "server.log"), "wb")
        self.proc = subprocess.Popen(self._command(), stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{exe} did not start: {self.server_log()}")
            time.sleep(0.02)
        return self

    def _listening(self) -> bool:
        # (a unix socket's file appears at bind(), before the server listens)
        family = socket.AF_INET if self.port else socket.AF_UNIX
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.connect(("127.0.0.1", self.port) if self.port else self.sock)
                return True
            except OSError:
                return False

    def server_log(self) -> str:
        try:
            return Path(self.tmpdir, "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def kill(self):
        """SIGKILL the server (a crash, as the client sees it)."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.kill()
            self.proc = None
            self.log.close()

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            if self.tmpdir:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
                self.tmpdir = None


def nbd_kernel_unavailable() -> str | None:
    """Why /dev/nbdN cannot be used here, or None."""
    if not os.path.exists("/sys/module/nbd") and not os.path.exists("/dev/nbd0"):
        return "the nbd kernel module is absent on this machine (no /dev/nbdN)"
    if not shutil.which("nbd-client"):
        return "nbd-client is not installed"
    return None


class NbdAttachment:
    """`nbd-client` attaching an NbdServer's export to /dev/nbdN (kernel NBD)."""

    def __init__(self, server: NbdServer, device: str = "/dev/nbd0"):
        self.server = server
        self.path = device
        self.attached = False

    @property
    def uri(self) -> str:
        return self.path

    def __enter__(self):
        reason = nbd_kernel_unavailable()
        if reason:
            raise DeviceUnavailable(reason)
        cmd = ["nbd-client", "-unix", self.server.sock, self.path]
        if self.server.export:
            cmd += ["-N", self.server.export]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if proc.returncode:
            raise DeviceUnavailable(f"nbd-client failed: {proc.stderr.strip()}")
        self.attached = True
        return self

    def __exit__(self, *exc):
        if self.attached:
            subprocess.run(["nbd-client", "-d", self.path], capture_output=True, timeout=30)
            self.attached = False
