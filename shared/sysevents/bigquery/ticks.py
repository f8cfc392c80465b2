"""Ticks: advance due backfills a bounded slice at a time (POST /tick on the bigquery function).

Cloud Scheduler calls the route every minute (topology.json `schedules`; the local stack every second).
A tick lists the jobs with a backfill — BigQuery exports in mode `one_time` or
`backfill_then_continuous`, webhook jobs with `batch_export` — and advances each one that is *due*:
active, not done or failed, its start moment come (the range's end, or the watermark, plus
`SYSEVENTS_EXPORT_HANDOVER_SECONDS`, so the range's events have reached the audit table), and not held by
another runner. Each is claimed with a lease on its run document (`exports/{job id}`, a Firestore
transaction) before the tick touches it, so overlapping ticks (or a tick and `sysevents export run`) never
run one backfill at once; the lease is renewed at every page and the work resumes from the stored cursor.
A tick spends at most `SYSEVENTS_EXPORT_TICK_SECONDS` in all and `SYSEVENTS_EXPORT_TICK_PAGES` pages per
backfill; the rest waits for the next tick.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from google.cloud.firestore_v1.base_query import FieldFilter

from ..jobs import ExportMode, InvalidJob, Job, JobState, Workflow, job_from_dict
from ..runtime import Runtime
from .export import Backfill, Runs, RunState, advance, backfill_of
from .schema import TableRef
from .writer import TableWriter

log = logging.getLogger("sysevents.ticks")
MAX_ERRORS = 5
"""Consecutive failed slices (BigQuery errors, receiver 5xx or timeouts) before a backfill fails."""

_done: set[tuple[str, int]] = set()  # (job id, version) whose backfill this instance saw done or failed


def backfill_jobs(rt: Runtime) -> list[Job]:
    """Every job that has a backfill (one query per kind; equality filters need no composite index)."""
    col = rt.jobs.collection
    queries = [
        col.where(filter=FieldFilter("workflow", "==", Workflow.BIGQUERY.value)).where(
            filter=FieldFilter(
                "config.mode", "in", [ExportMode.ONE_TIME.value, ExportMode.BACKFILL_THEN_CONTINUOUS.value]
            )
        ),
        col.where(filter=FieldFilter("workflow", "==", Workflow.WEBHOOK.value)).where(
            filter=FieldFilter("config.batch_export.format", "in", ["ndjson", "json"])
        ),
    ]
    jobs = []
    for q in queries:
        for snap in q.stream():
            try:
                jobs.append(job_from_dict(snap.to_dict(), job_id=snap.id))
            except InvalidJob as err:
                log.error("tick: skipping invalid job %s: %s", snap.id, err.reason)
    return jobs


def _settled(run: dict[str, Any], bf: Backfill) -> bool:
    rng = bf.range_fields
    same = run.get("end") == rng["end"] and run.get("start") == rng["start"]
    return same and run.get("state") in (RunState.DONE, RunState.FAILED)


def tick(
    rt: Runtime,
    *,
    writer: TableWriter,
    sender: Any = None,
    budget: float | None = None,
    max_pages: int | None = None,
) -> dict[str, list[str]]:
    """Advance the due backfills; returns job ids by what happened to them."""
    s = rt.settings
    deadline = time.monotonic() + (budget if budget is not None else s.export_tick_seconds)
    audit = TableRef(s.project, s.audit_dataset, s.audit_table)  # read only: backfills query it
    runs = Runs(rt.firestore, s.exports_collection)
    owner = f"tick-{uuid.uuid4().hex[:12]}"
    report: dict[str, list[str]] = {"advanced": [], "done": [], "failed": [], "busy": [], "later": []}
    jobs = [j for j in backfill_jobs(rt) if j.state is JobState.ACTIVE and (j.id, j.version) not in _done]
    random.shuffle(jobs)  # no backfill starves behind others when the budget runs out
    now = datetime.now(UTC)
    for job in jobs:
        if time.monotonic() >= deadline:
            report["later"].append(job.id)
            continue
        try:
            bf = backfill_of(rt, job, writer=writer, sender=sender)
        except ValueError as err:
            log.error("tick: job %s: %s", job.id, err)
            continue
        if bf.ready_at > now:
            continue
        run = runs.get(job.id) or {}
        if _settled(run, bf):
            _done.add((job.id, job.version))
            continue
        if run.get("not_before") and run["not_before"] > now:
            report["later"].append(job.id)
            continue
        if not runs.claim(job.id, owner, s.export_lease_seconds):
            report["busy"].append(job.id)
            continue
        try:
            result = advance(
                rt,
                bf,
                audit=audit,
                owner=owner,
                deadline=deadline,
                max_pages=max_pages or s.export_tick_pages,
                max_errors=MAX_ERRORS,
            )
        except Exception:  # one backfill's trouble must not stop the others
            log.exception("tick: backfill of job %s", job.id)
            continue
        finally:
            runs.release(job.id, owner)
        if result.state is RunState.DONE:
            report["done"].append(job.id)
        elif result.state is RunState.FAILED:
            report["failed"].append(job.id)
        else:
            report["advanced"].append(job.id)
    if any(report[k] for k in ("advanced", "done", "failed")):
        log.info("tick: %s", report)
    return report
