"""Template rendering with bounded time and memory: long-lived worker processes under RLIMIT_AS.

Jsonnet bindings bound recursion (`max_stack`) but neither time nor memory: `std.makeArray(1e8, ...)`
runs for minutes and grows past a gigabyte. Renders therefore run in worker subprocesses
(`python -m sysevents.templates.sandbox`), each limited to the per-worker memory bound of address space
(`Settings.template_worker_memory_mb`: the function's memory less what its main process keeps, shared by the
workers, so that every worker at its bound and the main process together fit in the instance). A render that
takes longer than `template_timeout` gets its worker killed (by PID) and respawned; one that runs out
of memory kills its worker the same way. Either fails with a TemplateError saying so, the caller
dead-letters the delivery, and the other workers keep serving. Protocol: one JSON line per request
on the worker's stdin, one JSON line per answer on its stdout. A request's `kind` says what to evaluate:
`render` (a webhook body, `templates.render`) or `value` (a template's JSON value with named variables in
scope, `templates.render_value`: email subjects, bodies and digests).

The workers are shared by every account, in turns: each render names its account, waits in that account's
line, and a free worker goes to the next account in round robin (sysevents.templates.turns), so one account's
backlog of slow templates cannot make another account's render wait behind all of it. An account's renders
queued or running are capped (`template_max_per_account`): past the cap a render is refused at once
(AccountBusy), and a delivery waits and comes back, never lost.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import subprocess
import sys
import threading
import time
from typing import Any

from sysevents.templates import TEMPLATE_NAME, TemplateError
from sysevents.templates.turns import TimedOut, Turns

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
    another account's slow ones). Not the template's fault: try again shortly (503 with Retry-After from
    the admin API; a wait, not a failed attempt, for a delivery). `retry_after`: seconds to wait."""

    retry_after = 1.0


class AccountBusy(SandboxBusy):
    """The account already has `template_max_per_account` renders queued or running on this instance: this
    one is refused at once, before it queues (429 with Retry-After from the admin API; a wait for a
    delivery), so one account's backlog holds neither the workers' lines nor the instance's threads."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class Sandbox:
    """A pool of render workers; `render` and `render_value` have the signatures and errors of
    `templates.render` and `templates.render_value`, plus the account (`aid`) the template belongs to.

    Callers wait for a worker in their account's line, and free workers go to the accounts in turns
    (sysevents.templates.turns): one account's backlog of slow renders delays another account's render by
    at most one render per waiting account. A caller waits `max_wait` at most (default: twice the render
    timeout), then gets SandboxBusy; an account with `per_account` renders queued or running already gets
    AccountBusy at once (None: no cap)."""

    def __init__(
        self,
        *,
        workers: int = 2,
        timeout: float = 2.0,
        memory_mb: int = 512,
        max_wait: float | None = None,
        per_account: int | None = None,
    ):
        self.size, self.timeout, self.memory_mb = workers, timeout, memory_mb
        self.max_wait = 2 * timeout if max_wait is None else max_wait
        self.per_account = per_account
        self._idle: Turns[_Worker | None] = Turns([None] * workers)  # workers start on first use
        self._held: dict[str, int] = {}  # per account: its renders queued or running
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def of(cls, settings: Any) -> Sandbox:
        """The deployment's sandbox (sysevents.config.Settings): its workers, their time and memory bounds
        (the memory bound derived from the function's memory), and each account's cap."""
        return cls(
            workers=settings.template_workers,
            timeout=settings.template_timeout,
            memory_mb=settings.template_worker_memory_mb,
            per_account=settings.template_max_per_account,
        )

    def render(
        self,
        template: str | None,
        event: dict[str, Any],
        *,
        max_output_bytes: int = 1024 * 1024,
        aid: str | None = None,
    ) -> bytes:
        if template is None or not template.strip():  # nothing to evaluate: no process hop
            from sysevents.templates import render

            return render(template, event, max_output_bytes=max_output_bytes)
        request = {
            "kind": "render",
            "template": template,
            "event": event,
            "max_output_bytes": max_output_bytes,
        }
        return self._call(request, aid or "")["body"].encode()

    def render_value(
        self,
        template: str,
        variables: dict[str, Any],
        *,
        name: str = TEMPLATE_NAME,
        max_output_bytes: int = 1024 * 1024,
        aid: str | None = None,
    ) -> Any:
        """`templates.render_value` in a worker: the template's JSON value, or a TemplateError."""
        request = {
            "kind": "value",
            "template": template,
            "variables": variables,
            "name": name,
            "max_output_bytes": max_output_bytes,
        }
        return self._call(request, aid or "")["value"]

    def load(self) -> dict[str, int]:
        """Renders queued or running on this sandbox, per account."""
        with self._lock:
            return dict(self._held)

    def waiting(self) -> dict[str, int]:
        """Renders waiting for a worker, per account, in turn order."""
        return self._idle.waiting()

    def _enter(self, aid: str) -> None:
        with self._lock:
            held = self._held.get(aid, 0)
            if self.per_account is not None and held >= self.per_account:
                raise AccountBusy(
                    f"account {aid} already has {held} template renders queued or running on this "
                    f"instance (at most {self.per_account}); try again shortly",
                    retry_after=max(1.0, self.timeout),
                )
            self._held[aid] = held + 1

    def _leave(self, aid: str) -> None:
        with self._lock:
            held = self._held.pop(aid, 1) - 1
            if held > 0:
                self._held[aid] = held

    def _call(self, request: dict[str, Any], aid: str) -> dict[str, Any]:
        self._enter(aid)
        try:
            worker = self._idle.get(aid, timeout=self.max_wait)
        except TimedOut:
            self._leave(aid)
            raise SandboxBusy(
                f"every template worker stayed busy for {self.max_wait:g} s; try again shortly"
            ) from None
        try:
            answer, worker = self._run(worker, request)
        finally:
            self._idle.put(worker)
            self._leave(aid)
        if "error" in answer:
            raise TemplateError(answer["error"])
        return answer

    def _run(self, worker: _Worker | None, request: dict[str, Any]) -> tuple[dict[str, Any], _Worker | None]:
        """The worker's answer and the worker to give back (None: it was stopped, the next use starts one);
        a stopped render's answer is the error saying why."""
        if worker is None or not worker.alive():
            worker = _Worker(self.memory_mb)
        answer = worker.call(request, self.timeout)
        if answer is not None:
            return answer, worker
        died = not worker.alive()
        worker.kill()
        if died:
            why = f"template exceeded the memory limit ({self.memory_mb} MiB) and was stopped"
        else:
            why = f"template did not finish within {self.timeout:g} s and was stopped"
        return {"error": why}, None

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
