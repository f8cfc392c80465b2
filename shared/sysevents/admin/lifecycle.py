"""Lifecycle events: every change made through the admin API becomes a work event on the ingest topic.

Created / updated / deleted events about the job (subject_type `work`, subject_id = job id, actor = the
key's name and prefix) flow through ingest, matching and the sinks like any other event. They carry the
origin mark (sysevents.jobs.origin), so they are never delivered to the job they are about.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sysevents.admin.keys import Principal
from sysevents.events.model import SystemEvent, Verb, new_event
from sysevents.jobs import origin, workevents
from sysevents.jobs.model import Job, JobState

if TYPE_CHECKING:
    from sysevents.runtime import Runtime


def lifecycle_event(job: Job, verb: Verb, change: str, principal: Principal) -> SystemEvent:
    return workevents.work_event(job, verb, actor=principal.actor, change=change)


def test_event(job: Job, overrides: dict[str, Any]) -> SystemEvent:
    """An event the job's filter selects (overridable), marked so ingest delivers it to this job only."""
    f = job.filter
    sources = f.sources or {}
    subject_type = next(iter(sorted(sources)), "work")
    ids = sorted(sources.get(subject_type, ())) if sources else []
    fields: dict[str, Any] = {
        "subject_type": str(subject_type),
        "subject_id": ids[0] if ids else "test-subject",
        "verb": sorted(v.value for v in f.verbs)[0],
        "notes": f"Test event for job {job.id}",
        "test": True,
        **overrides,
    }
    return new_event(
        job.aid,
        fields.pop("subject_type"),
        fields.pop("subject_id"),
        fields.pop("verb"),
        event_id=f"test-{uuid.uuid4()}",
        **fields,
        **origin.mark(job.id, origin.Kind.TEST),
    )


def publish(rt: Runtime, *events: SystemEvent) -> list[str]:
    """Publish to the ingest topic; a failure is logged, not raised: the change itself is already stored."""
    return workevents.publish(rt, *events, quiet=True)


def describe(old: Job | None, new: Job | None) -> tuple[Verb, str]:
    """The verb and `change` of a lifecycle event from the before and after of a job."""
    if old is None:
        return Verb.CREATED, "created"
    if new is None:
        return Verb.DELETED, "deleted"
    if old.state is not new.state:
        return Verb.UPDATED, "paused" if new.state is JobState.PAUSED else "resumed"
    return Verb.UPDATED, "updated"
