"""Unit tests (no servers): row validation, insert error mapping, micro-batching, the hand-over rule, config."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from sysevents.auditlog import schema
from sysevents.auditlog.writer import InsertFailed, MicroBatcher, insert_errors_by_row
from sysevents.events.model import new_event
from sysevents.jobs.model import InvalidJob, job_from_dict
from sysevents.sinks.bigquery.export import Decision, new_export_job, streaming_decision

FIELDS = schema.schema()


def good_row(**over):
    return {**schema.row_of_event(new_event("a1", "work", "w1", "failed", actor="u", notes="n")), **over}


def test_a_row_of_an_event_is_valid_and_reads_back_as_the_event():
    event = new_event("a1", "segment", "s1", "update", actor="u", notes="x", count=3)
    row = schema.row_of_event(event, published_at="2026-01-01T00:00:00Z")
    assert schema.validate_row(row, FIELDS) == []
    assert schema.event_of_row(row) == event


@pytest.mark.parametrize(
    ("over", "problem"),
    [
        ({"event_id": None}, "event_id: required, missing"),
        ({"time": "yesterday"}, "time: not a TIMESTAMP: 'yesterday'"),
        ({"verb": 7}, "verb: expected STRING, got int"),
        ({"data": "{not json"}, "data: not valid JSON"),
        ({"colour": "red"}, "colour: no such column in the table"),
        ({"inserted_at": None}, "inserted_at: required, missing"),
    ],
)
def test_bad_rows_are_caught_with_the_reason(over, problem):
    problems = schema.validate_row(good_row(**over), FIELDS)
    assert any(problem in p for p in problems), problems


def test_schema_file_defines_layout_once():
    d = schema.definition()
    assert d["time_partitioning"] == {"type": "DAY", "field": "time"}
    assert d["clustering"] == ["aid", "subject_type", "verb"]
    table = schema.new_table("p.d.t")
    assert table.time_partitioning.field == "time" and table.clustering_fields == d["clustering"]


def test_insert_errors_map_to_their_rows():
    errors = [
        {"index": 1, "errors": [{"reason": "invalid", "location": "time", "message": "bad value"}]},
        {"index": 7, "errors": [{"reason": "invalid"}]},
    ]  # out of range: ignored
    assert insert_errors_by_row(3, errors) == [None, "BigQuery refused the row: time: bad value", None]


def test_concurrent_rows_share_inserts_and_each_waits_for_its_own_outcome():
    calls = []
    lock = threading.Lock()

    def insert(table, ids, rows):
        with lock:
            calls.append(list(ids))
        return ["refused: odd" if int(i) % 2 else None for i in ids]

    batcher = MicroBatcher(insert, max_rows=50, max_wait=0.2)
    with ThreadPoolExecutor(40) as pool:
        results = list(pool.map(lambda i: batcher.submit("t", [(str(i), {"n": i})])[0], range(200)))
    assert sorted(i for c in calls for i in c) == sorted(str(i) for i in range(200))  # each row sent once
    assert len(calls) < 200 / 4 and max(len(c) for c in calls) <= 50
    assert [r.stored for r in results] == [i % 2 == 0 for i in range(200)]
    assert results[1].reason == "refused: odd"


def test_a_failed_insert_fails_every_row_of_its_batch():
    def insert(table, ids, rows):
        raise OSError("connection reset")

    batcher = MicroBatcher(insert, max_rows=10, max_wait=0.05)
    with pytest.raises(InsertFailed, match="connection reset"):
        batcher.submit("t", [("1", {}), ("2", {})])


def _job(mode, **cfg):
    return new_export_job(
        "a1",
        {"dataset": "d", "table": "t", "system_event_type": "failed", "mode": mode, **cfg},
        handover_seconds=0,
    )


def test_the_hand_over_rule():
    w = datetime(2026, 6, 1, tzinfo=UTC)
    job = _job("backfill_then_continuous", watermark=w.isoformat())

    def decide(t, done):
        return streaming_decision(
            job,
            new_event("a1", "work", "w", "failed", time=t),
            handover_seconds=0,
            backfill_done=lambda j, wm: done,
        )

    assert decide(w, False) is Decision.WRITE
    assert decide(w + timedelta(seconds=1), False) is Decision.WRITE
    assert decide(w - timedelta(microseconds=1), False) is Decision.HOLD
    assert decide(w - timedelta(days=9), True) is Decision.WRITE_IF_ABSENT
    one_time = _job("one_time", start_time="2026-01-01T00:00:00Z", end_time="2026-02-01T00:00:00Z")
    event = new_event("a1", "work", "w", "failed")
    assert (
        streaming_decision(one_time, event, handover_seconds=0, backfill_done=lambda j, w: True)
        is Decision.SKIP
    )
    assert (
        streaming_decision(_job("continuous"), event, handover_seconds=0, backfill_done=lambda j, w: False)
        is Decision.WRITE
    )


def test_backfill_then_continuous_gets_its_watermark_when_saved():
    before = datetime.now(UTC)
    job = new_export_job(
        "a1",
        {"dataset": "d", "table": "t", "system_event_type": "failed", "mode": "backfill_then_continuous"},
        handover_seconds=10,
    )
    assert before + timedelta(seconds=10) <= job.config.watermark <= datetime.now(UTC) + timedelta(seconds=10)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"mode": "one_time"}, "mode one_time needs start_time and end_time"),
        (
            {"mode": "one_time", "start_time": "2026-02-01T00:00:00Z", "end_time": "2026-01-01T00:00:00Z"},
            "end_time must be after start_time",
        ),
        ({"mode": "continuous", "start_time": "2026-01-01T00:00:00Z"}, "start_time applies to one_time"),
        (
            {"mode": "sometimes"},
            "config.mode: Input should be 'continuous', 'one_time' or 'backfill_then_continuous'",
        ),
        ({"dataset": "my dataset; DROP"}, "config.dataset: String should match pattern"),
        ({"table": "t`x"}, "config.table: String should match pattern"),
    ],
)
def test_bad_export_configs_are_refused_naming_the_field(config, message):
    doc = {
        "workflow": "bigquery_system_events",
        "config": {"dataset": "d", "table": "t", "system_event_type": "failed", **config},
    }
    with pytest.raises(InvalidJob) as err:
        job_from_dict(doc, job_id="j", aid="a1")
    assert message in err.value.reason
