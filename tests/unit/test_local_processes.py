"""The local stack's process plumbing: ports handed out once."""

from __future__ import annotations

import socket
import types

from sysevents.local import processes
from sysevents.local.processes import PortAllocator, free_port


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
