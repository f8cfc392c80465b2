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

    # A lease keeps one runner (a tick, `sysevents export run`) on a backfill at a time.
    def claim(self, job_id: str, owner: str, seconds: float) -> bool:
        """Take the run's lease for `seconds` unless another owner holds an unexpired one."""
        ref = self.collection.document(job_id)

        @fs.transactional
        def txn(tx: fs.Transaction) -> bool:
            snap = ref.get(transaction=tx)
            run = snap.to_dict() if snap.exists else {}
            now = datetime.now(UTC)
            if run.get("lease_owner") not in (None, owner) and (run.get("lease_until") or now) > now:
                return False
            tx.set(ref, {"lease_owner": owner, "lease_until": now + timedelta(seconds=seconds)}, merge=True)
            return True

        return txn(self.collection._client.transaction())

    def checkpoint(self, job_id: str, owner: str, fields: dict[str, Any], seconds: float) -> None:
        """Store `fields` and renew the lease, in one transaction; LeaseLost when `owner` no longer has it."""
        ref = self.collection.document(job_id)

        @fs.transactional
        def txn(tx: fs.Transaction) -> None:
            snap = ref.get(transaction=tx)
            if (snap.to_dict() or {}).get("lease_owner") != owner:
                raise LeaseLost(f"backfill {job_id} is no longer held by {owner}")
            until = datetime.now(UTC) + timedelta(seconds=seconds)
            tx.set(ref, {**fields, "lease_until": until}, merge=True)

        txn(self.collection._client.transaction())

    def release(self, job_id: str, owner: str) -> None:
        ref = self.collection.document(job_id)

        @fs.transactional
        def txn(tx: fs.Transaction) -> None:
            snap = ref.get(transaction=tx)
            if snap.exists and (snap.to_dict() or {}).get("lease_owner") == owner:
                tx.set(ref, {"lease_owner": None, "lease_until": None}, merge=True)

        txn(self.collection._client.transaction())

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


# -- the backfill loop: shared by BigQuery one-time/backfill exports and webhook batch exports ------------
class LeaseLost(RuntimeError):
    """Another runner took the backfill over (this one's lease ran out): stop without writing more."""


class DeliveryRetry(RuntimeError):
    """A page could not be delivered this time (transient); `retry_after` seconds asked by the receiver."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class DeliveryRefused(RuntimeError):
    """A page will never be delivered as is (refused destination, HTTP 4xx, template error): fail now."""


@dataclass
class Backfill:
    """One job's backfill as the loop sees it: what it reads from the audit table and how it delivers a page."""

    job: Job
    start: datetime | None
    end: datetime
    ready_at: datetime  # from then on the range's events have reached the audit table
    label: str  # where the events go, for lifecycle notes ("BigQuery table p.d.t", "webhook")
    page_rows: int
    exclude: TableRef | None  # rows already in this table are skipped (BigQuery targets)
    prepare: Callable[[], None]
    deliver: Callable[[list[dict[str, Any]]], tuple[int, int]]  # matching rows -> (written, refused)
    finish: Callable[[], int]  # mark the run done; returns rows written while finishing
    continues: bool = False  # streaming goes on after it (backfill_then_continuous): no `completed`
    kind: str = "export"

    @property
    def range_fields(self) -> dict[str, Any]:
        return {"start": self.start.isoformat() if self.start else None, "end": self.end.isoformat()}


def bigquery_backfill(rt: Runtime, job: Job, *, writer: TableWriter, page_rows: int = PAGE_ROWS) -> Backfill:
    cfg = config_of(job)
    handover = rt.settings.export_handover_seconds
    start, end = backfill_range(job, handover)
    target = target_of(job, rt.settings.project)
    runs = Runs(rt.firestore, rt.settings.exports_collection)

    def deliver(rows: list[dict[str, Any]]) -> tuple[int, int]:
        items = [(row["event_id"], row_from_query(row)) for row in rows]
        results = writer.write(target, items, create_if_missing=cfg.create_if_missing, batched=False)
        refused = 0
        for (event_id, row), res in zip(items, results, strict=True):
            if not res.stored:
                refused += 1
                _dead_letter_row(rt, job, event_id, row, res.reason or "refused")
        return len(items) - refused, refused

    def finish() -> int:
        if cfg.mode is ExportMode.BACKFILL_THEN_CONTINUOUS:
            return finish_backfill(rt, job, writer=writer)
        runs.put(job.id, {"state": RunState.DONE.value, "finished_at": datetime.now(UTC)})
        return 0

    return Backfill(
        job=job,
        start=start,
        end=end,
        ready_at=end + timedelta(seconds=handover),
        label=f"BigQuery table {target.id}",
        page_rows=page_rows,
        exclude=target,
        prepare=lambda: writer.table_schema(target, create_if_missing=cfg.create_if_missing),
        deliver=deliver,
        finish=finish,
        continues=cfg.mode is ExportMode.BACKFILL_THEN_CONTINUOUS,
        kind=f"{cfg.mode.value} export",
    )


def backfill_of(
    rt: Runtime,
    job: Job,
    *,
    writer: TableWriter | None = None,
    sender: Any = None,
    page_rows: int | None = None,
) -> Backfill:
    """The backfill of a BigQuery export (one_time, backfill_then_continuous) or a webhook batch export."""
    if job.workflow is Workflow.WEBHOOK:
        from .batch import webhook_backfill

        return webhook_backfill(rt, job, sender=sender)
    if writer is None:
        raise ValueError("a BigQuery backfill needs a TableWriter")
    return bigquery_backfill(rt, job, writer=writer, page_rows=page_rows or PAGE_ROWS)


def _result(bf: Backfill, run: dict[str, Any], state: RunState) -> BackfillResult:
    return BackfillResult(
        bf.job.id,
        bf.start,
        bf.end,
        run.get("scanned", 0),
        run.get("written", 0),
        run.get("refused", 0),
        state,
    )


def advance(
    rt: Runtime,
    bf: Backfill,
    *,
    audit: TableRef,
    owner: str,
    deadline: float | None = None,
    max_pages: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    max_errors: int = 1,
) -> BackfillResult:
    """Advance a backfill by one slice: until it is done, `deadline` (time.monotonic()) or `max_pages`.

    The caller holds the run's lease (`Runs.claim` with `owner`); every checkpoint re-checks it, so a
    runner that lost it stops (LeaseLost) before delivering another page. Resumes from the stored cursor.
    A page that fails is retried by the next slice; after `max_errors` consecutive failures (or at once
    for DeliveryRefused) the run fails with a `failed` event. Returns the run's state afterwards.
    """
    job = bf.job
    rng = bf.range_fields
    runs = Runs(rt.firestore, rt.settings.exports_collection)
    lease = rt.settings.export_lease_seconds
    run = runs.get(job.id) or {}
    same = run.get("end") == rng["end"] and run.get("start") == rng["start"]
    if same and run.get("state") == RunState.DONE:
        return _result(bf, run, RunState.DONE)
    fresh = not same or run.get("state") != RunState.RUNNING
    if not same:
        run = {}
    scanned, written, refused = run.get("scanned", 0), run.get("written", 0), run.get("refused", 0)
    total = run.get("total", 0)
    reader = AuditReader(rt.bigquery, audit, timeout=max(rt.settings.bigquery_timeout, 120.0))
    verbs = sorted(v.value for v in job.selection.verbs)
    try:
        if fresh:
            publish_lifecycle(
                rt,
                job,
                Verb.STARTED,
                f"{bf.kind} to {bf.label} started",
                mode=bf.kind,
                start_time=rng["start"],
                end_time=rng["end"],
            )
            runs.checkpoint(
                job.id,
                owner,
                {
                    "job_id": job.id,
                    "aid": job.aid,
                    "job_version": job.version,
                    "mode": bf.kind,
                    "target": bf.label,
                    **rng,
                    "state": RunState.RUNNING.value,
                    "started_at": datetime.now(UTC),
                    "error": None,
                    "errors": 0,
                    **({} if same else {"cursor_time": None, "cursor_event_id": None}),
                },
                lease,
            )
            bf.prepare()
            total = reader.count(job.aid, verbs, bf.start, bf.end, bf.exclude) + scanned
            runs.checkpoint(job.id, owner, {"total": total}, lease)
            publish_lifecycle(
                rt, job, Verb.SYNCING, f"copying up to {total} event(s) to {bf.label}", total=total
            )
        else:
            bf.prepare()
        cursor = None
        if run.get("cursor_time"):
            cursor = (datetime.fromisoformat(run["cursor_time"]), run["cursor_event_id"])
        selection = job.selection
        pages = 0
        for page in reader.pages(
            job.aid, verbs, bf.start, bf.end, target=bf.exclude, after=cursor, page_rows=bf.page_rows
        ):
            runs.checkpoint(job.id, owner, {}, lease)  # still ours: deliver nothing twice
            w, r = bf.deliver([row for row in page if matches(selection, event_of_row(row))])
            scanned, written, refused = scanned + len(page), written + w, refused + r
            last = page[-1]
            runs.checkpoint(
                job.id,
                owner,
                {
                    "cursor_time": last["time"].isoformat(),
                    "cursor_event_id": last["event_id"],
                    "scanned": scanned,
                    "written": written,
                    "refused": refused,
                    "errors": 0,
                    "error": None,
                },
                lease,
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
            pages += 1
            if (max_pages is not None and pages >= max_pages) or (
                deadline is not None and time.monotonic() >= deadline
            ):
                return _result(bf, runs.get(job.id) or {}, RunState.RUNNING)
        runs.checkpoint(job.id, owner, {}, lease)
        written += bf.finish()
        runs.put(job.id, {"written": written})
    except LeaseLost:
        log.warning("backfill %s: lease lost to another runner; stopping this slice", job.id)
        return _result(bf, runs.get(job.id) or {}, RunState.RUNNING)
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"[:1000]
        errors = (runs.get(job.id) or {}).get("errors", 0) + 1
        if errors < max_errors and not isinstance(err, DeliveryRefused):
            wait = err.retry_after if isinstance(err, DeliveryRetry) else None
            not_before = datetime.now(UTC) + timedelta(seconds=wait) if wait else None
            runs.put(job.id, {"errors": errors, "error": reason, "not_before": not_before})
            log.warning(
                "backfill %s: attempt failed (%d/%d), retried later: %s", job.id, errors, max_errors, reason
            )
            return _result(bf, runs.get(job.id) or {}, RunState.RUNNING)
        runs.put(
            job.id,
            {
                "state": RunState.FAILED.value,
                "error": reason,
                "errors": errors,
                "finished_at": datetime.now(UTC),
            },
        )
        publish_lifecycle(rt, job, Verb.FAILED, f"{bf.kind} to {bf.label} failed: {reason}"[:1000])
        if max_errors <= 1:
            raise
        return _result(bf, runs.get(job.id) or {}, RunState.FAILED)
    if bf.continues:
        publish_lifecycle(
            rt,
            job,
            Verb.SYNCCOMPLETE,
            f"backfill done ({written} event(s)); streaming continues from {bf.end.isoformat()}",
            written=written,
            refused=refused,
        )
    else:
        publish_lifecycle(
            rt, job, Verb.SYNCCOMPLETE, f"{written} event(s) copied", written=written, refused=refused
        )
        publish_lifecycle(
            rt, job, Verb.COMPLETED, f"{bf.kind} to {bf.label} completed", written=written, refused=refused
        )
    return BackfillResult(job.id, bf.start, bf.end, scanned, written, refused, RunState.DONE)


def run_backfill(
    rt: Runtime,
    job: Job,
    *,
    writer: TableWriter | None = None,
    audit: TableRef,
    progress: Callable[[Progress], None] | None = None,
    page_rows: int = PAGE_ROWS,
    sleep: Callable[[float], None] = time.sleep,
    sender: Any = None,
) -> BackfillResult:
    """Run a job's backfill to the end now (`sysevents export run`), emitting the lifecycle events.

    Returns at once when already done. While a tick holds the backfill, waits for it (reporting the run's
    progress) and then finishes what is left. For backfill_then_continuous it first waits until the
    watermark + hand-over delay has passed. Raises the error that failed it.
    """
    bf = backfill_of(rt, job, writer=writer, sender=sender, page_rows=page_rows)
    runs = Runs(rt.firestore, rt.settings.exports_collection)
    owner = f"run-{uuid.uuid4().hex[:12]}"
    rng = bf.range_fields
    wait = max((bf.ready_at - datetime.now(UTC)).total_seconds(), 0.0) if bf.continues else 0.0
    while True:
        run = runs.get(job.id) or {}
        if (
            run.get("state") == RunState.DONE
            and run.get("end") == rng["end"]
            and run.get("start") == rng["start"]
        ):
            return _result(bf, run, RunState.DONE)
        if runs.claim(job.id, owner, rt.settings.export_lease_seconds + wait):
            break
        if progress and run.get("total") is not None:
            progress(
                Progress(run.get("scanned", 0), run["total"], run.get("written", 0), run.get("refused", 0))
            )
        sleep(1.0)
    try:
        while (left := (bf.ready_at - datetime.now(UTC)).total_seconds()) > 0 and bf.continues:
            sleep(min(left, 1.0))
        return advance(rt, bf, audit=audit, owner=owner, progress=progress, max_errors=1)
    finally:
        runs.release(job.id, owner)


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
    attrs = {"job_id": job.id, "aid": job.aid, "event_id": event_id, "source": "backfill"}
    rt.publisher.dead_letter(sink.dead_letter_topic, data, attrs, reason, attempts=1)
    log.warning("export %s: row for event %s refused: %s", job.id, event_id, reason)
