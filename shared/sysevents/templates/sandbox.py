"""Template rendering with bounded time and memory: long-lived worker processes under RLIMIT_AS.

Jsonnet bindings bound recursion (`max_stack`) but neither time nor memory: `std.makeArray(1e8, ...)`
runs for minutes and grows past a gigabyte. Renders therefore run in worker subprocesses
(`python -m sysevents.templates.sandbox`), each limited to `template_memory_mb` of address space. A render that
takes longer than `template_timeout` gets its worker killed (by PID) and respawned; one that runs out
of memory kills its worker the same way. Either fails with a TemplateError saying so, the caller
dead-letters the delivery, and the other workers keep serving. Protocol: one JSON line per request
on the worker's stdin, one JSON line per answer on its stdout. A request's `kind` says what to evaluate:
`render` (a webhook body, `templates.render`) or `value` (a template's JSON value with named variables in
scope, `templates.render_value`: email subjects, bodies and digests).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import selectors
import subprocess
import sys
import time
from typing import Any

from sysevents.templates import TEMPLATE_NAME, TemplateError

log = logging.getLogger("sysevents.sandbox")
STARTUP_TIMEOUT = 60.0


class _Worker:
    def __init__(self, memory_mb: int):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sysevents.templates.sandbox", str(memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        self.buf = b""
        self.died = False
        if self._line(STARTUP_TIMEOUT) != b"ready":  # start-up is not charged to the first render
            self.kill()
            raise TemplateError("the template sandbox did not start")

    def _line(self, timeout: float) -> bytes | None:
        assert self.proc.stdout
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sel.select(left):
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:  # the worker closed its end: it died (it may not be reaped yet)
                self.died = True
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """The worker's answer, or None if it timed out or died (the worker is then unusable)."""
        assert self.proc.stdin and self.proc.stdout
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.died = True
            return None
        line = self._line(timeout)
        return None if line is None else json.loads(line)

    def alive(self) -> bool:
        return not self.died and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.sel.close()
        for f in (self.proc.stdin, self.proc.stdout):
            if f:
                f.close()


class SandboxBusy(Exception):
    """No worker was free within the sandbox's `max_wait`: every worker was busy with other renders (maybe
    another account's slow ones). Not the template's fault: try again shortly (503 from the admin API; a
    delivery is retried)."""


class Sandbox:
    """A pool of render workers; `render` and `render_value` have the signatures and errors of
    `templates.render` and `templates.render_value`, and SandboxBusy when no worker frees up within
    `max_wait` (default: twice the render timeout), so a queue of slow renders cannot hold a caller for
    ever."""

    def __init__(
        self, *, workers: int = 2, timeout: float = 2.0, memory_mb: int = 512, max_wait: float | None = None
    ):
        self.size, self.timeout, self.memory_mb = workers, timeout, memory_mb
        self.max_wait = 2 * timeout if max_wait is None else max_wait
        self._idle: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(workers):
            self._idle.put(None)  # started on first use
        self._closed = False

    def render(
        self, template: str | None, event: dict[str, Any], *, max_output_bytes: int = 1024 * 1024
    ) -> bytes:
        if template is None or not template.strip():  # nothing to evaluate: no process hop
            from sysevents.templates import render

            return render(template, event, max_output_bytes=max_output_bytes)
        answer = self._call(
            {"kind": "render", "template": template, "event": event, "max_output_bytes": max_output_bytes}
        )
        return answer["body"].encode()

    def render_value(
        self,
        template: str,
        variables: dict[str, Any],
        *,
        name: str = TEMPLATE_NAME,
        max_output_bytes: int = 1024 * 1024,
    ) -> Any:
        """`templates.render_value` in a worker: the template's JSON value, or a TemplateError."""
        answer = self._call(
            {
                "kind": "value",
                "template": template,
                "variables": variables,
                "name": name,
                "max_output_bytes": max_output_bytes,
            }
        )
        return answer["value"]

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            worker = self._idle.get(timeout=self.max_wait)
        except queue.Empty:
            raise SandboxBusy(
                f"every template worker stayed busy for {self.max_wait:g} s; try again shortly"
            ) from None
        try:
            if worker is None or not worker.alive():
                worker = _Worker(self.memory_mb)
            answer = worker.call(request, self.timeout)
            if answer is None:
                died = not worker.alive()
                worker.kill()
                worker = None
                if died:
                    raise TemplateError(
                        f"template exceeded the memory limit ({self.memory_mb} MiB) and was stopped"
                    )
                raise TemplateError(f"template did not finish within {self.timeout:g} s and was stopped")
        finally:
            self._idle.put(worker)
        if "error" in answer:
            raise TemplateError(answer["error"])
        return answer

    def close(self) -> None:
        """Stop every worker this sandbox started."""
        for _ in range(self.size):
            worker = self._idle.get()
            if worker is not None:
                worker.kill()
        self._closed = True


def _serve(memory_mb: int) -> None:
    import resource

    from sysevents.templates import render, render_value

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
        req = json.loads(line)
        try:
            if req.get("kind", "render") == "value":
                value = render_value(
                    req["template"],
                    req["variables"],
                    name=req["name"],
                    max_output_bytes=req["max_output_bytes"],
                )
                answer = {"value": value}
            else:
                body = render(req["template"], req["event"], max_output_bytes=req["max_output_bytes"])
                answer = {"body": body.decode()}
        except TemplateError as err:
            answer = {"error": str(err)}
        except MemoryError:
            answer = {"error": f"template exceeded the memory limit ({memory_mb} MiB)"}
        out.write(json.dumps(answer).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
