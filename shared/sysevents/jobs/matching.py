"""Which jobs want an event: one pure predicate, and an index that finds candidates without scanning.

`matches(filter, event)` is the definition. `JobIndex` only narrows the candidates by
(aid, subject_type, subject_id, verb) and then applies `matches` (which evaluates the job's CEL content filter
and exclusions last), so the two cannot disagree; its cost per event grows with the number of jobs that
*could* match, not with the number of jobs.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable

from sysevents.events.model import SystemEvent
from sysevents.jobs.model import EventFilter, Job, JobState

_ANY = None  # in an index key: every subject type, or every subject of a type


def matches(f: EventFilter, event: SystemEvent) -> bool:
    """True when the filter selects the event: same account, a wanted verb, a wanted source, then (only
    then: they cost the most) its content filter true and none of its exclusions."""
    if f.aid != event.aid or event.verb not in f.verbs:
        return False
    if f.sources is not None:
        ids = f.sources.get(event.subject_type)
        if ids is None or (ids and event.subject_id not in ids):
            return False
    if f.content is not None and not f.content.matches(event):
        return False
    return not any(x.matches(event) for x in f.excludes)


JobId = tuple[str, str]
"""(aid, job id): a job's identity; ids are chosen per account."""


class JobIndex:
    """Active jobs keyed by (aid, subject_type|*, subject_id|*, verb). Thread-safe; updated incrementally."""

    def __init__(self, jobs: Iterable[Job] = ()):
        self._lock = threading.Lock()
        self._by_key: dict[tuple, dict[JobId, tuple[Job, EventFilter]]] = defaultdict(dict)
        self._keys_of: dict[JobId, list[tuple]] = {}
        self._jobs: dict[JobId, Job] = {}
        for job in jobs:
            self.upsert(job)

    @staticmethod
    def _keys(f: EventFilter) -> list[tuple]:
        if f.sources is None:
            places = [(_ANY, _ANY)]
        else:
            places = [(st, sid) for st, ids in f.sources.items() for sid in (ids or (_ANY,))]
        return [(f.aid, st, sid, verb) for st, sid in places for verb in f.verbs]

    def upsert(self, job: Job, *, matchable: bool = True) -> None:
        """Add or replace a job; paused jobs are kept for lookup by id but never matched, and so are jobs
        stored with `matchable=False` (a job cache holding a job for lookups only: its account's other
        jobs are not here, so matching that account would be incomplete anyway)."""
        jid = (job.aid, job.id)
        with self._lock:
            self._drop(jid)
            self._jobs[jid] = job
            if matchable and job.state is JobState.ACTIVE:
                f = job.filter
                keys = self._keys(f)
                for key in keys:
                    self._by_key[key][jid] = (job, f)
                self._keys_of[jid] = keys

    def remove(self, job_id: JobId) -> None:
        with self._lock:
            self._drop(job_id)
            self._jobs.pop(job_id, None)

    def _drop(self, job_id: JobId) -> None:
        for key in self._keys_of.pop(job_id, ()):
            bucket = self._by_key.get(key)
            if bucket is not None:
                bucket.pop(job_id, None)
                if not bucket:
                    del self._by_key[key]

    def get(self, job_id: JobId) -> Job | None:
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def __len__(self) -> int:
        return len(self._jobs)

    def match(self, event: SystemEvent) -> list[Job]:
        """Active jobs whose filter selects the event, in a stable order (by job id)."""
        aid, st, verb = event.aid, event.subject_type, event.verb
        candidates: list[tuple[Job, EventFilter]] = []
        with self._lock:
            for key in ((aid, st, event.subject_id, verb), (aid, st, _ANY, verb), (aid, _ANY, _ANY, verb)):
                bucket = self._by_key.get(key)
                if bucket:
                    candidates.extend(bucket.values())
        found = [job for job, f in candidates if matches(f, event)]
        found.sort(key=lambda j: j.id)
        return found
