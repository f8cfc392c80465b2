"""The whole pipeline on this machine: emulators, each function under functions-framework, the topology.

Everything listens on 127.0.0.1 on ports from the stack's own `PortAllocator` (none handed out twice).
The emulators start together, then the functions; a function counts as ready when its `GET /` answers
with its own name, an emulator when its check passes, each only while its process still runs, and any
child that exits during start-up fails the start at once with its log tail. `stop()` ends exactly the
processes it started. Used by `sysevents dev` (make dev) and by the integration tests' session fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

from sysevents import topology as topology_mod
from sysevents.admin.keys import key_hash, new_key
from sysevents.jobs.secrets import generate_key
from sysevents.local import emulators
from sysevents.local.processes import PortAllocator, Process, answers_as, wait_all_ready
from sysevents.local.scheduler import tickers
from sysevents.local.smtp import SmtpServer
from sysevents.transport.pubsub import provision

REPO_ROOT = Path(__file__).resolve().parents[3]
FUNCTIONS_DIR = REPO_ROOT / "functions"
TIME_SCALE = 1 / 600
"""The local stack's SYSEVENTS_TIME_SCALE: a 24-hour outage plays in about 2.5 minutes."""
LOCAL_BACKOFF = (1, 4)
"""Retry backoff (min, max seconds) for local runs, instead of topology.json's production values."""


class LocalStack:
    def __init__(
        self,
        workdir: Path | None = None,
        project: str = "sysevents-local",
        *,
        bigquery: bool = True,
        functions: tuple[str, ...] | None = None,
        backoff: tuple[int, int] = LOCAL_BACKOFF,
        extra_env: dict[str, str] | None = None,
        echo_smtp: bool = False,
        time_scale: float = TIME_SCALE,
    ):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="sysevents-stack-"))
        self.project = project
        self.with_bigquery = bigquery
        self.topology = topology_mod.load()
        self.function_names = tuple(self.topology.functions) if functions is None else functions
        self.backoff = backoff
        self.extra_env = extra_env or {}
        self.echo_smtp = echo_smtp  # print each email the SMTP server receives (make dev)
        self.time_scale = time_scale  # SYSEVENTS_TIME_SCALE of the functions: retry schedules and windows
        self.ports = PortAllocator()  # every port this stack's emulators, functions and SMTP server get
        self.processes: list[Process] = []  # child processes, stopped by PID
        self.services: list = []  # in-process servers and threads (SMTP server, schedule tickers): `.stop()`
        self.env: dict[str, str] = {}
        self.function_urls: dict[str, str] = {}
        self.bigquery_url: str | None = None
        self.smtp: SmtpServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> LocalStack:
        """Start everything and wait, `timeout` seconds in all, until it is ready; on any failure, stop what
        was started and raise (StartFailed when a child exited or was not ready in time)."""
        started = time.monotonic()
        deadline = started + timeout
        try:
            ps, ps_host = emulators.pubsub(self.workdir, self.ports)
            self.processes.append(ps)
            fs, fs_host = emulators.firestore(self.workdir, self.ports)
            self.processes.append(fs)
            if self.with_bigquery:
                bq, self.bigquery_url = emulators.bigquery(self.workdir, self.project, self.ports)
                self.processes.append(bq)
            queue = f"projects/{self.project}/locations/local/queues/sysevents-{self.topology.delay_queue}"
            tq, tq_host = emulators.tasks(self.workdir, queue, self.ports)
            self.processes.append(tq)
            # Emulators first: booting the functions alongside them was no faster (both CPU-bound).
            wait_all_ready(self.processes, deadline)
            self.operator_key = new_key()
            self.env = {
                "PUBSUB_EMULATOR_HOST": ps_host,
                "FIRESTORE_EMULATOR_HOST": fs_host,
                "GOOGLE_CLOUD_PROJECT": self.project,
                "SYSEVENTS_PROJECT": self.project,
                # Local receivers listen on loopback over plain http: allow exactly that, here only.
                "SYSEVENTS_ALLOW_HTTP": "true",
                "SYSEVENTS_DESTINATION_ALLOWLIST": "127.0.0.1/32",
                # Admin API: a fresh operator key (kept in memory: self.operator_key) and sealing key per stack.
                "SYSEVENTS_OPERATOR_KEY_HASH": key_hash(self.operator_key),
                "SYSEVENTS_SEALING_KEYS": generate_key(),
                # The durable delay queue: Cloud Tasks' emulator, releasing to the Pub/Sub emulator's REST API.
                "SYSEVENTS_DELAY_QUEUE": queue,
                "SYSEVENTS_TASKS_EMULATOR_HOST": tq_host,
                "SYSEVENTS_PUBSUB_URL": f"http://{ps_host}",
                "SYSEVENTS_TIME_SCALE": str(self.time_scale),
                **self.extra_env,
            }
            if self.bigquery_url:
                self.env["SYSEVENTS_BIGQUERY_ENDPOINT"] = self.bigquery_url
            if "email" in self.function_names:  # email alerts: a real SMTP server (STARTTLS, AUTH)
                self.smtp = SmtpServer(
                    self.workdir / "smtp", echo=self.echo_smtp, port=self.ports.take()
                ).start()
                self.services.append(self.smtp)
                for key, value in self.smtp.env().items():
                    self.env.setdefault(key, value)
            ports = {name: self.ports.take() for name in self.function_names}
            if "admin" in ports:  # confirmation and unsubscribe links in emails point at the admin API
                self.env.setdefault("SYSEVENTS_CONSENT_URL", f"http://127.0.0.1:{ports['admin']}")
            functions = [self._start_function(name, ports[name]) for name in self.function_names]
            wait_all_ready(functions, deadline, watch=self.processes)
            self.provision()
            # Cloud Scheduler's part: every function's `schedules` (email /flush, bigquery /tick) every second.
            for ticker in tickers(self.topology, self.function_urls):
                self.services.append(ticker.start())
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - started
        return self

    def _start_function(self, name: str, port: int) -> Process:
        exe = shutil.which("functions-framework") or str(
            Path(sys.executable).with_name("functions-framework")
        )
        fn = self.topology.functions[name]
        url = f"http://127.0.0.1:{port}/"
        proc = Process(
            f"function-{name}",
            [
                exe,
                f"--target={fn.entry_point}",
                f"--source={FUNCTIONS_DIR / name / 'main.py'}",
                "--signature-type=http",
                "--host=127.0.0.1",
                f"--port={port}",
            ],
            self.workdir / "logs" / f"function-{name}.log",
            env={**self.env, "PYTHONUNBUFFERED": "1", "SYSEVENTS_FUNCTION": name},
            ready=answers_as(url, name),  # its own name: not another process that took the port
        ).start()
        self.processes.append(proc)
        self.function_urls[name] = url
        return proc

    def provision(self) -> None:
        with self.environment():
            provision(self.topology, self.project, self.function_urls, backoff_override=self.backoff)

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.services.clear()
        for p in reversed(self.processes):
            p.stop()
        self.processes.clear()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers -----------------------------------------------------------------------------------------
    def check_alive(self) -> None:
        """Raise ProcessExited (name, exit code, log tail) when any child of this stack is no longer running,
        e.g. a function that crashed after start; a test can call it to explain a failure."""
        for p in self.processes:
            p.check_alive()

    def wait_for_job_caches(self, since: datetime, timeout: float = 30.0) -> None:
        """Wait until every function's job cache has seen Firestore as of `since` (a write's update time)."""
        pending = dict(self.function_urls)
        deadline = time.monotonic() + timeout
        while pending:
            for name, url in list(pending.items()):
                try:
                    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - our local function
                        cache = json.loads(resp.read()).get("job_cache", False)
                except urllib.error.HTTPError:
                    cache = False  # answers, but not with a job cache: nothing to wait for
                except (OSError, ValueError):
                    continue
                if cache is False or (
                    cache and cache["read_time"] and datetime.fromisoformat(cache["read_time"]) >= since
                ):
                    pending.pop(name)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"job caches of {sorted(pending)} did not catch up within {timeout:.0f}s")
            if pending:
                time.sleep(0.05)

    def environment(self):
        """Context manager: os.environ points the Google clients at this stack while inside."""
        stack = self

        class _Env:
            def __enter__(self):
                self.saved = {k: os.environ.get(k) for k in stack.env}
                os.environ.update(stack.env)

            def __exit__(self, *exc):
                for k, v in self.saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v

        return _Env()

    def write_env_file(self, path: Path) -> None:
        """Let other shells find this stack (`sysevents publish` reads it when no emulator env is set)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps({"env": self.env, "functions": self.function_urls, "pid": os.getpid()}, indent=2)
        )
