"""Causation marks on the events sysevents emits itself, and the ingest rule that keeps jobs out of loops.

Events sysevents publishes about a job (its lifecycle events from the admin API, failure or auto-disable
events from a sink, a test event) carry `data.sysevents_origin = {"job_id", "kind", "hops"}`:

- `job_id`: the job the event is about / was caused by.
- `kind`: `lifecycle` (an edit made through the API), `delivery` (caused by one of the job's deliveries,
  e.g. a work failed event because they keep failing), or `test` (the admin API's test event).
- `hops`: 0 for an event caused by a person; an event caused while delivering event E carries
  `hops(E) + 1` (use `caused_by`).

Ingest (`deliverable`) then applies three rules, so no job is retriggered forever by its own activity:

1. A `test` event goes only to its job.
2. Any other marked event never goes to the job it names: a webhook job subscribed to work/failed whose
   deliveries fail does not receive the failure events about itself.
3. An event more than `MAX_HOPS` hops away from a person goes nowhere: this ends longer cycles
   (job A's failures alert job B, whose failures alert job A, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from sysevents.events.model import SystemEvent
from sysevents.jobs.model import Job

FIELD = "sysevents_origin"
MAX_HOPS = 3


class Kind(StrEnum):
    LIFECYCLE = "lifecycle"
    DELIVERY = "delivery"
    TEST = "test"


def mark(job_id: str, kind: Kind, hops: int = 0) -> dict[str, Any]:
    """The extra event data field for an event sysevents emits about `job_id`."""
    return {FIELD: {"job_id": job_id, "kind": kind.value, "hops": hops}}


def caused_by(job_id: str, event: SystemEvent) -> dict[str, Any]:
    """The mark for an event caused while delivering `event` to job `job_id`."""
    return mark(job_id, Kind.DELIVERY, hops(event) + 1)


def of(event: SystemEvent) -> dict[str, Any] | None:
    value = (event.data.model_extra or {}).get(FIELD)
    return value if isinstance(value, dict) else None


def hops(event: SystemEvent) -> int:
    found = (of(event) or {}).get("hops", 0)
    return found if isinstance(found, int) and not isinstance(found, bool) and found >= 0 else 0


def deliverable(event: SystemEvent, jobs: Iterable[Job]) -> tuple[list[Job], list[tuple[str, str]]]:
    """Split the jobs an event matched into those to deliver to and (job id, why not) for the rest."""
    jobs = list(jobs)
    mark_ = of(event)
    if mark_ is None:
        return jobs, []
    job_id = mark_.get("job_id")
    if mark_.get("kind") == Kind.TEST:
        keep = [j for j in jobs if j.id == job_id]
        return keep, [(j.id, f"test event for job {job_id}") for j in jobs if j.id != job_id]
    if hops(event) > MAX_HOPS:
        return [], [
            (j.id, f"loop protection: event is {hops(event)} hops from a person (max {MAX_HOPS})")
            for j in jobs
        ]
    keep = [j for j in jobs if j.id != job_id]
    return keep, [
        (j.id, "loop protection: the event is about this job's own activity") for j in jobs if j.id == job_id
    ]
