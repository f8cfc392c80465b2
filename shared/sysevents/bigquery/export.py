"""BigQuery export jobs (`bigquery_system_events`): the streaming decision, backfills and the hand-over.

Modes (config `mode`):
- `continuous`: every matching event is streamed into the target table as it arrives.
- `one_time`: a backfill copies the matching events of [start_time, end_time) from the audit table, once.
- `backfill_then_continuous`: a backfill copies the matching events before the job's *watermark* W,
  and streaming takes every event from W on.

The hand-over, with no gap and no duplicate (W = config `watermark`, set when the job is saved to
`export_handover_seconds` after the save, so every function instance has the job before W):
- The two paths split events by one key, the event's `time`: time >= W is streamed, time < W is the
  backfill's. The key travels with the event, so both paths decide the same way for every event.
- An event with time < W that reaches the streaming path (a late event) while the backfill runs is
  parked in Firestore (`exports/{job}/held/`) and acked; the backfill, before it marks itself done,
  writes the parked events the target lacks. Parking and marking done are Firestore transactions on the
  same run document, so an event is either parked before the run is done (and written by the backfill)
  or sees the run done (and is written by streaming if the target lacks it). So the backfill and
  streaming never write the same time range concurrently.
- The backfill starts scanning only at W + `export_handover_seconds`, when events before W have reached
  the audit table, and skips events already in the target (a resumed or re-run backfill adds nothing twice).
- Redelivered messages (delivery attempt > 1) check the target first: a lost ack does not duplicate a row.
The emulator ignores insertId de-duplication; none of this relies on it (real BigQuery's is best effort).

Backfill state lives in Firestore (`exports/{job id}`): watermark, range, cursor, counts, state. A failed
or interrupted backfill resumes from its cursor.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from google.cloud import bigquery
from google.cloud import firestore as fs

from ..events import SubjectType, SystemEvent, Verb, event_from_dict, new_event
from ..jobs import BigQueryConfig, ExportMode, Job, Workflow
from ..matching import matches
from ..runtime import Runtime
from .schema import TableRef, event_of_row, row_from_query, row_of_event
from .writer import TableWriter

log = logging.getLogger(__name__)

ACTOR = "sysevents"
PAGE_ROWS = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COLUMNS = "event_id, time, aid, subject_type, subject_id, verb, actor, data, published_at"


class RunState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class NothingToBackfill(ValueError):
    pass


def config_of(job: Job) -> BigQueryConfig:
    if job.workflow is not Workflow.BIGQUERY or not isinstance(job.config, BigQueryConfig):
        raise ValueError(f"job {job.id} is a {job.workflow.value} job, not {Workflow.BIGQUERY.value}")
    return job.config


def target_of(job: Job, default_project: str) -> TableRef:
    cfg = config_of(job)
    return TableRef(cfg.project or default_project, cfg.dataset, cfg.table)


def watermark_of(job: Job, handover_seconds: float) -> datetime:
    """Where backfill ends and streaming begins: config `watermark`, else save time + hand-over delay."""
    cfg = config_of(job)
    if cfg.watermark is not None:
        return cfg.watermark
    if job.created_at is None:
        raise ValueError(f"job {job.id}: backfill_then_continuous needs a watermark (or a saved job)")
    created = job.created_at if job.created_at.tzinfo else job.created_at.replace(tzinfo=UTC)
    return created + timedelta(seconds=handover_seconds)


def backfill_range(job: Job, handover_seconds: float) -> tuple[datetime | None, datetime]:
    cfg = config_of(job)
    if cfg.mode is ExportMode.ONE_TIME:
        assert cfg.end_time is not None
        return cfg.start_time, cfg.end_time
    if cfg.mode is ExportMode.BACKFILL_THEN_CONTINUOUS:
        return cfg.start_time, watermark_of(job, handover_seconds)
    raise NothingToBackfill(f"job {job.id} is continuous: it has nothing to backfill")


def new_export_job(
    aid: str,
    config: dict[str, Any],
    *,
    handover_seconds: float,
    job_id: str | None = None,
    name: str | None = None,
) -> Job:
    """A job for `JobStore.put`; backfill_then_continuous gets its watermark = now + hand-over delay."""
    from ..jobs import job_from_dict

    config = dict(config)
    if config.get("mode") == ExportMode.BACKFILL_THEN_CONTINUOUS.value and not config.get("watermark"):
        config["watermark"] = (datetime.now(UTC) + timedelta(seconds=handover_seconds)).isoformat()
    return job_from_dict(
        {"workflow": Workflow.BIGQUERY.value, "config": config, "name": name},
        job_id=job_id or f"bq-{uuid.uuid4().hex[:12]}",
        aid=aid,
    )


# -- streaming ---------------------------------------------------------------------------------------------
class Decision(StrEnum):
    WRITE = "write"  # stream it
    WRITE_IF_ABSENT = "write_if_absent"  # late event after the backfill: write unless already there
    HOLD = "hold"  # late event during the backfill: retry later
    SKIP = "skip"  # not this path's (one_time jobs are exported by their backfill only)


def streaming_decision(
    job: Job, event: SystemEvent, *, handover_seconds: float, backfill_done: Callable[[Job, datetime], bool]
) -> Decision:
    cfg = config_of(job)
    if cfg.mode is ExportMode.CONTINUOUS:
        return Decision.WRITE
    if cfg.mode is ExportMode.ONE_TIME:
        return Decision.SKIP
    w = watermark_of(job, handover_seconds)
    if cfg.start_time is not None and event.time < cfg.start_time:
        return Decision.SKIP  # before the export's range altogether
    if event.time >= w:
        return Decision.WRITE
    return Decision.WRITE_IF_ABSENT if backfill_done(job, w) else Decision.HOLD


# -- run state (Firestore) ---------------------------------------------------------------------------------
class Runs:
    """Backfill runs in Firestore: `exports/{job id}`, one per job (re-running resumes it)."""

    def __init__(self, client: fs.Client, collection: str = "exports"):
        self.collection = client.collection(collection)
        self._done: set[tuple[str, str]] = set()

    def get(self, job_id: str) -> dict[str, Any] | None:
        snap = self.collection.document(job_id).get()
        return snap.to_dict() if snap.exists else None

    def put(self, job_id: str, fields: dict[str, Any]) -> None:
        self.collection.document(job_id).set(fields, merge=True)

    def is_done(self, job: Job, watermark: datetime) -> bool:
        """Whether the backfill up to `watermark` finished (cached once true: it never becomes false)."""
        key = (job.id, watermark.isoformat())
        if key in self._done:
            return True
        run = self.get(job.id)
        done = bool(run and run.get("state") == RunState.DONE and run.get("end") == watermark.isoformat())
        if done:
            self._done.add(key)
        return done

    def park_unless_done(
        self, job: Job, watermark: datetime, event: SystemEvent, published_at: str | None
    ) -> bool:
        """In one transaction: True when the backfill up to `watermark` is done (the caller writes the
        event if absent); else keep the late event under `exports/{job}/held/` for the backfill to
        finish with, and return False. `finish` takes the same lock, so no event slips between them."""
        run_ref = self.collection.document(job.id)
        held_ref = run_ref.collection("held").document(event.id)

        @fs.transactional
        def txn(tx: fs.Transaction) -> bool:
            snap = run_ref.get(transaction=tx)
            run = snap.to_dict() if snap.exists else {}
            if run.get("state") == RunState.DONE and run.get("end") == watermark.isoformat():
                return True
            tx.set(held_ref, {"event": event.to_cloudevent(), "published_at": published_at})
            return False

        return txn(self.collection._client.transaction())

    def finish(self, job_id: str, write_held: Callable[[list[dict[str, Any]]], None]) -> int:
        """Hand the held late events to `write_held`, then mark the run done once none is left (in a
        transaction that sees any event parked meanwhile). Returns how many were held."""
        run_ref = self.collection.document(job_id)
        held = run_ref.collection("held")
        count = 0

        @fs.transactional
        def close(tx: fs.Transaction) -> bool:
            if list(held.limit(1).get(transaction=tx)):
                return False
            tx.set(run_ref, {"state": RunState.DONE.value, "finished_at": datetime.now(UTC)}, merge=True)
            return True

        while True:
            docs = list(held.limit(500).stream())
            if docs:
                write_held([d.to_dict() for d in docs])
                for d in docs:
                    d.reference.delete()
                count += len(docs)
                continue
            if close(self.collection._client.transaction()):
                return count


# -- lifecycle events --------------------------------------------------------------------------------------
def lifecycle_event(job: Job, verb: Verb, notes: str, **fields: Any) -> SystemEvent:
    """A work event about the export job (started, syncing, synced, synccomplete, completed, failed)."""
    return new_event(
        job.aid,
        SubjectType.WORK.value,
        job.id,
        verb.value,
        actor=ACTOR,
        notes=notes,
        workflow=job.workflow.value,
        # Causation mark (sysevents.origin): ingest never delivers these to the job they are about.
        sysevents_origin={"job_id": job.id, "kind": "lifecycle", "hops": 0},
        **fields,
    )


def publish_lifecycle(rt: Runtime, job: Job, verb: Verb, notes: str, **fields: Any) -> SystemEvent:
    event = lifecycle_event(job, verb, notes, **fields)
    rt.publisher.publish_all([(rt.topology.ingest_topic, event.to_json(), {})])
    log.info("export %s: %s (%s)", job.id, verb.value, notes)
    return event


# -- backfill ----------------------------------------------------------------------------------------------
@dataclass
class Progress:
    scanned: int
    total: int
    written: int
    refused: int


@dataclass
class BackfillResult:
    job_id: str
    start: datetime | None
    end: datetime
    scanned: int
    written: int
    refused: int
    state: RunState


def _params(aid: str, verbs: list[str], start: datetime | None, end: datetime) -> list:
    return [
        bigquery.ScalarQueryParameter("aid", "STRING", aid),
        bigquery.ArrayQueryParameter("verbs", "STRING", verbs),
        bigquery.ScalarQueryParameter("lo", "TIMESTAMP", start or _EPOCH),
        bigquery.ScalarQueryParameter("hi", "TIMESTAMP", end),
    ]


def _source_sql(audit: TableRef, target: TableRef | None) -> str:
    """Distinct audit rows of one account, wanted verbs and time range, not already in the target."""
    not_in_target = (
        f" AND event_id NOT IN (SELECT event_id FROM {target.sql} WHERE time >= @lo AND time < @hi)"  # noqa: S608 - identifiers checked by TableRef.sql; values are parameters
        if target
        else ""
    )
    return (
        f"SELECT {COLUMNS} FROM {audit.sql} WHERE aid = @aid AND verb IN UNNEST(@verbs) "  # noqa: S608 - identifiers checked by TableRef.sql; values are parameters
        f"AND time >= @lo AND time < @hi{not_in_target} "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY inserted_at) = 1"
    )


class AuditReader:
    """Reads an account's events out of the audit table in (time, event_id) order, a page at a time."""

    def __init__(self, client: bigquery.Client, audit: TableRef, timeout: float = 120.0):
        self.client = client
        self.audit = audit
        self.timeout = timeout

    def _query(self, sql: str, params: list) -> list:
        job = self.client.query(
            sql, job_config=bigquery.QueryJobConfig(query_parameters=params), timeout=self.timeout
        )
        return list(job.result(timeout=self.timeout))

    def count(
        self,
        aid: str,
        verbs: list[str],
        start: datetime | None,
        end: datetime,
        target: TableRef | None = None,
    ) -> int:
        sql = f"SELECT COUNT(*) AS n FROM ({_source_sql(self.audit, target)})"  # noqa: S608 - identifiers checked by TableRef.sql; values are parameters
        return int(self._query(sql, _params(aid, verbs, start, end))[0]["n"])

    def pages(
        self,
        aid: str,
        verbs: list[str],
        start: datetime | None,
        end: datetime,
        *,
        target: TableRef | None = None,
        after: tuple[datetime, str] | None = None,
        page_rows: int = PAGE_ROWS,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of rows; `after` (time, event_id) resumes behind a cursor."""
        cursor = after
        while True:
            params = _params(aid, verbs, start, end) + [
                bigquery.ScalarQueryParameter("ct", "TIMESTAMP", cursor[0] if cursor else _EPOCH),
                bigquery.ScalarQueryParameter("ci", "STRING", cursor[1] if cursor else ""),
                bigquery.ScalarQueryParameter("n", "INT64", page_rows),
            ]
            sql = (
                f"SELECT * FROM ({_source_sql(self.audit, target)}) "  # noqa: S608 - identifiers checked by TableRef.sql; values are parameters
                "WHERE time > @ct OR (time = @ct AND event_id > @ci) "
                "ORDER BY time, event_id LIMIT @n"
            )
            rows = [dict(r) for r in self._query(sql, params)]
            if not rows:
                return
            yield rows
            cursor = (rows[-1]["time"], rows[-1]["event_id"])
            if len(rows) < page_rows:
                return


def run_backfill(
    rt: Runtime,
    job: Job,
    *,
    writer: TableWriter,
    audit: TableRef,
    progress: Callable[[Progress], None] | None = None,
    page_rows: int = PAGE_ROWS,
    sleep: Callable[[float], None] = time.sleep,
) -> BackfillResult:
    """Copy the job's events of its backfill range from the audit table into its target table.

    Emits the lifecycle events; resumes from the stored cursor; returns at once when already done.
    For backfill_then_continuous it first waits until the watermark + hand-over delay has passed.
    """
    cfg = config_of(job)
    handover = rt.settings.export_handover_seconds
    start, end = backfill_range(job, handover)
    target = target_of(job, rt.settings.project)
    runs = Runs(rt.firestore, rt.settings.exports_collection)
    run = runs.get(job.id) or {}
    same = run.get("end") == end.isoformat() and run.get("start") == (start.isoformat() if start else None)
    if same and run.get("state") == RunState.DONE:
        return BackfillResult(
            job.id,
            start,
            end,
            run.get("scanned", 0),
            run.get("written", 0),
            run.get("refused", 0),
            RunState.DONE,
        )
    if not same:
        run = {}
    mode = cfg.mode.value
    publish_lifecycle(
        rt,
        job,
        Verb.STARTED,
        f"{mode} export to {target.id} started",
        mode=mode,
        start_time=start.isoformat() if start else None,
        end_time=end.isoformat(),
    )
    runs.put(
        job.id,
        {
            "job_id": job.id,
            "aid": job.aid,
            "job_version": job.version,
            "mode": mode,
            "target": target.id,
            "start": start.isoformat() if start else None,
            "end": end.isoformat(),
            "state": RunState.RUNNING.value,
            "started_at": datetime.now(UTC),
            "error": None,
        },
    )
    try:
        if cfg.mode is ExportMode.BACKFILL_THEN_CONTINUOUS:
            ready_at = end + timedelta(seconds=handover)
            while (wait := (ready_at - datetime.now(UTC)).total_seconds()) > 0:
                sleep(min(wait, 1.0))
        writer.table_schema(target, create_if_missing=cfg.create_if_missing)
        reader = AuditReader(rt.bigquery, audit, timeout=max(rt.settings.bigquery_timeout, 120.0))
        verbs = sorted(v.value for v in cfg.verbs())
        total = reader.count(job.aid, verbs, start, end, target)
        cursor = None
        if run.get("cursor_time"):
            cursor = (datetime.fromisoformat(run["cursor_time"]), run["cursor_event_id"])
        scanned, written, refused = run.get("scanned", 0), run.get("written", 0), run.get("refused", 0)
        total += scanned
        publish_lifecycle(
            rt, job, Verb.SYNCING, f"copying up to {total} event(s) into {target.id}", total=total
        )
        f = job.filter
        for page in reader.pages(
            job.aid, verbs, start, end, target=target, after=cursor, page_rows=page_rows
        ):
            items = []
            for row in page:
                if matches(f, event_of_row(row)):
                    items.append((row["event_id"], row_from_query(row)))
            results = writer.write(target, items, create_if_missing=cfg.create_if_missing, batched=False)
            for (event_id, row), res in zip(items, results, strict=True):
                if not res.stored:
                    refused += 1
                    _dead_letter_row(rt, job, event_id, row, res.reason or "refused")
            scanned += len(page)
            written += sum(1 for r in results if r.stored)
            last = page[-1]
            runs.put(
                job.id,
                {
                    "cursor_time": last["time"].isoformat(),
                    "cursor_event_id": last["event_id"],
                    "scanned": scanned,
                    "written": written,
                    "refused": refused,
                },
            )
            publish_lifecycle(
                rt,
                job,
                Verb.SYNCED,
                f"{written} event(s) copied so far",
                written=written,
                scanned=scanned,
                total=total,
            )
            if progress:
                progress(Progress(scanned=scanned, total=total, written=written, refused=refused))
        if cfg.mode is ExportMode.BACKFILL_THEN_CONTINUOUS:
            written += finish_backfill(rt, job, writer=writer)
        else:
            runs.put(job.id, {"state": RunState.DONE.value, "finished_at": datetime.now(UTC)})
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
        runs.put(
            job.id, {"state": RunState.FAILED.value, "error": reason[:1000], "finished_at": datetime.now(UTC)}
        )
        publish_lifecycle(rt, job, Verb.FAILED, f"export to {target.id} failed: {reason}"[:1000])
        raise
    if cfg.mode is ExportMode.BACKFILL_THEN_CONTINUOUS:
        publish_lifecycle(
            rt,
            job,
            Verb.SYNCCOMPLETE,
            f"backfill done ({written} event(s)); streaming continues from {end.isoformat()}",
            written=written,
            refused=refused,
        )
    else:
        publish_lifecycle(
            rt, job, Verb.SYNCCOMPLETE, f"{written} event(s) copied", written=written, refused=refused
        )
        publish_lifecycle(
            rt,
            job,
            Verb.COMPLETED,
            f"one-time export to {target.id} completed",
            written=written,
            refused=refused,
        )
    return BackfillResult(job.id, start, end, scanned, written, refused, RunState.DONE)


def finish_backfill(rt: Runtime, job: Job, *, writer: TableWriter) -> int:
    """End a backfill-then-continuous hand-over: write the late events streaming held while the backfill
    ran (those not in the target yet), then mark the run done. Returns how many rows were written."""
    cfg = config_of(job)
    target = target_of(job, rt.settings.project)
    written = 0

    def write_held(docs: list[dict[str, Any]]) -> None:
        nonlocal written
        items = []
        for doc in docs:
            event = event_from_dict(doc["event"])
            if not writer.contains(target, event.id, event.time):
                items.append((event.id, row_of_event(event, published_at=doc.get("published_at"))))
        for (event_id, row), res in zip(
            items,
            writer.write(target, items, create_if_missing=cfg.create_if_missing, batched=False),
            strict=True,
        ):
            if res.stored:
                written += 1
            else:
                _dead_letter_row(rt, job, event_id, row, res.reason or "refused")

    Runs(rt.firestore, rt.settings.exports_collection).finish(job.id, write_held)
    return written


def _dead_letter_row(rt: Runtime, job: Job, event_id: str, row: dict[str, Any], reason: str) -> None:
    sink = rt.topology.sinks["bigquery"]
    data = json.dumps(row, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    rt.publisher.publish_all(
        [
            (
                sink.dead_letter_topic,
                data,
                {
                    "job_id": job.id,
                    "aid": job.aid,
                    "event_id": event_id,
                    "reason": reason,
                    "attempts": "1",
                    "source": "backfill",
                    "dead_lettered_at": datetime.now(UTC).isoformat(),
                },
            )
        ]
    )
    log.warning("export %s: row for event %s refused: %s", job.id, event_id, reason)
