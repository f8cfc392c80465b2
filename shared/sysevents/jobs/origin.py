"""Causation marks on the events sysevents emits itself, and the ingest rule that keeps jobs out of loops.

Events sysevents publishes about a job (its lifecycle events from the admin API, failure or auto-disable
events from a sink, a test event) carry `data.sysevents_origin = {"job_id", "kind", "hops"}`:

- `job_id`: the job the event is about / was caused by.
- `kind`: `lifecycle` (an edit made through the API), `delivery` (caused by one of the job's deliveries,
  e.g. a work failed event because they keep failing), or `test` (the admin API's test event).
- `hops`: 0 for an event caused by a person; an event caused while delivering event E carries
  `hops(E) + 1` (use `caused_by`).

Ingest (`deliverable`) then applies four rules, so no job is retriggered forever by its own activity and
no edit fans out to mail unboundedly:

1. A `test` event goes only to its job.
2. Any other marked event never goes to the job it names: a webhook job subscribed to work/failed whose
   deliveries fail does not receive the failure events about itself.
3. An event more than `MAX_HOPS` hops away from a person goes nowhere: this ends longer cycles
   (job A's failures alert job B, whose failures alert job A, ...).
4. An edit made through the API (`lifecycle` with verb created, updated or deleted) reaches an email job
   only when that job names the edited job itself (`system_event_sources: {"work": [its id]}`): a job
   watching every work subject gets export failures and backfill progress, never the account's edits, so
   one rename among 1,000 email jobs sends no mail at all.

Only sysevents marks events. Its publishes (sysevents.jobs.workevents) carry the message attribute
`SEAL_ATTR`, an HMAC of the message's bytes under a key derived from the sealing keys (`seal`); ingest
quarantines a marked event whose message has no valid seal (`trusted`): a producer that sets the field,
or changes any byte of a marked event, steers none of these rules.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from pydantic import SecretStr

from sysevents.events.model import SystemEvent
from sysevents.jobs.model import Job
from sysevents.jobs.secrets import SealingError, signing_keys

FIELD = "sysevents_origin"
SEAL_ATTR = "sysevents_seal"
_PURPOSE = b"sysevents origin marks"
MAX_HOPS = 3
EDIT_VERBS = frozenset({"created", "updated", "deleted"})
MAILING_SINKS = frozenset({"email"})
"""Sinks whose deliveries are mail to people: edits reach their jobs only when named (rule 4)."""


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


def claimed(event: SystemEvent) -> bool:
    """The event carries the field, in any form (a producer's must not)."""
    return FIELD in (event.data.model_extra or {})


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
    held = [
        (j.id, "loop protection: the event is about this job's own activity") for j in jobs if j.id == job_id
    ]
    keep = [j for j in jobs if j.id != job_id]
    if mark_.get("kind") == Kind.LIFECYCLE and event.verb.value in EDIT_VERBS:
        held += [(j.id, "an edit of another job: email jobs get edits only of jobs they name")
                 for j in keep if not _names(j, event)]  # fmt: skip
        keep = [j for j in keep if _names(j, event)]
    return keep, held


def _names(job: Job, event: SystemEvent) -> bool:
    """False for a mailing job that does not name the event's subject itself (rule 4); else True."""
    if job.sink not in MAILING_SINKS:
        return True
    sources = job.filter.sources or {}
    return event.subject_id in sources.get(event.subject_type, ())


def seal(data: bytes, keys: SecretStr | str | None) -> dict[str, str]:
    """The attribute vouching that sysevents published `data` (empty without a sealing key: then ingest
    trusts no mark)."""
    try:
        key = signing_keys(keys, _PURPOSE)[0]
    except SealingError:
        return {}
    return {SEAL_ATTR: hmac.new(key, data, hashlib.sha256).hexdigest()}


def trusted(data: bytes, attributes: dict[str, str], keys: SecretStr | str | None) -> bool:
    """True when the message carries a valid seal of its bytes (sysevents published it unchanged)."""
    given = attributes.get(SEAL_ATTR, "")
    try:
        found = signing_keys(keys, _PURPOSE)
    except SealingError:
        return False
    return bool(given) and any(
        hmac.compare_digest(given, hmac.new(k, data, hashlib.sha256).hexdigest()) for k in found
    )
