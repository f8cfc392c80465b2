"""A real HTTP receiver for webhooks: records (and optionally prints) what it gets; scriptable replies."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self):
        return json.loads(self.body)


class Receiver:
    """Listens on 127.0.0.1:<free port>. `replies[path]` is a queue of status codes to answer before 200."""

    def __init__(self, on_receive: Callable[[Received], None] | None = None):
        self.received: list[Received] = []
        self.replies: dict[str, deque[int]] = defaultdict(deque)
        self._cond = threading.Condition()
        self._on_receive = on_receive
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with outer._cond:
                    queue = outer.replies.get(self.path)
                    status = queue.popleft() if queue else 200
                    if status < 300:
                        item = Received(self.path, dict(self.headers.items()), body, time.time())
                        outer.received.append(item)
                    outer._cond.notify_all()
                if status < 300 and outer._on_receive:
                    outer._on_receive(item)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="receiver", daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def at(self, path: str) -> list[Received]:
        with self._cond:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 30.0) -> list[Received]:
        """Wait until `path` has at least `count` deliveries; returns them (possibly fewer on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self.received if r.path == path]
                left = deadline - time.monotonic()
                if len(got) >= count or left <= 0:
                    return got
                self._cond.wait(left)
