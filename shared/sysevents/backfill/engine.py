"""The backfill engine: copy a job's events of a time range out of the audit table, a page at a time.

Used by BigQuery one-time and backfill-then-continuous exports and by webhook batch exports; each sink
supplies its part as a `Backfill` (`Sink.backfill`): the range, how to prepare the target, how to deliver
one page of matching rows, how to finish. The engine reads the account's rows in (time, event id) order
(sysevents.auditlog.reader), keeps the cursor and counts in the run document (sysevents.backfill.runs),
re-checks the runner's lease before every page so two runners never deliver the same page, and publishes
the job's lifecycle events (started, syncing, synced, synccomplete, completed, failed).
`advance` moves a backfill by one bounded slice (scheduled ticks, sysevents.backfill.ticks);
`run_backfill` runs it to the end (`sysevents export run`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sysevents.auditlog.reader import AuditReader
from sysevents.auditlog.schema import TableRef, audit_table, event_of_row
from sysevents.backfill.runs import LeaseLost, RunState
from sysevents.events.model import Verb
from sysevents.jobs import workevents
from sysevents.jobs.matching import matches
from sysevents.jobs.model import Job

if TYPE_CHECKING:
    from sysevents.runtime import Runtime

log = logging.getLogger("sysevents.backfill")
PAGE_ROWS = 1000


class NothingToBackfill(ValueError):
    pass


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


def backfill_of(rt: Runtime, job: Job, **kw: Any) -> Backfill:
    """The backfill of a job, from its sink (BigQuery one_time and backfill_then_continuous exports,
    webhook batch exports); ValueError when the job has none."""
    from sysevents.entry import sink_of
    from sysevents.sinks import sink_class

    return sink_of(rt, sink_class(job.sink)).backfill(job, **kw)


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
    runs = rt.runs
    lease = rt.settings.export_lease_seconds
    run = runs.get(job.key) or {}
    same = run.get("end") == rng["end"] and run.get("start") == rng["start"]
    if same and run.get("state") == RunState.DONE:
        return _result(bf, run, RunState.DONE)
    fresh = not same or run.get("state") != RunState.RUNNING
    if not same:
        run = {}
    scanned, written, refused = run.get("scanned", 0), run.get("written", 0), run.get("refused", 0)
    total = run.get("total", 0)
    reader = AuditReader(
        rt.bigquery, audit_table(rt.settings), timeout=max(rt.settings.bigquery_timeout, 120.0)
    )
    verbs = sorted(v.value for v in job.selection.verbs)
    try:
        if fresh:
            _lifecycle(
                rt,
                job,
                Verb.STARTED,
                f"{bf.kind} to {bf.label} started",
                mode=bf.kind,
                start_time=rng["start"],
                end_time=rng["end"],
            )
            runs.checkpoint(
                job.key,
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
            runs.checkpoint(job.key, owner, {"total": total}, lease)
            _lifecycle(rt, job, Verb.SYNCING, f"copying up to {total} event(s) to {bf.label}", total=total)
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
            runs.checkpoint(job.key, owner, {}, lease)  # still ours: deliver nothing twice
            w, r = bf.deliver([row for row in page if matches(selection, event_of_row(row))])
            scanned, written, refused = scanned + len(page), written + w, refused + r
            last = page[-1]
            runs.checkpoint(
                job.key,
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
            _lifecycle(
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
                return _result(bf, runs.get(job.key) or {}, RunState.RUNNING)
        runs.checkpoint(job.key, owner, {}, lease)
        written += bf.finish()
        runs.put(job.key, {"written": written})
    except LeaseLost:
        log.warning("backfill %s: lease lost to another runner; stopping this slice", job.id)
        return _result(bf, runs.get(job.key) or {}, RunState.RUNNING)
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"[:1000]
        errors = (runs.get(job.key) or {}).get("errors", 0) + 1
        if errors < max_errors and not isinstance(err, DeliveryRefused):
            wait = err.retry_after if isinstance(err, DeliveryRetry) else None
            not_before = datetime.now(UTC) + timedelta(seconds=wait) if wait else None
            runs.put(job.key, {"errors": errors, "error": reason, "not_before": not_before})
            log.warning(
                "backfill %s: attempt failed (%d/%d), retried later: %s", job.id, errors, max_errors, reason
            )
            return _result(bf, runs.get(job.key) or {}, RunState.RUNNING)
        runs.put(
            job.key,
            {
                "state": RunState.FAILED.value,
                "error": reason,
                "errors": errors,
                "finished_at": datetime.now(UTC),
            },
        )
        _lifecycle(rt, job, Verb.FAILED, f"{bf.kind} to {bf.label} failed: {reason}"[:1000])
        if max_errors <= 1:
            raise
        return _result(bf, runs.get(job.key) or {}, RunState.FAILED)
    if bf.continues:
        _lifecycle(
            rt,
            job,
            Verb.SYNCCOMPLETE,
            f"backfill done ({written} event(s)); streaming continues from {bf.end.isoformat()}",
            written=written,
            refused=refused,
        )
    else:
        _lifecycle(rt, job, Verb.SYNCCOMPLETE, f"{written} event(s) copied", written=written, refused=refused)
        _lifecycle(
            rt, job, Verb.COMPLETED, f"{bf.kind} to {bf.label} completed", written=written, refused=refused
        )
    return BackfillResult(job.id, bf.start, bf.end, scanned, written, refused, RunState.DONE)


def run_backfill(
    rt: Runtime,
    job: Job,
    *,
    progress: Callable[[Progress], None] | None = None,
    page_rows: int = PAGE_ROWS,
    sleep: Callable[[float], None] = time.sleep,
) -> BackfillResult:
    """Run a job's backfill to the end now (`sysevents export run`), emitting the lifecycle events.

    Returns at once when already done. While a tick holds the backfill, waits for it (reporting the run's
    progress) and then finishes what is left. For backfill_then_continuous it first waits until the
    watermark + hand-over delay has passed. Raises the error that failed it.
    """
    bf = backfill_of(rt, job, page_rows=page_rows)
    runs = rt.runs
    owner = f"run-{uuid.uuid4().hex[:12]}"
    rng = bf.range_fields
    wait = max((bf.ready_at - datetime.now(UTC)).total_seconds(), 0.0) if bf.continues else 0.0
    while True:
        run = runs.get(job.key) or {}
        if (
            run.get("state") == RunState.DONE
            and run.get("end") == rng["end"]
            and run.get("start") == rng["start"]
        ):
            return _result(bf, run, RunState.DONE)
        if runs.claim(job.key, owner, rt.settings.export_lease_seconds + wait):
            break
        if progress and run.get("total") is not None:
            progress(
                Progress(run.get("scanned", 0), run["total"], run.get("written", 0), run.get("refused", 0))
            )
        sleep(1.0)
    try:
        while (left := (bf.ready_at - datetime.now(UTC)).total_seconds()) > 0 and bf.continues:
            sleep(min(left, 1.0))
        return advance(rt, bf, owner=owner, progress=progress, max_errors=1)
    finally:
        runs.release(job.key, owner)


def _lifecycle(rt: Runtime, job: Job, verb: Verb, notes: str, **fields: Any) -> None:
    workevents.publish(rt, workevents.work_event(job, verb, notes=notes, **fields))
