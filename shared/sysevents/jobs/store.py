"""Jobs in Firestore: the job store (create, read, change, delete).

Layout: a job lives at `accounts/{aid}/jobs/{id}`. Ids are chosen per account: every read, change and
listing goes through the account's own collection, so a job id in one account says nothing about
another (a create that collides answers for that account only).

Every write also bumps, in its own transaction, its account's change marker, which the job caches follow
(sysevents.jobs.changes): writes of different accounts share no document.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from sysevents.jobs.changes import CHANGES_COLLECTION, ChangeMarker
from sysevents.jobs.model import InvalidJob, Job, job_to_dict, new_generation
from sysevents.jobs.registry import job_of

log = logging.getLogger(__name__)

TX_ATTEMPTS = 50
"""Every job write and its account's marker share a transaction: concurrent writes of one account retry on
the marker (another account's never touch it)."""


class JobNotFound(LookupError):
    def __init__(self, job_id: str):
        super().__init__(f"job {job_id!r} not found")
        self.job_id = job_id


class JobExists(ValueError):
    def __init__(self, job_id: str):
        super().__init__(f"a job with id {job_id!r} already exists")
        self.job_id = job_id


class TooManyJobs(ValueError):
    def __init__(self, aid: str, limit: int):
        super().__init__(
            f"account {aid!r} has {limit} jobs, the most an account may have (SYSEVENTS_MAX_JOBS_PER_ACCOUNT): "
            "delete one first"
        )
        self.aid, self.limit = aid, limit


class TooManyFilterEntries(ValueError):
    def __init__(self, aid: str, limit: int, have: int, adding: int):
        super().__init__(
            f"account {aid!r} has jobs with {have:,} (subject, verb) filter combinations in all and this job would "
            f"add {adding:,}; the most an account may have is {limit:,} (SYSEVENTS_MAX_FILTER_ENTRIES_PER_ACCOUNT): "
            "narrow or delete a job first"
        )
        self.aid, self.limit = aid, limit


@dataclass(frozen=True)
class Limits:
    """What one account's jobs may add up to (checked in the transaction that writes the job, against the
    account's usage document, so concurrent creates cannot pass them)."""

    jobs: int | None = None
    filter_entries: int | None = None


class VersionConflict(ValueError):
    def __init__(self, job_id: str, current: int, expected: int):
        super().__init__(
            f"job {job_id!r} is at version {current}, not {expected}: it changed since you read "
            "it; read it again and reapply your change"
        )
        self.job_id, self.current, self.expected = job_id, current, expected


class JobStore:
    """Create, read, replace and delete jobs (the admin API builds on this). Every write also bumps its
    account's change marker in the same transaction, which is how every job cache learns of it."""

    def __init__(
        self,
        client: firestore.Client,
        collection: str = "jobs",
        accounts: str = "accounts",
        changes: str = CHANGES_COLLECTION,
    ):
        self.client = client
        self.accounts = client.collection(accounts)
        self.name = collection
        self.changes = ChangeMarker(client, changes)
        self.last_write_time: datetime | None = None  # when this store's latest write had committed

    def collection(self, aid: str):
        return self.accounts.document(aid).collection(self.name)

    def ref(self, aid: str, job_id: str):
        return self.collection(aid).document(job_id)

    def _transaction(self) -> firestore.Transaction:
        return self.client.transaction(max_attempts=TX_ATTEMPTS)

    def _written(self) -> None:
        self.last_write_time = datetime.now(UTC)

    # -- plain writes (tests, tools) ---------------------------------------------------------------------
    def put(self, job: Job) -> Job:
        now = datetime.now(UTC)
        job = job.model_copy(update={"created_at": job.created_at or now, "updated_at": now})
        ref = self.ref(job.aid, job.id)

        @firestore.transactional
        def run(tx: firestore.Transaction) -> None:
            marker = self.changes.read(tx, job.aid)
            tx.set(ref, job_to_dict(job))
            self.changes.bump(tx, marker, job.aid, job.id)

        run(self._transaction())
        self._written()
        return job

    def get(self, aid: str, job_id: str) -> Job | None:
        try:
            snap = self.ref(aid, job_id).get()
        except ValueError:  # not a valid document path: no such job
            return None
        return job_of(snap) if snap.exists else None

    def delete(self, aid: str, job_id: str) -> None:
        ref = self.ref(aid, job_id)

        @firestore.transactional
        def run(tx: firestore.Transaction) -> None:
            marker = self.changes.read(tx, aid)
            tx.delete(ref)
            self.changes.bump(tx, marker, aid, job_id)

        run(self._transaction())
        self._written()

    def list(self, aid: str) -> list[Job]:
        return [job_of(s) for s in self.collection(aid).stream()]

    # -- versioned changes (the admin API): version 1 on create, +1 on every change, in a transaction ----
    # -- what an account's jobs add up to (accounts/{aid}/usage/{jobs collection}) ----------------------
    def _usage_ref(self, aid: str):
        return self.accounts.document(aid).collection("usage").document(self.name)

    def usage(self, aid: str, tx: firestore.Transaction | None = None) -> tuple[int, int]:
        """(jobs, filter entries) of the account, as the admin API's writes keep them; counted from its jobs
        while it has no usage document yet (an account from before it, or whose jobs were only `put`). The
        count reads outside the transaction, so writes racing each other contend on the usage document only,
        never on a query's range; a write that commits meanwhile aborts this transaction's attempt."""
        snap = self._usage_ref(aid).get(transaction=tx)
        if not snap.exists:
            return self._count_usage(aid)
        doc = snap.to_dict() or {}
        return int(doc.get("jobs", 0)), int(doc.get("filter_entries", 0))

    def _count_usage(self, aid: str) -> tuple[int, int]:
        jobs = entries = 0
        for job_snap in self.collection(aid).stream():
            jobs += 1
            try:
                entries += job_of(job_snap).filter.entries
            except InvalidJob:
                pass  # never matched: costs nothing
        return jobs, entries

    def _set_usage(self, tx: firestore.Transaction, aid: str, jobs: int, entries: int) -> None:
        tx.set(self._usage_ref(aid), {"jobs": max(jobs, 0), "filter_entries": max(entries, 0)})

    @staticmethod
    def _check_entries(limits: Limits | None, aid: str, have: int, adding: int) -> None:
        if (
            limits
            and limits.filter_entries is not None
            and adding > 0
            and have + adding > limits.filter_entries
        ):
            raise TooManyFilterEntries(aid, limits.filter_entries, have, adding)

    def create(self, job: Job, limits: Limits | None = None) -> Job:
        """Store a new job at version 1, with a new generation; JobExists if the account uses its id,
        TooManyJobs or TooManyFilterEntries if it would pass `limits` (checked in the transaction that
        writes it, so concurrent creates of one account cannot pass them)."""
        now = datetime.now(UTC)
        job = job.model_copy(
            update={"version": 1, "generation": new_generation(), "created_at": now, "updated_at": now}
        )
        ref = self.ref(job.aid, job.id)

        @firestore.transactional
        def run(tx: firestore.Transaction) -> None:
            if ref.get(transaction=tx).exists:
                raise JobExists(job.id)
            jobs, entries = self.usage(job.aid, tx)
            if limits and limits.jobs is not None and jobs >= limits.jobs:
                raise TooManyJobs(job.aid, limits.jobs)
            adding = job.filter.entries
            self._check_entries(limits, job.aid, entries, adding)
            marker = self.changes.read(tx, job.aid)
            tx.create(ref, job_to_dict(job))
            self._set_usage(tx, job.aid, jobs + 1, entries + adding)
            self.changes.bump(tx, marker, job.aid, job.id)

        try:
            run(self._transaction())
        except gexc.Conflict:
            raise JobExists(job.id) from None
        self._written()
        return job

    def change(
        self,
        aid: str,
        job_id: str,
        change: Callable[[Job], Job | None],
        expected_version: int | None = None,
        limits: Limits | None = None,
    ) -> tuple[Job, Job]:
        """Apply `change` to the account's job and store it at version + 1; returns (old, new). A `change`
        that returns None leaves the job as it is (returns (old, old)).

        Raises JobNotFound, VersionConflict (`expected_version` is stale), TooManyFilterEntries (a wider
        filter would pass `limits`).
        """
        ref = self.ref(aid, job_id)

        @firestore.transactional
        def run(tx: firestore.Transaction) -> tuple[Job, Job]:
            old = self._read_for_update(tx, ref, expected_version)
            changed = change(old)
            if changed is None:
                return old, old
            new = changed.model_copy(
                update={
                    "id": old.id,
                    "aid": old.aid,
                    "generation": old.generation,
                    "version": old.version + 1,
                    "created_at": old.created_at,
                    "updated_at": datetime.now(UTC),
                }
            )
            delta = new.filter.entries - old.filter.entries
            if delta:  # a pause, a rename, a new URL: the account's usage is not read or written
                jobs, entries = self.usage(aid, tx)
                self._check_entries(limits, aid, entries, delta)
            marker = self.changes.read(tx, aid)
            tx.set(ref, job_to_dict(new))
            if delta:
                self._set_usage(tx, aid, jobs, entries + delta)
            self.changes.bump(tx, marker, aid, job_id)
            return old, new

        result = run(self._transaction())
        self._written()
        return result

    def remove(self, aid: str, job_id: str, expected_version: int | None = None) -> Job:
        """Delete the account's job; returns what was deleted. Same errors as `change`."""
        ref = self.ref(aid, job_id)

        @firestore.transactional
        def run(tx: firestore.Transaction) -> Job:
            old = self._read_for_update(tx, ref, expected_version)
            jobs, entries = self.usage(aid, tx)
            marker = self.changes.read(tx, aid)
            tx.delete(ref)
            self._set_usage(tx, aid, jobs - 1, entries - old.filter.entries)
            self.changes.bump(tx, marker, aid, job_id)
            return old

        old = run(self._transaction())
        self._written()
        return old

    def _read_for_update(self, tx, ref, expected_version: int | None) -> Job:
        snap = ref.get(transaction=tx)
        if not snap.exists:
            raise JobNotFound(ref.id)
        old = job_of(snap)
        if expected_version is not None and expected_version != old.version:
            raise VersionConflict(ref.id, old.version, expected_version)
        return old

    def find(self, aid: str, job_id: str) -> Job:
        """The account's job; JobNotFound when it has none by that id."""
        job = self.get(aid, job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def page(
        self,
        aid: str,
        *,
        workflow: str | None = None,
        state: str | None = None,
        limit: int = 50,
        after: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """One page of the account's jobs in id order, and the id to continue after (None: last page).

        Equality filters plus document-id order need no composite index. Stored jobs that no longer
        validate are skipped (and logged), as the job cache skips them.
        """
        col = self.collection(aid)
        q = col
        if workflow:
            q = q.where(filter=FieldFilter("workflow", "==", workflow))
        if state:
            q = q.where(filter=FieldFilter("state", "==", state))
        if after:
            q = q.where(filter=FieldFilter(FieldPath.document_id(), ">", col.document(after)))
        snaps = list(q.order_by(FieldPath.document_id()).limit(limit + 1).stream())
        jobs = []
        for snap in snaps[:limit]:
            try:
                jobs.append(job_of(snap))
            except InvalidJob as err:
                log.error("job store: skipping invalid job %s: %s", snap.reference.path, err.reason)
        return jobs, (snaps[limit - 1].id if len(snaps) > limit else None)
