"""The audit log: every valid event lands in the partitioned, clustered audit table, once."""

import json

import pytest
from bq_helpers import rows, wait_until

from sysevents.bigquery import schema
from sysevents.events import new_event

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
