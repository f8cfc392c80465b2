"""The local receiver says nothing when a client goes away, and still reports its own errors."""

from __future__ import annotations

import socket
import struct
import time

import requests
from helpers import wait_until

from sysevents.local.receiver import Receiver


def _reset_after_one_request(receiver: Receiver) -> None:
    """A keep-alive client that sends one request, reads the answer, then resets the connection (RST)
    while the server waits for its next request line."""
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as s:
        s.sendall(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        answer = s.recv(4096)
        assert b"200" in answer.split(b"\r\n")[0]
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_a_client_resetting_its_connection_prints_nothing(capfd):
    receiver = Receiver().start()
    try:
        for _ in range(5):
            _reset_after_one_request(receiver)
        requests.post(receiver.url("/b"), data=b"{}", timeout=5).close()
        wait_until(lambda: len(receiver.at("/b")) == 1, timeout=5, every=0.02)
        time.sleep(0.2)  # the handler threads of the reset connections have run into the reset
    finally:
        receiver.stop()
    assert len(receiver.at("/a")) == 5
    assert "Traceback" not in capfd.readouterr().err


def test_an_error_of_the_receiver_itself_is_still_printed(capfd):
    receiver = Receiver().start()

    def broken(item):
        raise ValueError("a bug in the script")

    receiver.script = broken
    try:
        try:
            requests.post(receiver.url("/c"), data=b"{}", timeout=5)
        except requests.ConnectionError:
            pass  # the handler died without answering
        time.sleep(0.2)
    finally:
        receiver.stop()
    err = capfd.readouterr().err
    assert "Traceback" in err and "ValueError: a bug in the script" in err
