"""Ticks: advance due backfills a bounded slice at a time (POST /tick on the bigquery function).

Cloud Scheduler calls the route every minute (topology.json `schedules`; the local stack every second).
A tick lists the jobs with a backfill from its job cache — BigQuery exports in mode `one_time` or
`backfill_then_continuous`, webhook jobs with `batch_export` — and advances each one that is *due*:
active, not done or failed, its start moment come (the range's end, or the watermark, plus
`SYSEVENTS_EXPORT_HANDOVER_SECONDS`, so the range's events have reached the audit table), and not held by
another runner. Each is claimed with a lease on its run document (`exports/{job key}`, a Firestore
transaction) before the tick touches it, so overlapping ticks (or a tick and `sysevents export run`) never
run one backfill at once; the lease is renewed at every page and the work resumes from the stored cursor.
A tick spends at most `SYSEVENTS_EXPORT_TICK_SECONDS` in all and `SYSEVENTS_EXPORT_TICK_PAGES` pages per
backfill; the rest waits for the next tick.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sysevents.backfill.engine import Backfill, advance, backfill_of
from sysevents.backfill.runs import RunState
from sysevents.jobs.model import Job, JobState

if TYPE_CHECKING:
    from sysevents.runtime import Runtime

log = logging.getLogger("sysevents.ticks")
MAX_ERRORS = 5
"""Consecutive failed slices (BigQuery errors, receiver 5xx or timeouts) before a backfill fails."""


def _has_backfill(job: Job) -> bool:
    return job.config.has_backfill()


def backfill_jobs(rt: Runtime) -> list[Job]:
    """Every active job that has a backfill, from the instance's job cache (no query per tick: the cache
    reads every job once per instance, keeps only those with a backfill, and syncs)."""
    return [j for j in rt.cache.jobs(where=_has_backfill) if j.state is JobState.ACTIVE]


def _settled(run: dict[str, Any], bf: Backfill) -> bool:
    rng = bf.range_fields
    same = run.get("end") == rng["end"] and run.get("start") == rng["start"]
    return same and run.get("state") in (RunState.DONE, RunState.FAILED)


def fair_order(jobs: list[Job], rng: random.Random | None = None) -> list[Job]:
    """The order a tick takes backfills in: accounts in turn (in a random order), one job of each per
    round (each account's in a random order), so when the budget runs out no backfill starves behind the
    others, and an account with many backfills gets one turn per round like any other."""
    shuffle = (rng or random).shuffle
    by_account: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_account[job.aid].append(job)
    queues = list(by_account.values())
    for q in queues:
        shuffle(q)
    shuffle(queues)
    return [job for turn in itertools.zip_longest(*queues) for job in turn if job is not None]


def tick(rt: Runtime, *, budget: float | None = None, max_pages: int | None = None) -> dict[str, list[str]]:
    """Advance the due backfills; returns job ids by what happened to them."""
    s = rt.settings
    deadline = time.monotonic() + (budget if budget is not None else s.export_tick_seconds)
    runs = rt.runs
    done: set[tuple[str, int]] = rt._part("ticks.done", set)  # (job key, version) seen done or failed
    owner = f"tick-{uuid.uuid4().hex[:12]}"
    report: dict[str, list[str]] = {"advanced": [], "done": [], "failed": [], "busy": [], "later": []}
    jobs = fair_order([j for j in backfill_jobs(rt) if (j.key, j.version) not in done])
    now = datetime.now(UTC)
    for job in jobs:
        if time.monotonic() >= deadline:
            report["later"].append(job.id)
            continue
        try:
            bf = backfill_of(rt, job)
        except ValueError as err:
            log.error("tick: job %s: %s", job.id, err)
            continue
        if bf.ready_at > now:
            continue
        run = runs.get(job.key) or {}
        if _settled(run, bf):
            done.add((job.key, job.version))
            continue
        if run.get("not_before") and run["not_before"] > now:
            report["later"].append(job.id)
            continue
        if not runs.claim(job.key, owner, s.export_lease_seconds):
            report["busy"].append(job.id)
            continue
        try:
            result = advance(
                rt,
                bf,
                owner=owner,
                deadline=deadline,
                max_pages=max_pages or s.export_tick_pages,
                max_errors=MAX_ERRORS,
            )
        except Exception:  # one backfill's trouble must not stop the others
            log.exception("tick: backfill of job %s", job.id)
            continue
        finally:
            runs.release(job.key, owner)
        if result.state is RunState.DONE:
            report["done"].append(job.id)
        elif result.state is RunState.FAILED:
            report["failed"].append(job.id)
        else:
            report["advanced"].append(job.id)
    if any(report[k] for k in ("advanced", "done", "failed")):
        log.info("tick: %s", report)
    return report
