"""BigQuery export jobs through the real pipeline: continuous streaming, bad rows, one-time backfill,
and backfill-then-continuous with events arriving during the backfill (no gap, no duplicate)."""

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from bq_helpers import lifecycle_verbs, rows
from google.cloud import bigquery
from helpers import pull, wait_until

from sysevents.auditlog import schema
from sysevents.backfill.engine import advance
from sysevents.backfill.ticks import run_backfill
from sysevents.events.model import new_event
from sysevents.sinks.bigquery.backfill import finish_backfill
from sysevents.sinks.bigquery.export import new_export_job
from sysevents.sinks.registry import backfill_of

pytestmark = pytest.mark.integration
SINK = "bigquery"  # the `dead_letters` fixture's sink


def export_config(target, **extra):
    return {
        "dataset": target.dataset,
        "table": target.table,
        "system_event_multiple_types": ["failed", "completed"],
        **extra,
    }


def save(stack, rt, job):
    job = rt.jobs.put(job)
    stack.wait_for_job_caches(since=rt.jobs.last_write_time)
    return job


def publish(stack, publisher, events):
    publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in events])


def wait_in_audit(bq, audit, aid, ids):
    got = wait_until(lambda: ids <= {r["event_id"] for r in rows(bq, audit, "aid = @aid", aid=aid)})
    assert got, "events did not reach the audit table"


def test_continuous_export_streams_exactly_the_matching_events(stack, rt, bq, publisher, target, aid):
    job = save(
        stack,
        rt,
        new_export_job(aid, export_config(target, system_event_sources={"work": []}), handover_seconds=0),
    )
    wanted = [
        new_event(aid, "work", "w-1", "failed", notes="boom"),
        new_event(aid, "work", "w-2", "completed"),
    ]
    unwanted = [
        new_event(aid, "work", "w-1", "created"),
        new_event(aid, "user", "u-1", "failed"),
        new_event(aid + "-other", "work", "w-1", "failed"),
    ]
    publish(stack, publisher, wanted + unwanted)

    got = wait_until(lambda: len(r := rows(bq, target)) >= 2 and r)
    time.sleep(2)  # anything unexpected would arrive meanwhile
    got = rows(bq, target)
    assert sorted(r["event_id"] for r in got) == sorted(e.id for e in wanted)
    assert {r["aid"] for r in got} == {aid}
    table = bq.get_table(target.id)  # created when missing, with the audit schema and layout
    assert table.time_partitioning.field == "time" and table.clustering_fields == [
        "aid",
        "subject_type",
        "verb",
    ]
    assert job.config.mode.value == "continuous"


def test_bad_rows_are_dead_lettered_with_their_reason_and_good_rows_kept(
    stack, rt, bq, publisher, target, dead_letters, subscriber, aid
):
    # The user's own table demands an actor: events without one cannot become rows of it.
    bq.create_dataset(f"{target.project}.{target.dataset}")
    fields = [f.to_api_repr() for f in schema.schema()]
    for f in fields:
        if f["name"] == "actor":
            f["mode"] = "REQUIRED"
    bq.create_table(bigquery.Table(target.id, schema=[bigquery.SchemaField.from_api_repr(f) for f in fields]))
    save(stack, rt, new_export_job(aid, export_config(target, create_if_missing=False), handover_seconds=0))

    good = [new_event(aid, "work", f"w-{i}", "failed", actor="ops") for i in range(3)]
    bad = [new_event(aid, "work", "w-9", "failed"), new_event(aid, "work", "w-8", "completed")]
    publish(stack, publisher, good + bad)

    msgs = pull(subscriber, dead_letters, 2, timeout=60)
    assert sorted(m.attributes["event_id"] for m in msgs) == sorted(e.id for e in bad)
    assert all("bad row: actor: required, missing" in m.attributes["reason"] for m in msgs)
    assert {json.loads(m.data)["event"]["id"] for m in msgs} == {
        e.id for e in bad
    }  # the delivery, kept whole
    got = wait_until(lambda: len(r := rows(bq, target)) >= 3 and r)
    assert sorted(r["event_id"] for r in got) == sorted(e.id for e in good)


def test_export_to_a_missing_table_not_to_be_created_is_dead_lettered(
    stack, rt, publisher, target, dead_letters, subscriber, aid
):
    save(stack, rt, new_export_job(aid, export_config(target, create_if_missing=False), handover_seconds=0))
    event = new_event(aid, "work", "w-1", "failed")
    publish(stack, publisher, [event])
    [msg] = pull(subscriber, dead_letters, 1, timeout=60)
    assert msg.attributes["event_id"] == event.id
    assert msg.attributes["reason"] == f"table {target.id} does not exist and create_if_missing is false"


def range_events(publisher, stack, bq, audit, aid, t0):
    inside = [new_event(aid, "work", f"w-{i}", "failed", time=t0 + timedelta(hours=i * 7)) for i in range(5)]
    outside = [
        new_event(aid, "work", "w-x", "failed", time=t0 - timedelta(seconds=1)),
        new_event(aid, "work", "w-y", "failed", time=t0 + timedelta(days=2)),
        new_event(aid, "work", "w-z", "created", time=t0 + timedelta(hours=1)),
    ]
    publish(stack, publisher, inside + outside)
    wait_in_audit(bq, audit, aid, {e.id for e in inside + outside})
    return inside


def test_one_time_export_runs_by_itself_on_the_scheduled_tick(
    stack, rt, bq, publisher, audit, target, fresh_subscription, subscriber, aid
):
    """No CLI call: the bigquery function's POST /tick (the local scheduler calls it every second) finds
    the due backfill and runs it, with its lifecycle events."""
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    inside = range_events(publisher, stack, bq, audit, aid, t0)
    lifecycle = fresh_subscription(stack.topology.ingest_topic)
    config = export_config(
        target, mode="one_time", start_time=t0.isoformat(), end_time=(t0 + timedelta(days=2)).isoformat()
    )
    job = rt.jobs.put(new_export_job(aid, config, handover_seconds=0))

    verbs = lifecycle_verbs(subscriber, lifecycle, job.id)
    assert verbs == ["started", "syncing", "synced", "synccomplete", "completed"]
    assert sorted(r["event_id"] for r in rows(bq, target)) == sorted(e.id for e in inside)
    run = rt.runs.get(job.key)
    assert (run["state"], run["written"], run["lease_owner"]) == ("done", 5, None)
    time.sleep(3)  # later ticks leave a done backfill alone
    assert len(rows(bq, target)) == 5


def test_backfill_slices_resume_from_the_cursor_one_runner_at_a_time(
    stack, rt, bq, publisher, audit, target, table_writer, fresh_subscription, subscriber, aid
):
    """What a tick does, slice by slice: a page budget, the cursor, and the lease that keeps a second
    runner (an overlapping tick) off a backfill that is held."""
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    inside = range_events(publisher, stack, bq, audit, aid, t0)
    lifecycle = fresh_subscription(stack.topology.ingest_topic)
    runs = rt.runs
    job = new_export_job(
        aid,
        export_config(
            target, mode="one_time", start_time=t0.isoformat(), end_time=(t0 + timedelta(days=2)).isoformat()
        ),
        handover_seconds=0,
    )
    assert runs.claim(job.key, "runner-a", 600)  # held before the job exists: the stack's ticks stay off
    job = rt.jobs.put(job)
    bf = backfill_of(rt, job, page_rows=2)
    seen = []

    first = advance(rt, bf, owner="runner-a", max_pages=1, progress=seen.append)
    assert (first.state.value, first.scanned, first.written) == ("running", 2, 2)
    assert not runs.claim(job.key, "runner-b", 600)
    second = advance(rt, bf, owner="runner-b", max_pages=1)  # lost the lease: does nothing
    assert (second.state.value, second.scanned) == ("running", 2)
    assert len(rows(bq, target)) == 2

    while (
        res := advance(rt, bf, owner="runner-a", max_pages=1, progress=seen.append)
    ).state.value == "running":
        pass
    runs.release(job.key, "runner-a")
    assert (res.state.value, res.written, res.refused) == ("done", 5, 0)
    assert [p.scanned for p in seen] == [2, 4, 5] and seen[-1].total == 5
    assert sorted(r["event_id"] for r in rows(bq, target)) == sorted(e.id for e in inside)
    assert lifecycle_verbs(subscriber, lifecycle, job.id) == [
        "started",
        "syncing",
        "synced",
        "synced",
        "synced",
        "synccomplete",
        "completed",
    ]
    # Running it again adds nothing: the run is done.
    assert run_backfill(rt, job).written == 5
    assert len(rows(bq, target)) == 5


def test_backfill_then_continuous_hands_over_with_no_gap_and_no_duplicate(
    stack, rt, bq, publisher, audit, target, table_writer, aid
):
    """Events keep arriving before, during and after the backfill, some of them late (event time before
    the watermark though published after the job started streaming). The target ends with each matching
    event exactly once."""
    history = [
        new_event(aid, "work", f"old-{i}", "failed", time=datetime.now(UTC) - timedelta(hours=i + 1))
        for i in range(6)
    ]
    publish(stack, publisher, history)
    wait_in_audit(bq, audit, aid, {e.id for e in history})

    published: list = []
    stop = threading.Event()

    def keep_publishing():
        i = 0
        while not stop.is_set():
            batch = [
                new_event(aid, "work", f"live-{i}", "failed"),
                new_event(aid, "work", f"noise-{i}", "created"),
            ]
            if i % 4 == 3:  # a late event: happened an hour ago, arrives now
                batch.append(
                    new_event(
                        aid, "work", f"late-{i}", "completed", time=datetime.now(UTC) - timedelta(hours=1)
                    )
                )
            publish(stack, publisher, batch)
            published.extend(batch)
            i += 1
            time.sleep(0.15)

    feeder = threading.Thread(target=keep_publishing, daemon=True)
    feeder.start()
    try:
        time.sleep(1)
        job = save(
            stack,
            rt,
            new_export_job(
                aid,
                export_config(target, mode="backfill_then_continuous"),
                handover_seconds=rt.settings.export_handover_seconds,
            ),
        )
        watermark = job.config.watermark
        result = run_backfill(rt, job, page_rows=10)
        time.sleep(2)  # streaming goes on after the hand-over
    finally:
        stop.set()
        feeder.join()

    wanted = {e.id for e in history + published if e.verb.value in ("failed", "completed")}
    got = wait_until(lambda: wanted <= {r["event_id"] for r in rows(bq, target)}, timeout=90)
    assert got, f"missing: {wanted - {r['event_id'] for r in rows(bq, target)}}"
    time.sleep(3)  # redeliveries or held events that would duplicate arrive meanwhile
    counts = Counter(r["event_id"] for r in rows(bq, target))
    assert set(counts) == wanted
    assert [i for i, n in counts.items() if n > 1] == []
    before = [e for e in history + published if e.id in wanted and e.time < watermark]
    after = [e for e in published if e.id in wanted and e.time >= watermark]
    late = [e for e in published if e.subject_id.startswith("late-") and e.time < watermark]
    assert before and after and late  # both paths and the late-event rule were exercised
    assert result.written >= len(history)


def test_a_late_event_is_held_while_the_backfill_runs_and_written_once_after(
    stack, rt, bq, publisher, target, table_writer, aid
):
    """The hand-over rule itself: an event from before the watermark that reaches the streaming path is
    not written while the backfill runs (the backfill owns that time range), then written exactly once
    when the backfill finishes."""
    watermark = datetime.now(UTC) - timedelta(minutes=5)
    job = new_export_job(
        aid,
        export_config(target, mode="backfill_then_continuous", watermark=watermark.isoformat()),
        handover_seconds=0,
    )
    runs = rt.runs
    runs.put(job.key, {"state": "running", "end": watermark.isoformat()})
    assert runs.claim(job.key, "another-runner", 600)  # a backfill in progress elsewhere: ticks stay off
    job = save(stack, rt, job)
    late = new_event(aid, "work", "w-late", "failed", time=watermark - timedelta(minutes=1))
    on_time = new_event(aid, "work", "w-now", "failed")
    publish(stack, publisher, [late, on_time])

    assert wait_until(lambda: rows(bq, target))  # the on-time event streams at once
    held = runs.collection.document(job.key).collection("held")
    assert wait_until(lambda: [d.id for d in held.stream()]) == [late.id]
    assert [r["event_id"] for r in rows(bq, target)] == [on_time.id]

    assert finish_backfill(rt, job) == 1
    assert runs.get(job.key)["state"] == "done" and list(held.stream()) == []
    assert Counter(r["event_id"] for r in rows(bq, target)) == {late.id: 1, on_time.id: 1}
    # The same late event delivered again now that the run is done: streaming finds it there, adds nothing.
    publish(stack, publisher, [late])
    time.sleep(3)
    assert Counter(r["event_id"] for r in rows(bq, target)) == {late.id: 1, on_time.id: 1}
