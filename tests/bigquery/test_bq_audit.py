"""The audit log: every valid event lands in the partitioned, clustered audit table, once."""

import json

import pytest
from bq_helpers import rows
from helpers import wait_until

from sysevents.auditlog import schema
from sysevents.events.model import new_event

pytestmark = pytest.mark.integration


def test_every_valid_event_lands_in_the_audit_table(stack, publisher, bq, audit, aid):
    events = [
        new_event(aid, "work", "w-1", "failed", actor="u-7", notes="disk full", retries=3),
        new_event(aid, "segment", "s-1", "update"),
        new_event(aid, "user", "u-2", "created"),
    ]
    bad = json.dumps({"aid": aid, "subject_type": "nope", "subject_id": "x", "verb": "created"}).encode()
    publisher.publish_all(
        [(stack.topology.ingest_topic, e.to_json(), {}) for e in events]
        + [(stack.topology.ingest_topic, bad, {})]
    )

    got = wait_until(lambda: len(r := rows(bq, audit, "aid = @aid", aid=aid)) >= 3 and r)
    assert sorted(r["event_id"] for r in got) == sorted(
        e.id for e in events
    )  # the invalid one is not archived
    first = next(r for r in got if r["event_id"] == events[0].id)
    assert (first["subject_type"], first["subject_id"], first["verb"], first["actor"]) == (
        "work",
        "w-1",
        "failed",
        "u-7",
    )
    assert first["time"] == events[0].time
    assert first["data"]["notes"] == "disk full" and first["data"]["retries"] == 3
    assert first["published_at"] is not None and first["inserted_at"] is not None
    assert next(r for r in got if r["event_id"] == events[1].id)["verb"] == "updated"


def test_audit_table_is_partitioned_by_day_on_event_time_and_clustered(stack, publisher, bq, audit, aid):
    publisher.publish_all(
        [(stack.topology.ingest_topic, new_event(aid, "work", "w", "created").to_json(), {})]
    )
    assert wait_until(lambda: rows(bq, audit, "aid = @aid", aid=aid))
    table = bq.get_table(audit.id)
    assert table.time_partitioning.type_ == "DAY" and table.time_partitioning.field == "time"
    assert table.clustering_fields == ["aid", "subject_type", "verb"]
    assert [f.to_api_repr() for f in table.schema] == [f.to_api_repr() for f in schema.schema()]


def test_a_flat_event_archived_on_a_retry_keeps_the_id_and_time_of_its_first_publication(
    stack, rt, bq, audit, aid, monkeypatch
):
    # A flat event without id or time takes its message's id and publish time. The archive's retry is a
    # new message (new id, new publish time): it used to archive the event under another id (a second row
    # when the first insert had landed after all) and at another time.
    import base64
    import uuid

    from sysevents.config import Settings
    from sysevents.delivery.envelope import Envelope
    from sysevents.local.processes import free_port
    from sysevents.runtime import Runtime
    from sysevents.sinks.audit.sink import AuditSink

    def push(data: bytes, attributes: dict, message_id: str, published: str) -> bytes:
        message = {"data": base64.b64encode(data).decode(), "attributes": attributes, "messageId": message_id,
                   "publishTime": published}  # fmt: skip
        return json.dumps({"subscription": "projects/p/subscriptions/audit", "message": message}).encode()

    flat = json.dumps({"aid": aid, "subject_type": "work", "subject_id": "w-1", "verb": "failed"}).encode()
    first_id = uuid.uuid4().hex
    failing = Runtime(Settings(bigquery_endpoint=f"http://127.0.0.1:{free_port()}", bigquery_timeout=2))
    released: list = []
    monkeypatch.setattr(failing.delays, "put", lambda release, at, name: released.append(release))
    try:
        body, code = Envelope(failing, AuditSink(failing)).push(
            push(flat, {}, first_id, "2026-03-04T05:06:07.123456789Z")
        )
    finally:
        failing.close()
    assert code == 200 and body.startswith("retry"), body
    [retry] = released
    body, code = Envelope(rt, AuditSink(rt)).push(
        push(retry.data, retry.attributes, uuid.uuid4().hex, "2026-03-04T05:09:00Z")
    )
    assert code == 200, body
    [row] = wait_until(lambda: rows(bq, audit, "aid = @aid", aid=aid))
    assert row["event_id"] == first_id
    assert row["time"].isoformat() == "2026-03-04T05:06:07.123456+00:00"
