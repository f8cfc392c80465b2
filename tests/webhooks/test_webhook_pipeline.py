"""Webhook delivery through the real pipeline (emulators, ingest, webhook function, local receivers)."""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict

import pytest
from helpers import publish_events as publish
from helpers import pull, wait_until, webhook_job
from helpers import put_jobs as put

from sysevents.delivery.accounting import DeliveryLog
from sysevents.delivery.message import Delivery
from sysevents.delivery.replay import replay
from sysevents.events.model import new_event
from sysevents.jobs.model import JobState
from sysevents.local.processes import free_port
from sysevents.local.receiver import Receiver
from sysevents.runtime import Runtime
from sysevents.sinks.webhook.sender import webhook_id

pytestmark = pytest.mark.integration


@pytest.fixture
def dlog(firestore_client):
    return DeliveryLog(firestore_client)


def test_receiver_down_then_back_loses_nothing_and_duplicates_share_a_webhook_id(
    stack, store, publisher, aid
):
    port = free_port()  # nothing listens here yet: connection refused
    url = f"http://127.0.0.1:{port}/hook"
    put(stack, store, webhook_job(f"{aid}-down", aid, url))
    events = [new_event(aid, "work", f"w{i}", "failed") for i in range(5)]
    publish(stack, publisher, *events)
    time.sleep(3)  # the receiver is down while the first attempts fail
    receiver = Receiver(port=port).start()
    try:
        got = receiver.wait_for("/hook", 5, timeout=120)
        ids = defaultdict(set)
        for r in got:
            ids[r.json()["id"]].add(r.headers["webhook-id"])
        assert set(ids) == {e.id for e in events}
        for event_id, webhook_ids in ids.items():
            assert webhook_ids == {webhook_id(f"{aid}-down", [event_id])}
    finally:
        receiver.stop()


def test_runaway_template_is_dead_lettered_and_does_not_stall_other_jobs(
    stack, store, publisher, receiver, subscriber, dead_letters, aid
):
    put(
        stack,
        store,
        webhook_job(
            f"{aid}-bomb", aid, receiver.url("/bomb"), json_template="std.makeArray(1e8, function(i) i)"
        ),
        webhook_job(
            f"{aid}-spin",
            aid,
            receiver.url("/spin"),
            json_template="std.foldl(function(a, b) a + b, std.range(1, 1e9), 0)",
        ),
        webhook_job(f"{aid}-fine", aid, receiver.url("/fine")),
    )
    events = [new_event(aid, "work", f"w{i}", "failed") for i in range(3)]
    publish(stack, publisher, *events)
    assert len(receiver.wait_for("/fine", 3, timeout=60)) == 3
    msgs = pull(subscriber, dead_letters, 6, timeout=90)
    reasons = {(m.attributes["job_id"], m.attributes["reason"]) for m in msgs}
    assert {j for j, _ in reasons} == {f"{aid}-bomb", f"{aid}-spin"}
    assert all(r.startswith("template error: template ") for _, r in reasons)
    # The memory bomb is stopped by whichever limit it reaches first (on a loaded machine, maybe the clock).
    assert all(("memory limit" in r or "did not finish" in r) for j, r in reasons if j == f"{aid}-bomb")
    assert all("did not finish" in r for j, r in reasons if j == f"{aid}-spin")
    assert receiver.at("/bomb") == receiver.at("/spin") == []


def test_counters_reconcile_and_the_attempt_log_records_each_attempt(
    stack, store, publisher, receiver, subscriber, dead_letters, dlog, aid
):
    job = webhook_job(f"{aid}-acct", aid, receiver.url("/acct"))
    ok, flaky, gone = (new_event(aid, "work", s, "failed") for s in ("ok", "flaky", "gone"))
    receiver.script = lambda r: {flaky.id: 500, gone.id: 410}.get(r.json()["id"]) if not _seen(r) else None
    put(stack, store, job)
    # The emulator redelivers the messages that followed a nacked one on an ordering-enabled subscription
    # (Pub/Sub does that within one ordering key): publish the one that fails last, for exact counts.
    publish(stack, publisher, ok, gone)
    receiver.wait_for("/acct", 1, timeout=60)
    pull(subscriber, dead_letters, 1, timeout=60)
    publish(stack, publisher, flaky)
    receiver.wait_for("/acct", 2, timeout=60)
    # a delivery for a job paused after the event matched: kept unsent in its dead letters
    paused = store.put(job.model_copy(update={"state": JobState.PAUSED}))
    stack.wait_for_job_caches(since=store.last_write_time)
    late = new_event(aid, "work", "late", "failed")
    d = Delivery.of(late, paused)
    publisher.publish_all([(stack.topology.sinks["webhook"].topic, d.to_json(), d.attributes())])
    stats = wait_until(lambda: (s := dlog.stats(job))["dead_lettered"] == 2 and s, timeout=60)
    assert {
        k: stats[k]
        for k in ("received", "delivered", "filtered", "dead_lettered", "pending", "failed_attempts")
    } == {
        "received": 4,
        "delivered": 2,
        "filtered": 0,
        "dead_lettered": 2,
        "pending": 0,
        "failed_attempts": 1,
    }
    log = dlog.attempts(job)
    by_event = defaultdict(list)
    for a in log:
        by_event[a["event_id"]].append((a["attempt"], a["outcome"], a["status"]))
    assert by_event[ok.id] == [(1, "delivered", 200)]
    assert sorted(by_event[flaky.id]) == [(1, "retry", 500), (2, "delivered", 200)]
    assert by_event[gone.id] == [(1, "dead_lettered", 410)]
    assert late.id not in by_event  # the paused job's delivery never reached the receiver
    assert all(a["latency_ms"] is not None for a in log)


_SEEN: set[tuple[str, str]] = set()


def _seen(r) -> bool:
    """True from the second request of an event on: a failure the first time only."""
    key = (r.path, r.json()["id"])
    if key in _SEEN:
        return True
    _SEEN.add(key)
    return False


def test_replay_redelivers_dead_letters_with_the_current_or_a_chosen_template(
    stack, store, publisher, receiver, subscriber, dead_letters, dlog, aid
):
    receiver.replies["/replay"].extend([410, 410])
    job = webhook_job(f"{aid}-replay", aid, receiver.url("/replay"), json_template="{v: 1, id: event.id}")
    put(stack, store, job)
    events = [new_event(aid, "work", f"w{i}", "failed") for i in range(2)]
    publish(stack, publisher, *events)
    assert len(pull(subscriber, dead_letters, 2, timeout=60)) == 2
    assert len(wait_until(lambda: len(dlog.dead_letters(job)) == 2 and True) and dlog.dead_letters(job)) == 2
    v2 = store.put(
        job.model_copy(
            update={
                "version": 2,
                "config": job.config.model_copy(update={"json_template": "{v: 2, id: event.id}"}),
            }
        )
    )
    stack.wait_for_job_caches(since=store.last_write_time)
    with stack.environment():
        rt = Runtime()
        [first] = replay(rt, v2, since=None, template_version=1, limit=1)
        got = receiver.wait_for("/replay", 1, timeout=60)
        assert got[0].json()["v"] == 1 and got[0].headers["webhook-id"] == first
        rest = replay(rt, v2)
    assert len(rest) == 1
    got = receiver.wait_for("/replay", 2, timeout=60)
    assert sorted(r.json()["v"] for r in got) == [1, 2]
    assert {r.json()["id"] for r in got} == {e.id for e in events}
    assert dlog.dead_letters(job) == []


def test_auto_disable_pauses_the_job_and_emits_a_work_failed_event(stack, store, publisher, receiver, aid):
    receiver.replies["/broken"].extend([500] * 50)
    broken = webhook_job(
        f"{aid}-broken", aid, receiver.url("/broken"), auto_disable_failures=3, auto_disable_seconds=0
    )
    watcher = webhook_job(
        f"{aid}-watch", aid, receiver.url("/watch"), system_event_sources={"work": [broken.id]}
    )
    put(stack, store, broken, watcher)
    publish(stack, publisher, *(new_event(aid, "report", f"r{i}", "failed") for i in range(3)))
    [alert] = receiver.wait_for("/watch", 1, timeout=90)
    data = alert.json()["data"]
    assert (data["subject_id"], data["verb"], data["actor"]) == (broken.id, "failed", "sysevents")
    # at least the limit: retries of the other events may fail concurrently before the pause lands
    failures = re.match(r"auto-disabled: (\d+) consecutive failed deliveries over", data["notes"])
    assert failures and int(failures[1]) >= 3, data["notes"]
    job = store.get(aid, broken.id)
    assert job.state is JobState.PAUSED and job.disabled_reason == data["notes"]
    assert job.disabled_at is not None


def test_resume_with_replay_delivers_what_failed_while_the_job_was_disabled(
    stack, store, publisher, receiver, dlog, aid
):
    """Retries that come back while the job is paused are kept in its dead letters, unsent; `sysevents
    jobs resume --replay` delivers them, with their webhook-ids."""
    from click.testing import CliRunner
    from helpers import api_account

    from sysevents.cli import main

    down = [True]
    receiver.script = lambda r: 500 if down[0] else None  # down until resumed: auto-disabled at 3 failures
    job = webhook_job(
        f"{aid}-down", aid, receiver.url("/down"), auto_disable_failures=3, auto_disable_seconds=0
    )
    put(stack, store, job)
    events = [new_event(aid, "report", f"r{i}", "failed") for i in range(3)]
    publish(stack, publisher, *events)
    listed = wait_until(lambda: len(d := dlog.dead_letters(job)) == 3 and d, timeout=120)
    assert listed, dlog.dead_letters(job)
    assert all("is paused: kept in its dead letters" in d["reason"] for d in listed), listed
    assert store.get(aid, job.id).state is JobState.PAUSED
    assert receiver.at("/down") == []

    down[0] = False
    runner = CliRunner(env=api_account(stack, aid))
    r = runner.invoke(main, ["jobs", "resume", job.id, "--replay"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "active" in r.output and "3 replayed" in r.output
    got = receiver.wait_for("/down", 3, timeout=60)
    assert sorted(x.json()["id"] for x in got) == sorted(e.id for e in events)
    assert {x.headers["webhook-id"] for x in got} == {d["webhook_id"] for d in listed}
    stats = wait_until(lambda: (s := dlog.stats(job))["delivered"] == 3 and s, timeout=30)
    # a replay is a new delivery: 3 kept while paused, 3 delivered on resume, nothing pending
    assert [stats[k] for k in ("received", "dead_lettered", "delivered", "pending", "delayed")] == [
        6,
        3,
        3,
        0,
        0,
    ]
    assert store.get(aid, job.id).disabled_at is None


def test_ordered_job_keeps_each_subjects_order_under_retries_without_blocking_others(
    stack, store, publisher, receiver, aid
):
    job = webhook_job(f"{aid}-ord", aid, receiver.url("/ord"), ordered=True)
    a = [new_event(aid, "work", "A", "failed", notes=f"a{i}") for i in range(4)]
    b = [new_event(aid, "work", "B", "failed", notes=f"b{i}") for i in range(4)]
    tries: dict[str, int] = defaultdict(int)

    def script(r):
        ev = r.json()
        tries[ev["id"]] += 1
        return 503 if ev["id"] == a[0].id and tries[ev["id"]] <= 3 else None  # A's first event fails 3 times

    receiver.script = script
    put(stack, store, job)
    publish(stack, publisher, *(a + b), ordered=True)  # with their subjects' ordering keys
    got = receiver.wait_for("/ord", 8, timeout=120)
    notes = [r.json()["data"]["notes"] for r in got]
    assert [n for n in notes if n.startswith("a")] == ["a0", "a1", "a2", "a3"]
    assert [n for n in notes if n.startswith("b")] == ["b0", "b1", "b2", "b3"]
    assert notes.index("b3") < notes.index("a0")  # B was not held up behind A's retries
    assert tries[a[0].id] == 4


def test_batched_job_gets_json_arrays(stack, store, publisher, receiver, aid):
    job = webhook_job(f"{aid}-batch", aid, receiver.url("/batch"), batch_max_size=5, batch_max_wait_ms=500)
    put(stack, store, job)
    events = [new_event(aid, "work", f"w{i}", "failed") for i in range(10)]
    publish(stack, publisher, *events)
    got = wait_until(
        lambda: sum(len(r.json()) for r in receiver.at("/batch")) >= 10 and receiver.at("/batch")
    )
    assert all(isinstance(r.json(), list) and 1 <= len(r.json()) <= 5 for r in got)
    assert sorted(e["id"] for r in got for e in r.json()) == sorted(e.id for e in events)
    assert json.dumps(got[0].json())
