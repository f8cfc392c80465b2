"""End to end through the real emulators: Pub/Sub push -> ingest -> sink topic -> webhook -> receivers."""

import json
import time

import pytest
from helpers import pull, put_jobs, webhook_job

from sysevents.events.model import MAX_EVENT_BYTES, new_event
from sysevents.local.demo import SLACK_TEMPLATE

pytestmark = pytest.mark.integration
QUIET_SECONDS = 2.0  # after the expected deliveries arrive, how long we watch for unexpected extras


def test_each_job_gets_exactly_its_events_rendered(stack, store, publisher, receiver, aid):
    other_aid = aid + "-other"
    put_jobs(
        stack,
        store,
        webhook_job(f"{aid}-all-failed", aid, receiver.url("/all-failed"), system_event_type="failed"),
        webhook_job(
            f"{aid}-work1",
            aid,
            receiver.url("/work1"),
            system_event_multiple_types=["created", "failed"],
            system_event_sources={"work": ["work-id-1"]},
            json_template=SLACK_TEMPLATE,
            headers={"Authorization": "Bearer secret-1"},
        ),
        webhook_job(
            f"{aid}-segments",
            aid,
            receiver.url("/segments"),
            system_event_type="update",
            system_event_sources={"segment": []},
        ),
        webhook_job(f"{aid}-tenant", other_aid, receiver.url("/other-tenant"), system_event_type="failed"),
    )
    events = [
        new_event(aid, "work", "work-id-1", "failed", notes="disk full"),  # all-failed, work1
        new_event(aid, "work", "work-id-1", "created"),  # work1
        new_event(aid, "work", "work-id-2", "failed"),  # all-failed
        new_event(aid, "segment", "seg-1", "updated"),  # segments
        new_event(aid, "segment", "seg-1", "deleted"),  # none
        new_event(aid, "user", "u-1", "created"),  # none
        new_event(other_aid, "work", "work-id-9", "failed"),  # other tenant only
    ]
    publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in events])

    expected = {
        "/all-failed": {events[0].id, events[2].id},
        "/work1": {events[0].id, events[1].id},
        "/segments": {events[3].id},
        "/other-tenant": {events[6].id},
    }
    for path, ids in expected.items():
        receiver.wait_for(path, len(ids), timeout=60)
    time.sleep(QUIET_SECONDS)

    def ids_at(path):
        return sorted(json.loads(r.body)["id"] for r in receiver.at(path))

    assert ids_at("/all-failed") == sorted(expected["/all-failed"])
    assert ids_at("/segments") == sorted(expected["/segments"])
    assert ids_at("/other-tenant") == sorted(expected["/other-tenant"])
    assert {r.path for r in receiver.received} == set(expected)
    slack = sorted((json.loads(r.body)["text"], r.headers["Authorization"]) for r in receiver.at("/work1"))
    assert slack == [
        (
            "Alert notification: A work failed. For more info go to: "
            f"https://activate.getlytics.com/data/integrations/work/work-id-1?aid={aid}",
            "Bearer secret-1",
        ),
        (
            "Alert notification: disk full. For more info go to: "
            f"https://activate.getlytics.com/data/integrations/work/work-id-1?aid={aid}",
            "Bearer secret-1",
        ),
    ]


def test_malformed_events_are_quarantined_with_reasons(stack, publisher, subscriber, fresh_subscription, aid):
    quarantine = fresh_subscription(stack.topology.quarantine_topic)
    good = {"aid": aid, "subject_type": "work", "subject_id": "w", "verb": "failed"}
    bad = {
        b"this is not json": "event is not valid JSON",
        json.dumps({"aid": aid, "verb": "failed"}).encode(): "data.subject_type: Field required",
        json.dumps(
            {**good, "verb": "exploded"}
        ).encode(): "data.verb: unknown verb 'exploded'; valid values:",
        json.dumps({**good, "subject_type": "planet"}).encode(): "unknown subject_type 'planet'",
        json.dumps(
            {**good, "notes": "x" * MAX_EVENT_BYTES}
        ).encode(): f"the limit is {MAX_EVENT_BYTES} bytes",
    }
    publisher.publish_all([(stack.topology.ingest_topic, raw, {}) for raw in bad])
    got = pull(subscriber, quarantine, len(bad), timeout=60)
    reasons = {m.data: m.attributes["reason"] for m in got}
    assert set(reasons) == set(bad)  # the original bytes are kept, for inspection and replay
    for raw, reason in bad.items():
        assert reason in reasons[raw]
    assert all(m.attributes["source_message_id"] for m in got)


def test_job_changes_apply_without_redeploy(stack, store, publisher, receiver, aid):
    put_jobs(stack, store, webhook_job(f"{aid}-j", aid, receiver.url("/a"), system_event_type="failed"))
    first = new_event(aid, "work", "w", "failed")
    publisher.publish_all([(stack.topology.ingest_topic, first.to_json(), {})])
    assert len(receiver.wait_for("/a", 1, timeout=60)) == 1

    put_jobs(stack, store, webhook_job(f"{aid}-j", aid, receiver.url("/b"), system_event_type="created"))
    second, third = new_event(aid, "work", "w", "failed"), new_event(aid, "work", "w", "created")
    publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in (second, third)])
    assert [r.json()["id"] for r in receiver.wait_for("/b", 1, timeout=60)] == [third.id]

    store.delete(aid, f"{aid}-j")
    stack.wait_for_job_caches(since=store.last_write_time)
    fourth = new_event(aid, "work", "w", "created")
    publisher.publish_all([(stack.topology.ingest_topic, fourth.to_json(), {})])
    time.sleep(QUIET_SECONDS)
    assert [r.json()["id"] for r in receiver.received] == [first.id, third.id]
