"""Starting and stopping the local stack's processes: ports handed out once, readiness checks that see
a child's exit at once, stop by PID."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
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
    our child binds it: the child then fails to bind and exits, which `wait_all_ready` reports at once, and
    the functions' readiness check wants their own name in the answer, so a stranger is never taken for them.
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
    """A child exited or was not ready in time while the stack started; the message has its log tail."""


class ProcessExited(RuntimeError):
    """A child we started is no longer running; the message has its exit code and log tail."""


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

    def check_alive(self) -> None:
        """Raise ProcessExited (with the exit code and log tail) when the child is no longer running."""
        if self.popen is not None and self.popen.poll() is not None:
            raise ProcessExited(
                f"{self.name} exited with code {self.popen.returncode}; log {self.log_path}:\n{self.log_tail()}"
            )

    def is_ready(self) -> bool:
        """The readiness check answers yes and the child is still running (not some other process on its
        port, or a child that answered and then died)."""
        assert self.ready is not None
        return self.ready() and self.popen is not None and self.popen.poll() is None

    def wait_ready(self, timeout: float) -> None:
        wait_all_ready([self], time.monotonic() + timeout)

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


def wait_all_ready(pending: Iterable[Process], deadline: float, watch: Iterable[Process] = ()) -> None:
    """Wait until each of `pending` is ready, meanwhile checking every 0.05s that none of `pending` or
    `watch` (the other children started so far) has exited: an exit raises StartFailed at once, with the
    child's name, exit code and log tail. The readiness checks run side by side (one thread each, so a
    slow answer delays neither the others nor the exit checks). Past `deadline` (time.monotonic()),
    StartFailed names the children not ready yet, with their log tails."""
    pending = list(pending)
    watched = pending + [p for p in watch if all(p is not q for q in pending)]
    stop = threading.Event()
    ready = [threading.Event() for _ in pending]

    def poll(p: Process, done: threading.Event) -> None:
        while not stop.is_set():
            if p.is_ready():
                done.set()
                return
            stop.wait(0.1)

    for p, done in zip(pending, ready, strict=True):
        threading.Thread(target=poll, args=(p, done), name=f"ready-{p.name}", daemon=True).start()
    try:
        while True:
            for p in watched:
                try:
                    p.check_alive()
                except ProcessExited as exc:
                    raise StartFailed(str(exc)) from None
            if all(done.is_set() for done in ready):
                return
            if time.monotonic() >= deadline:
                late = [p for p, done in zip(pending, ready, strict=True) if not done.is_set()]
                raise StartFailed(
                    "not ready in time: "
                    + ", ".join(p.name for p in late)
                    + "".join(f"\n-- {p.name}, log {p.log_path}:\n{p.log_tail()}" for p in late)
                )
            time.sleep(0.05)
    finally:
        stop.set()


def http_ok(url: str, expect: bytes | None = None) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - local URL we built
                return expect is None or expect in resp.read()
        except urllib.error.HTTPError:
            return expect is None  # a server answering at all is up
        except (OSError, http.client.HTTPException):  # refused, reset, not HTTP
            return False

    return check


def log_contains(path: Path, text: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return text in path.read_text(errors="replace")
        except OSError:
            return False

    return check


def answers_as(url: str, function: str) -> Callable[[], bool]:
    """Ready when GET `url` answers with JSON whose "function" is `function` (each function's health
    answer names it): the function we started, not another process that holds the port."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - local URL we built
                body = json.loads(resp.read())
        except (OSError, http.client.HTTPException, ValueError):  # refused, an HTTP error, not HTTP/JSON
            return False
        return isinstance(body, dict) and body.get("function") == function

    return check
