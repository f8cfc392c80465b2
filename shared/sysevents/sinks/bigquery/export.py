"""BigQuery export jobs (`bigquery_system_events`): the target, the streaming decision and the hand-over.

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

Backfill state lives in Firestore (`exports/{job key}`, sysevents.backfill.runs): watermark, range, cursor, counts, state. A failed
or interrupted backfill resumes from its cursor.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sysevents.auditlog.schema import TableRef
from sysevents.backfill.engine import NothingToBackfill
from sysevents.events.model import SystemEvent
from sysevents.jobs.model import Job, Workflow, job_from_dict
from sysevents.sinks.bigquery.config import BigQueryConfig, ExportMode

__all__ = ["NothingToBackfill"]


def config_of(job: Job) -> BigQueryConfig:
    if not isinstance(job.config, BigQueryConfig):
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
