"""Webhook batch export: a time range of the account's audit log POSTed to a real local receiver in
batches, by the scheduled tick (and by overlapping ticks), through the guarded, signing sender."""

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from bq_helpers import lifecycle_verbs, rows
from helpers import wait_until, webhook_job
from standardwebhooks import Webhook

from sysevents.backfill.ticks import tick
from sysevents.events.model import new_event

pytestmark = pytest.mark.integration
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def publish_and_archive(stack, publisher, bq, audit, events):
    publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in events])
    ids = {e.id for e in events}
    assert wait_until(lambda: ids <= {r["event_id"] for r in rows(bq, audit)}, timeout=90)


def range_and_noise(aid, t0, n):
    inside = [new_event(aid, "work", f"w-{i}", "failed", time=t0 + timedelta(minutes=i)) for i in range(n)]
    noise = [
        new_event(aid, "work", "before", "failed", time=t0 - timedelta(seconds=1)),
        new_event(aid, "work", "at-end", "failed", time=t0 + timedelta(hours=1)),  # end is exclusive
        new_event(aid, "work", "other-verb", "created", time=t0 + timedelta(minutes=1)),
        new_event(aid + "-other", "work", "other-account", "failed", time=t0 + timedelta(minutes=2)),
    ]
    return inside, noise


def batch_job(aid, url, t0, fmt, max_events):
    return webhook_job(
        f"batch-{aid}-{fmt}",
        aid,
        url,
        system_event_sources={"work": []},
        signing_secrets=[SECRET],
        batch_export={
            "start_time": t0.isoformat(),
            "end_time": (t0 + timedelta(hours=1)).isoformat(),
            "format": fmt,
            "max_events": max_events,
        },
    )


def test_batch_export_sends_every_event_of_the_range_once_in_ndjson_batches(
    stack, rt, bq, publisher, audit, receiver, fresh_subscription, subscriber, aid
):
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    inside, noise = range_and_noise(aid, t0, 7)
    publish_and_archive(stack, publisher, bq, audit, inside + noise)
    lifecycle = fresh_subscription(stack.topology.ingest_topic)
    job = rt.jobs.put(batch_job(aid, receiver.url("/batch"), t0, "ndjson", 3))

    runs = rt.runs
    assert wait_until(lambda: (runs.get(job.key) or {}).get("state") == "done", timeout=90)
    publisher.publish_all(
        [(stack.topology.ingest_topic, new_event(aid, "work", "live", "failed").to_json(), {})]
    )
    time.sleep(3)  # a live event (the job does not stream) or a repeated batch would arrive meanwhile

    got = receiver.at("/batch")
    assert [len(r.body.splitlines()) for r in got] == [3, 3, 1]
    sent = [json.loads(line) for r in got for line in r.body.splitlines()]
    assert [e["id"] for e in sent] == [e.id for e in inside]  # in time order, each once, nothing else
    for r in got:
        assert r.headers["Content-Type"] == "application/x-ndjson"
        h = {k.lower(): v for k, v in r.headers.items()}
        at = datetime.fromtimestamp(int(h["webhook-timestamp"]), UTC)
        assert h["webhook-signature"] == Webhook(SECRET).sign(h["webhook-id"], at, r.body.decode())
    assert len({r.headers["webhook-id"] for r in got}) == 3
    verbs = lifecycle_verbs(subscriber, lifecycle, job.id)
    assert verbs == ["started", "syncing", "synced", "synced", "synced", "synccomplete", "completed"]
    assert runs.get(job.key)["written"] == 7


def test_overlapping_ticks_send_each_json_array_batch_once(stack, rt, bq, publisher, audit, receiver, aid):
    """Three ticks at once (plus the stack's own scheduler), one page each per turn: the lease keeps every
    batch to one runner, so the receiver gets each event exactly once."""
    t0 = datetime(2026, 5, 2, tzinfo=UTC)
    inside, noise = range_and_noise(aid, t0, 10)
    publish_and_archive(stack, publisher, bq, audit, inside + noise)
    job = batch_job(aid, receiver.url("/arrays"), t0, "json", 4)
    runs = rt.runs
    assert runs.claim(job.key, "another-runner", 600)  # held before the job exists: nobody may run it
    job = rt.jobs.put(job)
    assert wait_until(lambda: rt.cache.get(aid, job.id), timeout=30, every=0.01)  # ticks list from the cache
    reports = []

    def ticker():
        while (runs.get(job.key) or {}).get("state") != "done":
            reports.append(tick(rt, max_pages=1))

    threads = [threading.Thread(target=ticker) for _ in range(3)]
    for t in threads:
        t.start()
    assert wait_until(lambda: sum(job.id in r["busy"] for r in reports) >= 3, timeout=60, every=0.01)
    assert receiver.at("/arrays") == []  # a held backfill is left alone
    runs.release(job.key, "another-runner")  # now the three threads and the stack's own ticks race for it
    for t in threads:
        t.join(timeout=120)
    time.sleep(2)

    got = receiver.at("/arrays")
    assert all(r.headers["Content-Type"] == "application/json" for r in got)
    batches = [r.json() for r in got]
    assert all(isinstance(b, list) and 1 <= len(b) <= 4 for b in batches)
    counts = Counter(e["id"] for b in batches for e in b)
    assert counts == Counter(e.id for e in inside)


def test_a_refusing_receiver_fails_the_batch_export_with_the_reason(
    stack, rt, bq, publisher, audit, receiver, aid
):
    t0 = datetime(2026, 5, 3, tzinfo=UTC)
    inside, _ = range_and_noise(aid, t0, 2)
    publish_and_archive(stack, publisher, bq, audit, inside)
    receiver.replies["/gone"].append(410)
    job = rt.jobs.put(batch_job(aid, receiver.url("/gone"), t0, "ndjson", 5))
    runs = rt.runs
    assert wait_until(lambda: (runs.get(job.key) or {}).get("state") == "failed", timeout=90)
    assert "HTTP 410 from receiver" in runs.get(job.key)["error"]
    time.sleep(2)
    assert receiver.at("/gone") == [] and len(receiver.requests) == 1  # not retried after a 4xx
