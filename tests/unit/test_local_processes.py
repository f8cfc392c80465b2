"""The local stack's process plumbing: ports handed out once, readiness that knows who answers, exits seen
at once. Children here are tiny Python scripts, no emulators."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sysevents.local import processes
from sysevents.local.processes import (
    PortAllocator,
    Process,
    ProcessExited,
    StartFailed,
    answers_as,
    free_port,
    wait_all_ready,
)


class _ScriptedSocket:
    """A socket whose bind to port 0 gets the next port of a script, as the OS may hand a just-closed
    port out again."""

    def __init__(self, ports: list[int]):
        self.ports = ports

    def __call__(self, *args):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def bind(self, address):
        self.port = self.ports.pop(0)

    def getsockname(self):
        return ("127.0.0.1", self.port)


def script_ports(monkeypatch, ports: list[int]) -> None:
    fake = _ScriptedSocket(list(ports))
    module = types.SimpleNamespace(socket=fake, AF_INET=socket.AF_INET, SOCK_STREAM=socket.SOCK_STREAM)
    monkeypatch.setattr(processes, "socket", module)


def test_an_allocator_never_hands_out_a_port_twice(monkeypatch):
    script_ports(monkeypatch, [41001, 41001, 41002, 41001, 41002, 41003])
    ports = PortAllocator()
    assert [ports.take(), ports.take(), ports.take()] == [41001, 41002, 41003]
    assert ports.handed_out == {41001, 41002, 41003}


def test_free_port_never_repeats_in_a_process(monkeypatch):
    script_ports(monkeypatch, [42001, 42001, 42002])
    assert free_port() != free_port()


def test_ports_handed_out_are_distinct_and_unbound():
    ports = PortAllocator()
    taken = [ports.take() for _ in range(50)]
    assert len(set(taken)) == 50
    for port in taken[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def child(tmp_path, name: str, code: str, ready=None) -> Process:
    return Process(name, [sys.executable, "-c", code], tmp_path / f"{name}.log", ready=ready).start()


SLEEPER = "import time; time.sleep(60)"


def test_a_child_that_exits_is_reported_at_once_while_another_is_awaited(tmp_path):
    slow = child(tmp_path, "slow", SLEEPER, ready=lambda: False)
    dies = child(tmp_path, "dies", "print('cannot bind: address in use', flush=True); raise SystemExit(3)")
    try:
        t0 = time.monotonic()
        with pytest.raises(StartFailed) as err:
            wait_all_ready([slow], time.monotonic() + 60, watch=[slow, dies])
        assert time.monotonic() - t0 < 10
        assert "dies exited with code 3" in str(err.value)
        assert "cannot bind: address in use" in str(err.value)
    finally:
        slow.stop()


def test_a_child_that_answers_but_has_exited_is_not_ready(tmp_path):
    gone = child(tmp_path, "gone", "print('bye')", ready=lambda: True)  # a stranger answers for it
    gone.popen.wait(10)
    assert not gone.is_ready()
    with pytest.raises(StartFailed, match="gone exited with code 0"):
        gone.wait_ready(30)


def test_not_ready_in_time_names_every_pending_child_with_its_log(tmp_path):
    a, b = (
        child(tmp_path, name, f"print('{name} starting', flush=True); {SLEEPER}", ready=lambda: False)
        for name in "ab"
    )
    try:
        time.sleep(0.5)
        with pytest.raises(StartFailed) as err:
            wait_all_ready([a, b], time.monotonic() + 1)
        text = str(err.value)
        assert "not ready in time: a, b" in text and "a starting" in text and "b starting" in text
    finally:
        a.stop()
        b.stop()


def test_check_alive_reports_an_exit_with_the_log_tail(tmp_path):
    p = child(tmp_path, "crashy", "import sys; print('Traceback: boom', flush=True); sys.exit(2)")
    p.popen.wait(10)
    with pytest.raises(ProcessExited) as err:
        p.check_alive()
    assert "crashy exited with code 2" in str(err.value) and "Traceback: boom" in str(err.value)


@pytest.fixture
def answering():
    """An HTTP server on 127.0.0.1 whose GET / answers what `reply` holds: (status, body bytes)."""
    reply = {"value": (200, b"{}")}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = reply["value"]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", reply
    server.shutdown()
    server.server_close()


def test_a_function_is_ready_only_when_it_answers_with_its_own_name(answering):
    url, reply = answering
    reply["value"] = (200, json.dumps({"function": "ingest", "job_cache": {}}).encode())
    assert answers_as(url, "ingest")()
    assert not answers_as(url, "webhook")()  # another function (another stack's?) holds the port
    reply["value"] = (200, b"Ok")  # something else altogether
    assert not answers_as(url, "ingest")()
    reply["value"] = (500, json.dumps({"function": "ingest"}).encode())
    assert not answers_as(url, "ingest")()
    assert not answers_as(f"http://127.0.0.1:{free_port()}/", "ingest")()  # nobody listens
