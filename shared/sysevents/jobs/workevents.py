"""Work events: the events sysevents publishes about its own jobs, built in one place.

A job's changes through the admin API (created, updated, deleted), what a sink does to it (auto-disable:
`work failed`) and what its backfill does (started, syncing, synced, synccomplete, completed, failed) are
`work` events about the job (subject_id = job id) in the job's account, on the ingest topic like any
other event: alert jobs can watch export jobs. Each carries the origin mark (sysevents.jobs.origin), so it is
never delivered to the job it is about, and chains of events caused by deliveries end.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sysevents.events.model import SubjectType, SystemEvent, Verb, event_ordering_key, new_event
from sysevents.jobs import origin
from sysevents.jobs.model import Job
from sysevents.obs import logs

if TYPE_CHECKING:
    from sysevents.runtime import Runtime

log = logging.getLogger("sysevents.workevents")
ACTOR = "sysevents"


def work_event(
    job: Job,
    verb: Verb | str,
    *,
    actor: str = ACTOR,
    cause: SystemEvent | None = None,
    kind: origin.Kind = origin.Kind.LIFECYCLE,
    **fields: Any,
) -> SystemEvent:
    """A `work` event about `job`. With `cause` (the event whose delivery led to it) it counts one hop
    more than its cause (sysevents.jobs.origin.caused_by); otherwise it is marked as `kind`, 0 hops."""
    mark = origin.caused_by(job.id, cause) if cause is not None else origin.mark(job.id, kind)
    return new_event(
        job.aid,
        SubjectType.WORK.value,
        job.id,
        Verb(verb).value,
        actor=actor,
        job_version=job.version,
        workflow=job.workflow.value,
        job_name=job.name,
        **{k: v for k, v in fields.items() if v is not None},
        **mark,
    )


def publish(rt: Runtime, *events: SystemEvent, quiet: bool = False) -> list[str]:
    """Publish to the ingest topic; returns the message ids. With `quiet`, a failure is logged and an
    empty list returned (the change the events describe is already stored)."""
    try:
        trace = {logs.TRACEPARENT_ATTR: tp} if (tp := logs.current_traceparent()) else {}
        keys = rt.settings.sealing_keys  # the seal vouches for the origin mark (sysevents.jobs.origin)
        messages = [(e.to_json(), event_ordering_key(e)) for e in events]
        ids = rt.publisher.publish_all(
            [
                (rt.topology.ingest_topic, data, {**trace, **origin.seal(data, keys)}, key)
                for data, key in messages
            ]
        )
    except Exception:
        if not quiet:
            raise
        log.exception("could not publish work event(s) %s", [e.id for e in events])
        return []
    for e in events:
        d = e.data
        log.info(
            "work event: job %s/%s %s (%s)",
            d.aid,
            d.subject_id,
            d.verb.value,
            (d.model_extra or {}).get("notes") or (d.model_extra or {}).get("change"),
        )
    return ids
