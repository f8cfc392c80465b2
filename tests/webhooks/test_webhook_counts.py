"""The webhook function's counts stay exact when Pub/Sub delivers a message twice: a push repeated after an
answer was lost, and workers SIGKILLed mid-stream while their deliveries' group commits run (real
emulators, the webhook function, a local receiver)."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import requests
from helpers import put_jobs as put
from helpers import wait_until, webhook_job

from sysevents.delivery.accounting import DeliveryLog
from sysevents.delivery.message import Delivery
from sysevents.events.model import new_event

pytestmark = pytest.mark.integration


def reconciled(dlog, job, n):
    """The job's stats once `n` deliveries ended and nothing is pending, else None."""
    s = dlog.stats(job)
    return s if s["delivered"] >= n and s["pending"] == 0 else None


def test_a_push_delivered_twice_counts_once(stack, store, receiver, aid):
    job = webhook_job(f"{aid}-counts", aid, receiver.url("/twice"))
    put(stack, store, job)
    event = new_event(aid, "work", "w1", "failed")
    d = Delivery.of(event, job)
    body = {
        "subscription": "projects/p/subscriptions/deliveries-webhook-push",
        "message": {
            "data": base64.b64encode(d.to_json()).decode(),
            "attributes": d.attributes(),
            "messageId": uuid.uuid4().hex,
        },
    }
    for _ in range(2):  # the answer to the first was lost: Pub/Sub pushes the same message again
        r = requests.post(stack.function_urls["webhook"], data=json.dumps(body), timeout=30)
        assert r.status_code == 200, r.text
    assert len(receiver.at("/twice")) == 2  # at least once to the receiver, with one webhook-id
    s = DeliveryLog(store.client).stats(job)
    assert (s["received"], s["delivered"], s["pending"]) == (1, 1, 0)


def _workers(stack, name: str) -> list[int]:
    """The function's gunicorn worker processes (the master respawns a killed one)."""
    [proc] = [p for p in stack.processes if p.name == f"function-{name}"]
    found, todo = [], [proc.pid]
    while todo:
        pid = todo.pop()
        kids = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            kids += [int(c) for c in (task / "children").read_text().split()]
        if not kids and pid != proc.pid:
            found.append(pid)
        todo += kids
    return found


def test_killing_the_sink_mid_stream_keeps_every_count_exact(stack, store, publisher, receiver, aid):
    job = webhook_job(f"{aid}-counts", aid, receiver.url("/killed"))
    put(stack, store, job)
    events = [new_event(aid, "work", f"w{i}", "failed") for i in range(200)]
    publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in events[:100]])
    for _ in range(2):
        time.sleep(0.5)
        for pid in _workers(stack, "webhook"):
            os.kill(pid, signal.SIGKILL)
    publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in events[100:]])
    ids = {e.id for e in events}
    assert wait_until(lambda: {r.json()["id"] for r in receiver.at("/killed")} >= ids, 180)
    s = wait_until(lambda: reconciled(DeliveryLog(store.client), job, len(events)), 120)
    assert s, DeliveryLog(store.client).stats(job)
    # every event received and delivered exactly once in the counts, however often it reached the receiver
    assert (s["received"], s["delivered"], s["dead_lettered"], s["delayed"], s["pending"]) == (
        200,
        200,
        0,
        0,
        0,
    )
    assert len(DeliveryLog(store.client).attempts(job, limit=1000)) == 200
    stack.check_alive()
