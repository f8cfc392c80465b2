"""LocalStack.start against stand-ins: tiny Python emulators and stub functions under the real
functions-framework. Ports, readiness and start-up failures, in seconds and without Java."""

from __future__ import annotations

import signal
import socket
import sys
import time
import types
from pathlib import Path

import pytest

from sysevents.local import emulators, processes
from sysevents.local import stack as stack_mod
from sysevents.local.processes import PortAllocator, Process, ProcessExited, StartFailed, http_ok
from sysevents.local.stack import LocalStack

FUNCTIONS = ("ingest", "email", "admin")

FAKE_EMULATOR = """
import sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
mode = sys.argv[1]
if mode == "exit":
    print(sys.argv[3], flush=True)
    sys.exit(int(sys.argv[2]))
if mode == "hang":
    time.sleep(600)
class Ok(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"Ok")
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[2])), Ok).serve_forever()
"""


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """Stand-in emulators (`behave[name]`: "serve", "hang" or ("exit", code, message)) and function
    sources (`sources[name]`: main.py's text; by default GET / answers {"function": name})."""
    script = tmp_path / "fake_emulator.py"
    script.write_text(FAKE_EMULATOR)
    behave: dict[str, object] = {"pubsub-emulator": "serve", "firestore-emulator": "serve"}
    sources = {name: f"def handle(request):\n    return {{'function': {name!r}}}\n" for name in FUNCTIONS}

    def emulator(name: str):
        def start(workdir: Path, ports: PortAllocator) -> tuple[Process, str]:
            port = ports.take()
            mode = behave[name]
            args = [str(a) for a in mode] if isinstance(mode, tuple) else [mode, str(port)]
            proc = Process(
                name,
                [sys.executable, str(script), *args],
                workdir / "logs" / f"{name}.log",
                ready=http_ok(f"http://127.0.0.1:{port}/", b"Ok"),
            ).start()
            return proc, f"127.0.0.1:{port}"

        return start

    monkeypatch.setattr(emulators, "pubsub", emulator("pubsub-emulator"))
    monkeypatch.setattr(emulators, "firestore", emulator("firestore-emulator"))
    monkeypatch.setattr(LocalStack, "provision", lambda self: None)
    monkeypatch.setattr(stack_mod, "tickers", lambda topology, urls: [])
    functions_dir = tmp_path / "functions"
    monkeypatch.setattr(stack_mod, "FUNCTIONS_DIR", functions_dir)

    def make_stack() -> LocalStack:
        for name, text in sources.items():
            (functions_dir / name).mkdir(parents=True, exist_ok=True)
            (functions_dir / name / "main.py").write_text(text)
        return LocalStack(tmp_path / "stack", bigquery=False, functions=FUNCTIONS)

    return types.SimpleNamespace(behave=behave, sources=sources, stack=make_stack)


def repeating_os_ports(monkeypatch, distinct: int = 12) -> None:
    """Make every bind to port 0 in sysevents.local.processes get each free port twice in a row, as the
    OS may hand a just-closed port out again (two functions of one stack were seen on one port)."""
    held = [socket.socket() for _ in range(distinct)]
    for s in held:
        s.bind(("127.0.0.1", 0))
    real = [s.getsockname()[1] for s in held]
    for s in held:
        s.close()
    script = [p for p in real for _ in range(2)]

    class Scripted:
        def __init__(self, *args):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def bind(self, address):
            self.port = script.pop(0)

        def getsockname(self):
            return ("127.0.0.1", self.port)

    module = types.SimpleNamespace(socket=Scripted, AF_INET=socket.AF_INET, SOCK_STREAM=socket.SOCK_STREAM)
    monkeypatch.setattr(processes, "socket", module)


def function_port(stack: LocalStack, name: str) -> int:
    return int(stack.function_urls[name].rstrip("/").rsplit(":", 1)[1])


def test_a_stack_never_hands_out_a_port_twice_and_reports_a_function_that_dies_later(fakes, monkeypatch):
    repeating_os_ports(monkeypatch)
    stack = fakes.stack().start(timeout=60)
    try:
        ports = [int(stack.env[f"{e}_EMULATOR_HOST"].rsplit(":", 1)[1]) for e in ("PUBSUB", "FIRESTORE")]
        ports += [function_port(stack, name) for name in FUNCTIONS] + [stack.smtp.port]
        assert len(set(ports)) == len(ports) == 6, ports
        assert set(ports) <= stack.ports.handed_out
        stack.check_alive()

        [admin] = [p for p in stack.processes if p.name == "function-admin"]
        admin.popen.send_signal(signal.SIGTERM)  # our own child, by its PID
        admin.popen.wait(30)
        with pytest.raises(ProcessExited) as err:
            stack.check_alive()
        assert "function-admin exited with code" in str(err.value)
        assert str(admin.log_path) in str(err.value)
    finally:
        stack.stop()


def test_a_function_answering_with_another_name_is_not_taken_for_ready(fakes):
    fakes.sources["admin"] = "def handle(request):\n    return {'function': 'ingest'}\n"
    stack = fakes.stack()
    with pytest.raises(StartFailed) as err:
        stack.start(timeout=6)
    assert "not ready in time" in str(err.value) and "function-admin" in str(err.value)
    assert not stack.processes  # stopped


def test_an_emulator_that_exits_fails_the_start_at_once_with_its_log(fakes):
    fakes.behave["pubsub-emulator"] = "hang"  # never ready: the old start waited on it first
    fakes.behave["firestore-emulator"] = ("exit", 7, "java.net.BindException: Address already in use")
    t0 = time.monotonic()
    with pytest.raises(StartFailed) as err:
        fakes.stack().start(timeout=60)
    assert time.monotonic() - t0 < 15
    assert "firestore-emulator exited with code 7" in str(err.value)
    assert "BindException: Address already in use" in str(err.value)


def test_a_function_that_exits_during_start_up_is_reported_at_once_with_its_log(fakes):
    fakes.sources["ingest"] = "import time\ntime.sleep(120)\n" + fakes.sources["ingest"]  # slow to import
    fakes.sources["email"] = "raise RuntimeError('email cannot start: no SMTP settings')\n"
    t0 = time.monotonic()
    with pytest.raises(StartFailed) as err:
        fakes.stack().start(timeout=90)
    assert time.monotonic() - t0 < 20  # not after ingest's wait
    assert "function-email exited with code 1" in str(err.value)
    assert "email cannot start: no SMTP settings" in str(err.value)
