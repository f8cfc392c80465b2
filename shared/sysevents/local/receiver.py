"""A real HTTP receiver for webhooks: records (and optionally prints) what it gets; scriptable replies."""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self):
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """A scripted answer: status, extra headers (e.g. Retry-After, Location), and a delay before it."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that says nothing when a client goes away."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client that went away (a keep-alive connection closed or reset between requests, a sender that
        timed out) is no error of the receiver's: nothing to print. Anything else is printed as usual."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class Receiver:
    """Listens on 127.0.0.1:<free port>. `replies[path]` is a queue of status codes (or `Reply`s) to answer
    before 200. `received` keeps the 2xx deliveries, `requests` every request with the status answered."""

    def __init__(self, on_receive: Callable[[Received], None] | None = None, port: int = 0):
        self.received: list[Received] = []
        self.replies: dict[str, deque[int | Reply]] = defaultdict(deque)
        self.requests: list[tuple[int, Received]] = []
        self.script: Callable[[Received], int | Reply | None] | None = (
            None  # answers by content, before replies
        )
        self._cond = threading.Condition()
        self._on_receive = on_receive
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out separately: no 40 ms delayed-ACK stall

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:  # the sender went away mid-body: no request, nothing recorded
                    self.close_connection = True
                    return
                with outer._cond:
                    item = Received(self.path, dict(self.headers.items()), body, time.time())
                    queue = outer.replies.get(self.path)
                    scripted = outer.script(item) if outer.script else None
                    reply = scripted if scripted is not None else queue.popleft() if queue else 200
                    reply = reply if isinstance(reply, Reply) else Reply(reply)
                    status = reply.status
                    outer.requests.append((status, item))
                    if status < 300:
                        outer.received.append(item)
                    outer._cond.notify_all()
                if status < 300 and outer._on_receive:
                    outer._on_receive(item)
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = QuietHTTPServer(("127.0.0.1", port), Handler)
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


class TokenBucket:
    """A receiver's own limit, as a `Receiver.script`: `rate` requests per second, `burst` at once; above
    that, 429 with a Retry-After (whole seconds until the next token) unless `retry_after` is False; 429 for
    ever when `rate` is 0. Counts what it refused and when it accepted."""

    def __init__(self, rate: float, burst: int = 1, *, retry_after: bool = True):
        self.rate, self.burst, self.retry_after = rate, burst, retry_after
        self.tokens, self.t = float(burst), time.monotonic()
        self.lock = threading.Lock()
        self.refused = 0
        self.accepted: list[float] = []  # time.monotonic() of each accepted request

    def __call__(self, request: Received) -> Reply | None:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
            self.t = now
            if self.rate and self.tokens >= 1:
                self.tokens -= 1
                self.accepted.append(now)
                return None
            self.refused += 1
            wait = math.ceil((1 - self.tokens) / self.rate) if self.rate else 2
            return Reply(429, {"Retry-After": str(max(1, wait))} if self.retry_after else {})
