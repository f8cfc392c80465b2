"""WebhookSender in-process against real local receivers: signatures, SSRF, outcome classes, sandbox."""

from __future__ import annotations

import base64
import ipaddress
import os

import pytest
from helpers import webhook_job
from standardwebhooks import Webhook, WebhookVerificationError

from sysevents.config import Settings
from sysevents.delivery.message import Delivery
from sysevents.delivery.outcome import Kind
from sysevents.delivery.waits import retry_after_seconds
from sysevents.events.model import new_event
from sysevents.local.receiver import Reply
from sysevents.sinks.webhook.sender import WebhookSender, webhook_id
from sysevents.templates import TemplateError, render
from sysevents.templates.sandbox import Sandbox

LOOPBACK = "127.0.0.1/32"


def secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def settings(allowlist: str | None = LOOPBACK, **kw) -> Settings:
    return Settings(allow_http=True, destination_allowlist=allowlist or "", **kw)


def job(url: str, **config):
    return webhook_job("job-1", "a1", url, **config)


def delivery(j, subject="w1"):
    return Delivery.of(new_event("a1", "work", subject, "failed", notes="disk full"), j)


@pytest.fixture
def sender():
    s = WebhookSender(settings(), renderer=render)
    yield s
    s.session.close()


def test_signatures_verify_with_standardwebhooks_and_rotation_keeps_both_valid(sender, receiver):
    old, new = secret(), secret()
    j = job(receiver.url("/signed"), signing_secrets=[new, old])
    d = delivery(j)
    assert sender.send(j, d).kind is Kind.DELIVERED
    assert sender.send(j, d).kind is Kind.DELIVERED  # a retry of the same delivery
    first, again = receiver.at("/signed")
    for got in (first, again):
        for s in (old, new):  # either secret verifies during a rotation
            assert Webhook(s).verify(got.body, got.headers)["id"] == d.event.id
        with pytest.raises(WebhookVerificationError):
            Webhook(secret()).verify(got.body, got.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(old).verify(got.body + b" ", got.headers)
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == webhook_id("job-1", [d.event.id])
    assert len(first.headers["webhook-signature"].split(" ")) == 2


def test_unsigned_job_still_gets_a_stable_webhook_id(sender, receiver):
    j = job(receiver.url("/plain"))
    d = delivery(j)
    sender.send(j, d)
    [got] = receiver.at("/plain")
    assert got.headers["webhook-id"] == webhook_id("job-1", [d.event.id])
    assert "webhook-signature" not in got.headers and got.headers["webhook-timestamp"].isdigit()


def test_name_resolving_to_loopback_is_refused_unless_allowlisted(receiver):
    url = f"http://localhost:{receiver.port}/named"
    strict = WebhookSender(settings(allowlist=None), renderer=render)
    r = strict.send(job(url), delivery(job(url)))
    assert r.kind is Kind.PERMANENT
    assert r.reason == "refused destination: destination 'localhost' is not a public address"
    assert "127.0.0.1" not in r.reason  # tenants never see internal DNS answers
    allowed = WebhookSender(settings(), renderer=render)
    assert allowed.send(job(url), delivery(job(url))).kind is Kind.DELIVERED
    assert len(receiver.at("/named")) == 1  # only the allowlisted sender reached it


def test_connection_level_check_refuses_the_peer_even_when_resolution_passed(receiver):
    # The resolve-time check allowlists loopback here, the session's own policy does not: the session
    # resolves, checks and pins the address itself, so what a DNS-rebinding name would do (public at
    # check time, private at connect time) is refused before any connection.
    s = WebhookSender(settings(), renderer=render)
    from sysevents.net.destinations import guarded_session

    s.session = guarded_session(allowlist=())
    r = s.send(job(receiver.url("/rebind")), delivery(job(receiver.url("/rebind"))))
    assert r.kind is Kind.PERMANENT
    assert r.reason == "refused destination: destination '127.0.0.1' is not a public address"
    assert receiver.requests == []  # refused before a byte was sent


def test_redirect_to_a_private_address_is_not_followed(sender, receiver):
    receiver.replies["/moved"].append(Reply(302, {"Location": "http://10.0.0.1/internal"}))
    r = sender.send(job(receiver.url("/moved")), delivery(job(receiver.url("/moved"))))
    assert (r.kind, r.status) == (Kind.PERMANENT, 302)
    assert r.reason == "HTTP 302 from receiver: redirects are not followed"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Kind.DELIVERED),
        (204, Kind.DELIVERED),
        (408, Kind.RETRY),
        (429, Kind.RETRY),
        (500, Kind.RETRY),
        (503, Kind.RETRY),
        (400, Kind.PERMANENT),
        (401, Kind.PERMANENT),
        (404, Kind.PERMANENT),
        (410, Kind.PERMANENT),
    ],
)
def test_outcome_classes(sender, receiver, status, outcome):
    receiver.replies["/s"].append(status)
    r = sender.send(job(receiver.url("/s")), delivery(job(receiver.url("/s"))))
    assert (r.kind, r.status) == (outcome, status)


def test_retry_after_is_read_and_bounded(receiver):
    s = WebhookSender(settings(webhook_max_retry_after=30), renderer=render)
    receiver.replies["/busy"].extend([Reply(429, {"Retry-After": "7"}), Reply(503, {"Retry-After": "3600"})])
    first = s.send(job(receiver.url("/busy")), delivery(job(receiver.url("/busy"))))
    second = s.send(job(receiver.url("/busy")), delivery(job(receiver.url("/busy"))))
    assert (first.kind, first.retry_after) == (Kind.RETRY, 7)
    assert (second.kind, second.retry_after) == (Kind.RETRY, 30)
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 60) == 0  # a past date: no wait
    assert retry_after_seconds("soon", 60) is None


def test_slow_receiver_past_the_read_timeout_is_retried(receiver):
    s = WebhookSender(settings(webhook_read_timeout=0.5), renderer=render)
    receiver.replies["/slow"].append(Reply(200, delay=3))
    r = s.send(job(receiver.url("/slow")), delivery(job(receiver.url("/slow"))))
    assert (r.kind, r.reason) == (Kind.RETRY, "timed out")


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_receiver_answering_a_byte_at_a_time_is_cut_off_at_the_total_timeout(part):
    # Each byte comes within the read timeout, so only a deadline on the whole request stops it; the
    # delivery fails as timed out (and counts against the receiver), rather than holding a thread as long
    # as the receiver likes and then counting as delivered.
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    head = b"HTTP/1.1 200 OK\r\n"
    if part == "headers":
        trickled, rest = b"X-Slow: " + b"a" * 40, b"\r\nContent-Length: 0\r\n\r\n"
    else:
        head += b"Content-Length: 40\r\n\r\n"
        trickled, rest = b"a" * 40, b""
    stop = threading.Event()

    def serve():
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(head)
            for byte in trickled:
                if stop.wait(0.2):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
            conn.sendall(rest)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    s = WebhookSender(settings(webhook_read_timeout=1.0, webhook_total_timeout=1.5), renderer=render)
    j = job(f"http://127.0.0.1:{port}/trickle")
    try:
        r = s.send(j, delivery(j))
    finally:
        stop.set()
        thread.join(5)
        server.close()
        s.session.close()
    assert (r.kind, r.reason) == (Kind.RETRY, "timed out: the receiver took over 1.5 s in all")
    assert r.counts_against_receiver


def test_batch_is_one_json_array_with_one_webhook_id(sender, receiver):
    j = job(receiver.url("/batch"), batch_max_size=3, signing_secrets=[secret()])
    ds = [delivery(j, f"w{i}") for i in range(3)]
    assert sender.send(j, ds, batch=True).kind is Kind.DELIVERED
    [got] = receiver.at("/batch")
    assert [e["id"] for e in got.json()] == [d.event.id for d in ds]
    assert got.headers["webhook-id"] == webhook_id("job-1", [d.event.id for d in reversed(ds)])
    Webhook(j.config.signing_secrets[0]).verify(got.body, got.headers)


@pytest.fixture
def sandbox():
    s = Sandbox(workers=1, timeout=1.0, memory_mb=512)
    yield s
    s.close()


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("std.makeArray(1e8, function(i) i)", "memory limit"),
        ("std.foldl(function(a, b) a + b, std.range(1, 1e8), 0)", "did not finish within 1 s"),
        ("local f(n) = if n == 0 then 0 else 1 + f(n - 1); f(100000)", "stack overflow"),
        ('importstr "/etc/passwd"', "imports are not allowed"),
    ],
)
def test_runaway_templates_fail_clearly_and_the_sandbox_keeps_serving(sandbox, template, message):
    from sysevents.templates import SAMPLE_EVENT

    if "did not finish" not in message:
        sandbox.timeout = (
            60.0  # only the time-limit case may be stopped by the clock, even on a loaded machine
        )

    with pytest.raises(TemplateError, match=message):
        sandbox.render(template, SAMPLE_EVENT)
    assert sandbox.render("{id: event.id}", SAMPLE_EVENT) == render("{id: event.id}", SAMPLE_EVENT)


def test_a_caller_waits_for_a_busy_sandbox_at_most_its_max_wait():
    # Every worker busy (here: the only one, taken from the pool as a long render holds it) -- another
    # caller gets SandboxBusy after max_wait, not a wait as long as the renders ahead of it take; a
    # delivery then waits (the same attempt later) and the admin API answers 503.
    from sysevents.templates import SAMPLE_EVENT
    from sysevents.templates.sandbox import SandboxBusy

    s = Sandbox(workers=1, timeout=5.0, memory_mb=512, max_wait=0.2)
    try:
        held = s._idle.get()
        with pytest.raises(SandboxBusy, match="every template worker stayed busy for 0.2 s"):
            s.render("{id: event.id}", SAMPLE_EVENT)
        s._idle.put(held)
        assert s.render("{id: event.id}", SAMPLE_EVENT) == render("{id: event.id}", SAMPLE_EVENT)
    finally:
        s.close()


def test_allowlist_is_a_network_list():
    assert settings().destination_allowlist == (ipaddress.ip_network(LOOPBACK),)
