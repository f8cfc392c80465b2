"""Deliveries that outlast the receiver, through the real pipeline and the delay queue (Cloud Tasks'
emulator releasing to the Pub/Sub emulator): a day-long outage, a rate-limited receiver, a crashed sink.

The test stack runs at SYSEVENTS_TIME_SCALE 1/3000 (tests/conftest.py): the default retry schedule
(about 27.6 hours) plays in about 33 s, a 24-hour outage in 28.8 s. A receiver's Retry-After and rate
limits stay in real seconds.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from helpers import TIME_SCALE, pull, wait_until, webhook_job
from helpers import publish_events as publish
from helpers import put_jobs as put

from sysevents.delivery.accounting import DeliveryLog
from sysevents.events.model import new_event
from sysevents.local.demo import SLACK_TEMPLATE
from sysevents.local.processes import free_port
from sysevents.local.receiver import Receiver, Reply
from sysevents.sinks.webhook.sender import webhook_id

pytestmark = pytest.mark.integration
DAY = 86_400


def mine(subscriber, path, job_id, timeout=3.0):
    return [m for m in pull(subscriber, path, 1000, timeout=timeout) if m.attributes.get("job_id") == job_id]


def test_a_receiver_down_for_a_day_loses_nothing(stack, store, publisher, subscriber, dead_letters, aid):
    port = free_port()  # nothing listens here for the outage: connection refused
    job = webhook_job(f"{aid}-day", aid, f"http://127.0.0.1:{port}/hook")
    put(stack, store, job)
    events = [new_event(aid, "work", f"w{i}", "failed") for i in range(30)]
    started = time.monotonic()
    publish(stack, publisher, *events)
    outage = DAY * TIME_SCALE
    time.sleep(max(0.0, outage - (time.monotonic() - started)))
    receiver = Receiver(port=port).start()
    try:
        got = wait_until(
            lambda: len({r.json()["id"] for r in receiver.at("/hook")}) >= 30 and receiver.at("/hook"), 90
        )
        ids = defaultdict(set)
        for r in got:
            ids[r.json()["id"]].add(r.headers["webhook-id"])
        assert set(ids) == {e.id for e in events}  # nothing lost
        assert all(w == {webhook_id(job.id, [e])} for e, w in ids.items())  # duplicates share a webhook-id
        assert mine(subscriber, dead_letters, job.id) == []  # nothing dead-lettered
        dlog = DeliveryLog(store.client)
        stats = wait_until(lambda: (s := dlog.stats(job))["delivered"] == 30 and s, 30)
        assert (stats["received"], stats["dead_lettered"], stats["delayed"], stats["pending"]) == (
            30,
            0,
            0,
            0,
        )
    finally:
        receiver.stop()


class SlackLike:
    """A receiver that takes at most one request per second (a token bucket of one), answering 429 with
    Retry-After: 1 above that, as Slack's incoming webhooks do."""

    def __init__(self):
        self.last = 0.0
        self.lock = threading.Lock()
        self.refused = 0

    def __call__(self, request):
        with self.lock:
            now = time.monotonic()
            if now - self.last < 1.0:
                self.refused += 1
                return Reply(429, {"Retry-After": "1"})
            self.last = now
            return None


def test_a_one_per_second_receiver_gets_a_whole_burst(stack, store, publisher, subscriber, dead_letters, aid):
    receiver = Receiver().start()
    try:
        slack = receiver.script = SlackLike()
        job = webhook_job(f"{aid}-slack", aid, receiver.url("/slack"), json_template=SLACK_TEMPLATE,
                     rate_limit={"per_second": 1})  # fmt: skip
        put(stack, store, job)
        n = 40  # a burst 40 times what the receiver takes in a second (bench/bench_delays.py plays 100)
        publish(
            stack, publisher, *(new_event(aid, "work", f"w{i}", "failed", notes=f"n{i}") for i in range(n))
        )
        got = wait_until(lambda: len(receiver.at("/slack")) >= n and receiver.at("/slack"), 300)
        assert len({r.body for r in got}) == n  # every event, once
        assert mine(subscriber, dead_letters, job.id) == []
        assert len(receiver.requests) <= 1.5 * n, (
            f"{len(receiver.requests)} requests, {slack.refused} refused"
        )
    finally:
        receiver.stop()


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text().split()
        out += [int(c) for c in text]
    return out


def _workers(stack) -> list[int]:
    """The webhook function's gunicorn worker processes (the master respawns a killed one)."""
    [proc] = [p for p in stack.processes if p.name == "function-webhook"]
    found, todo = [], [proc.pid]
    while todo:
        pid = todo.pop()
        kids = _children(pid)
        if not kids and pid != proc.pid:
            found.append(pid)
        todo += kids
    return found


def test_killing_the_sink_mid_stream_loses_nothing(stack, store, publisher, receiver, aid):
    job = webhook_job(f"{aid}-kill", aid, receiver.url("/kill"))
    receiver.replies["/kill"].extend([503] * 20)  # some deliveries wait for retries when the kills come
    put(stack, store, job)
    events = [new_event(aid, "work", f"w{i}", "failed") for i in range(200)]
    publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in events[:100]])
    for _ in range(2):
        time.sleep(0.5)
        for pid in _workers(stack):
            os.kill(pid, signal.SIGKILL)
    publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in events[100:]])
    got = wait_until(lambda: {r.json()["id"] for r in receiver.at("/kill")} >= {e.id for e in events}, 180)
    assert got, f"{len({r.json()['id'] for r in receiver.at('/kill')})} of 200 delivered"
    ids = defaultdict(set)
    for r in receiver.at("/kill"):
        ids[r.json()["id"]].add(r.headers["webhook-id"])
    assert all(w == {webhook_id(job.id, [e])} for e, w in ids.items())
    stack.check_alive()
