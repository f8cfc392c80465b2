"""The backfill engine: copy a job's events of a time range out of the audit table, a page at a time.

Used by BigQuery one-time and backfill-then-continuous exports and by webhook batch exports; each sink
supplies its part as a `Backfill` (`Sink.backfill`): the range, how to prepare the target, how to deliver
one page of matching rows, how to finish. The engine reads the account's rows in (time, event id) order
(sysevents.auditlog.reader), keeps the cursor and counts in the run document (sysevents.backfill.runs),
re-checks the runner's lease before every page so two runners never deliver the same page, and publishes
the job's lifecycle events (started, syncing, synced, synccomplete, completed, failed).
`advance` moves a backfill by one bounded slice; sysevents.backfill.ticks calls it from scheduled ticks and
runs a backfill to the end (`run_backfill`, `sysevents export run`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sysevents.auditlog.reader import AuditReader, Range
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


def result_of(bf: Backfill, run: dict[str, Any], state: RunState) -> BackfillResult:
    return BackfillResult(
        bf.job.id,
        bf.start,
        bf.end,
        run.get("scanned", 0),
        run.get("written", 0),
        run.get("refused", 0),
        state,
    )


@dataclass
class Slice:
    """One slice of a backfill as `advance` runs it: the backfill, its runner, and the counts so far."""

    rt: Runtime
    bf: Backfill
    owner: str
    run: dict[str, Any]  # the run document as the slice began (empty when the range changed)
    same: bool  # the run document is about this backfill's range
    reader: AuditReader
    scanned: int = 0
    written: int = 0
    refused: int = 0
    total: int = 0

    @property
    def job(self) -> Job:
        return self.bf.job

    @property
    def range(self) -> Range:
        bf, verbs = self.bf, sorted(v.value for v in self.job.selection.verbs)
        return Range(self.job.aid, verbs, bf.start, bf.end, bf.exclude)

    def checkpoint(self, fields: dict[str, Any]) -> None:
        """Write the run's progress, if the lease is still ours (LeaseLost otherwise)."""
        self.rt.runs.checkpoint(self.job.key, self.owner, fields, self.rt.settings.export_lease_seconds)

    def result(self, state: RunState) -> BackfillResult:
        return result_of(self.bf, self.rt.runs.get(self.job.key) or {}, state)

    def progress(self) -> Progress:
        return Progress(scanned=self.scanned, total=self.total, written=self.written, refused=self.refused)

    # -- stages ----------------------------------------------------------------------------------------------
    def begin(self) -> None:
        """A run starting (or starting over): `started`, the run document, the total to copy, `syncing`."""
        bf, job, rng = self.bf, self.job, self.bf.range_fields
        _lifecycle(self.rt, job, Verb.STARTED, f"{bf.kind} to {bf.label} started", mode=bf.kind,
                   start_time=rng["start"], end_time=rng["end"])  # fmt: skip
        self.checkpoint({
            "job_id": job.id, "aid": job.aid, "job_version": job.version, "mode": bf.kind, "target": bf.label,
            **rng, "state": RunState.RUNNING.value, "started_at": datetime.now(UTC), "error": None, "errors": 0,
            **({} if self.same else {"cursor_time": None, "cursor_event_id": None}),
        })  # fmt: skip
        bf.prepare()
        self.total = self.reader.count(self.range) + self.scanned
        self.checkpoint({"total": self.total})
        _lifecycle(
            self.rt, job, Verb.SYNCING, f"copying up to {self.total} event(s) to {bf.label}", total=self.total
        )

    def pages(self):
        """The pages still to copy, from the stored cursor on."""
        cursor = None
        if self.run.get("cursor_time"):
            cursor = (datetime.fromisoformat(self.run["cursor_time"]), self.run["cursor_event_id"])
        return self.reader.pages(self.range, after=cursor, page_rows=self.bf.page_rows)

    def page(self, rows: list[dict[str, Any]]) -> None:
        """Deliver one page's matching rows, then move the cursor past it (`synced`)."""
        self.checkpoint({})  # still ours: deliver nothing twice
        selection = self.job.selection
        w, r = self.bf.deliver([row for row in rows if matches(selection, event_of_row(row))])
        self.scanned, self.written, self.refused = (
            self.scanned + len(rows),
            self.written + w,
            self.refused + r,
        )
        last = rows[-1]
        self.checkpoint({
            "cursor_time": last["time"].isoformat(), "cursor_event_id": last["event_id"], "scanned": self.scanned,
            "written": self.written, "refused": self.refused, "errors": 0, "error": None,
        })  # fmt: skip
        _lifecycle(self.rt, self.job, Verb.SYNCED, f"{self.written} event(s) copied so far", written=self.written,
                   scanned=self.scanned, total=self.total)  # fmt: skip

    def finish(self) -> None:
        """Every page copied: the sink's finish (the run is done)."""
        self.checkpoint({})
        self.written += self.bf.finish()
        self.rt.runs.put(self.job.key, {"written": self.written})

    def completed(self) -> BackfillResult:
        """`synccomplete`, and `completed` for a one-time export."""
        bf, job, counts = self.bf, self.job, {"written": self.written, "refused": self.refused}
        if bf.continues:
            notes = f"backfill done ({self.written} event(s)); streaming continues from {bf.end.isoformat()}"
            _lifecycle(self.rt, job, Verb.SYNCCOMPLETE, notes, **counts)
        else:
            _lifecycle(self.rt, job, Verb.SYNCCOMPLETE, f"{self.written} event(s) copied", **counts)
            _lifecycle(self.rt, job, Verb.COMPLETED, f"{bf.kind} to {bf.label} completed", **counts)
        return BackfillResult(
            job.id, bf.start, bf.end, self.scanned, self.written, self.refused, RunState.DONE
        )

    def fail(self, err: Exception, max_errors: int) -> BackfillResult:
        """A page failed: retried by a later slice (after the receiver's Retry-After), or, after
        `max_errors` consecutive failures or a refusal, the run fails with a `failed` event."""
        job, runs = self.job, self.rt.runs
        reason = f"{type(err).__name__}: {err}"[:1000]
        errors = (runs.get(job.key) or {}).get("errors", 0) + 1
        if errors < max_errors and not isinstance(err, DeliveryRefused):
            wait = err.retry_after if isinstance(err, DeliveryRetry) else None
            not_before = datetime.now(UTC) + timedelta(seconds=wait) if wait else None
            runs.put(job.key, {"errors": errors, "error": reason, "not_before": not_before})
            log.warning(
                "backfill %s: attempt failed (%d/%d), retried later: %s", job.id, errors, max_errors, reason
            )
            return self.result(RunState.RUNNING)
        runs.put(job.key, {"state": RunState.FAILED.value, "error": reason, "errors": errors,
                           "finished_at": datetime.now(UTC)})  # fmt: skip
        _lifecycle(self.rt, job, Verb.FAILED, f"{self.bf.kind} to {self.bf.label} failed: {reason}"[:1000])
        if max_errors <= 1:
            raise err
        return self.result(RunState.FAILED)


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
    rng = bf.range_fields
    run = rt.runs.get(bf.job.key) or {}
    same = run.get("end") == rng["end"] and run.get("start") == rng["start"]
    if same and run.get("state") == RunState.DONE:
        return result_of(bf, run, RunState.DONE)
    fresh = not same or run.get("state") != RunState.RUNNING
    run = run if same else {}
    reader = AuditReader(
        rt.bigquery, audit_table(rt.settings), timeout=max(rt.settings.bigquery_timeout, 120.0)
    )
    s = Slice(rt, bf, owner, run, same, reader, run.get("scanned", 0), run.get("written", 0),
              run.get("refused", 0), run.get("total", 0))  # fmt: skip
    try:
        if fresh:
            s.begin()
        else:
            bf.prepare()
        for pages, rows in enumerate(s.pages(), start=1):
            s.page(rows)
            if progress:
                progress(s.progress())
            if (max_pages is not None and pages >= max_pages) or (
                deadline is not None and time.monotonic() >= deadline
            ):
                return s.result(RunState.RUNNING)
        s.finish()
    except LeaseLost:
        log.warning("backfill %s: lease lost to another runner; stopping this slice", bf.job.id)
        return s.result(RunState.RUNNING)
    except Exception as err:
        return s.fail(err, max_errors)
    return s.completed()


def _lifecycle(rt: Runtime, job: Job, verb: Verb, notes: str, **fields: Any) -> None:
    workevents.publish(rt, workevents.work_event(job, verb, notes=notes, **fields))
