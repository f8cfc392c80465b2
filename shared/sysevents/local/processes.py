"""Starting and stopping the local stack's processes: ports handed out once, readiness checks, stop by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def _die_with_parent(argv: list[str]) -> list[str]:
    """Have the child get SIGTERM when the process that started it dies (Linux `setpriv --pdeathsig`,
    kept across exec), so a test run or `make dev` killed without cleaning up leaves no emulator behind.
    Where setpriv is missing, the command runs as is and `stop()` remains the way to end it."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


def _unbound_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class PortAllocator:
    """Ports on 127.0.0.1 for one stack's listeners: each unbound when handed out, none handed out twice.

    The OS is asked for an unbound port (bind to port 0, then close); a port this allocator gave out before
    is skipped, since its listener may not have bound it yet. Another process can still take a port before
    our child binds it; the child then fails to bind and exits.
    """

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.handed_out: set[int] = set()
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            for _ in range(1000):
                port = _unbound_port(self.host)
                if port not in self.handed_out:
                    self.handed_out.add(port)
                    return port
        raise RuntimeError(f"no unbound port on {self.host} that this allocator has not handed out already")


_PORTS = PortAllocator()


def free_port() -> int:
    """A port nobody is listening on now, on 127.0.0.1, never the same twice in this process. A stack takes
    its ports from its own `PortAllocator`."""
    return _PORTS.take()


class StartFailed(RuntimeError):
    pass


@dataclass
class Process:
    """A child process we started; `stop` ends exactly it (and its process group), by PID."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    ready: Callable[[], bool] | None = None
    popen: subprocess.Popen | None = None

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child owns it
        self.popen = subprocess.Popen(
            _die_with_parent(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, timeout: float) -> None:
        assert self.ready is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise StartFailed(
                    f"{self.name} exited with code {self.popen.returncode}; log "
                    f"{self.log_path}:\n{self.log_tail()}"
                )
            if self.ready():
                return
            time.sleep(0.1)
        raise StartFailed(
            f"{self.name} was not ready within {timeout:.0f}s; log {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        p = self.popen
        if p is None or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)  # its own session: the group is ours alone
        except ProcessLookupError:
            return
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout)


def http_ok(url: str, expect: bytes | None = None) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - local URL we built
                return expect is None or expect in resp.read()
        except urllib.error.HTTPError:
            return expect is None  # a server answering at all is up
        except (OSError, urllib.error.URLError):
            return False

    return check


def log_contains(path: Path, text: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return text in path.read_text(errors="replace")
        except OSError:
            return False

    return check
