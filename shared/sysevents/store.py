"""Jobs in Firestore, and the in-memory job cache the pipeline functions match against.

Layout: a job lives at `accounts/{aid}/jobs/{id}`. Ids are chosen per account: every read, change and
listing goes through the account's own collection, so a job id in one account says nothing about
another (a create that collides answers for that account only).

Cache design: a Firestore snapshot listener on the `jobs` collection group keeps a `JobIndex` current.
The first snapshot is loaded once per function instance (one read per job); after that only changed
jobs are transferred, so steady-state ingest reads nothing from Firestore per event. A job change
reaches a running instance as soon as the listener delivers it (p50 12 ms, max 124 ms from the write
call against the emulator here; bench/bench_job_propagation.py). If the listener stops (network error,
emulator restart) the next lookup restarts it and reloads, so the cache cannot stay stale silently.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from .events import SystemEvent
from .jobs import InvalidJob, Job, job_from_dict, job_to_dict, new_generation
from .matching import JobIndex

log = logging.getLogger(__name__)


class JobNotFound(LookupError):
    def __init__(self, job_id: str):
        super().__init__(f"job {job_id!r} not found")
        self.job_id = job_id


class JobExists(ValueError):
    def __init__(self, job_id: str):
        super().__init__(f"a job with id {job_id!r} already exists")
        self.job_id = job_id


class VersionConflict(ValueError):
    def __init__(self, job_id: str, current: int, expected: int):
        super().__init__(
            f"job {job_id!r} is at version {current}, not {expected}: it changed since you read "
            "it; read it again and reapply your change"
        )
        self.job_id, self.current, self.expected = job_id, current, expected


def _job_of(snap) -> Job:
    """A stored job from its snapshot: the id and account come from its path."""
    return job_from_dict(snap.to_dict() or {}, job_id=snap.id, aid=snap.reference.parent.parent.id)


class JobStore:
    """Create, read, replace and delete jobs (the admin API builds on this)."""

    def __init__(self, client: firestore.Client, collection: str = "jobs", accounts: str = "accounts"):
        self.client = client
        self.accounts = client.collection(accounts)
        self.name = collection
        self.last_write_time: datetime | None = None  # commit time of this store's latest write

    def collection(self, aid: str):
        return self.accounts.document(aid).collection(self.name)

    def ref(self, aid: str, job_id: str):
        return self.collection(aid).document(job_id)

    def put(self, job: Job) -> Job:
        now = datetime.now(UTC)
        job = job.model_copy(update={"created_at": job.created_at or now, "updated_at": now})
        self.last_write_time = self.ref(job.aid, job.id).set(job_to_dict(job)).update_time
        return job

    def get(self, aid: str, job_id: str) -> Job | None:
        try:
            snap = self.ref(aid, job_id).get()
        except ValueError:  # not a valid document path: no such job
            return None
        return _job_of(snap) if snap.exists else None

    def delete(self, aid: str, job_id: str) -> None:
        self.last_write_time = self.ref(aid, job_id).delete()

    def list(self, aid: str) -> list[Job]:
        return [_job_of(s) for s in self.collection(aid).stream()]

    # -- versioned changes (the admin API): version 1 on create, +1 on every change, in a transaction ----
    def create(self, job: Job) -> Job:
        """Store a new job at version 1, with a new generation; JobExists if the account uses its id."""
        now = datetime.now(UTC)
        job = job.model_copy(
            update={"version": 1, "generation": new_generation(), "created_at": now, "updated_at": now}
        )
        try:
            self.last_write_time = self.ref(job.aid, job.id).create(job_to_dict(job)).update_time
        except gexc.Conflict:
            raise JobExists(job.id) from None
        return job

    def change(
        self, aid: str, job_id: str, change: Callable[[Job], Job | None], expected_version: int | None = None
    ) -> tuple[Job, Job]:
        """Apply `change` to the account's job and store it at version + 1; returns (old, new). A `change`
        that returns None leaves the job as it is (returns (old, old)).

        Raises JobNotFound, VersionConflict (`expected_version` is stale).
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
            tx.set(ref, job_to_dict(new))
            return old, new

        result = run(self.client.transaction())
        self.last_write_time = datetime.now(UTC)
        return result

    def remove(self, aid: str, job_id: str, expected_version: int | None = None) -> Job:
        """Delete the account's job; returns what was deleted. Same errors as `change`."""
        ref = self.ref(aid, job_id)

        @firestore.transactional
        def run(tx: firestore.Transaction) -> Job:
            old = self._read_for_update(tx, ref, expected_version)
            tx.delete(ref)
            return old

        old = run(self.client.transaction())
        self.last_write_time = datetime.now(UTC)
        return old

    def _read_for_update(self, tx, ref, expected_version: int | None) -> Job:
        snap = ref.get(transaction=tx)
        if not snap.exists:
            raise JobNotFound(ref.id)
        old = _job_of(snap)
        if expected_version is not None and expected_version != old.version:
            raise VersionConflict(ref.id, old.version, expected_version)
        return old

    def hold(self, job: Job, until: datetime) -> None:
        """Hold the job until `until` (its receiver's Retry-After), unless it is held longer already. Not a
        change of the job: its version stays; every instance's job cache sees the hold within moments."""
        ref = self.ref(job.aid, job.id)

        @firestore.transactional
        def run(tx: firestore.Transaction) -> None:
            snap = ref.get(transaction=tx)
            if not snap.exists or (snap.to_dict() or {}).get("generation") != job.generation:
                return
            held = (snap.to_dict() or {}).get("hold_until")
            if held is None or held < until:
                tx.update(ref, {"hold_until": until})

        run(self.client.transaction())

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
                jobs.append(_job_of(snap))
            except InvalidJob as err:
                log.error("job store: skipping invalid job %s: %s", snap.reference.path, err.reason)
        return jobs, (snaps[limit - 1].id if len(snaps) > limit else None)


class JobCache:
    """All jobs, kept current by a snapshot listener; `match` and `get` never touch Firestore."""

    def __init__(
        self,
        client: firestore.Client,
        collection: str = "jobs",
        start_timeout: float = 60.0,
        accounts: str = "accounts",
    ):
        self._query = client.collection_group(collection)
        self._accounts = accounts
        self._timeout = start_timeout
        self._lock = threading.Lock()
        self._index = JobIndex()
        self._watch = None
        self._ready = threading.Event()
        self.updated_at: datetime | None = None
        self.invalid: dict[str, str] = {}  # job path -> why its stored document was skipped
        self.documents_read = 0  # job documents the listener received (Firestore bills one read each)

    def start(self) -> JobCache:
        with self._lock:
            if self._watch is not None and self._watch.is_active and self._ready.is_set():
                return self
            if self._watch is not None:
                log.warning("job cache: listener stopped; restarting and reloading")
                self._watch.unsubscribe()
            self._ready.clear()
            self._index = JobIndex()
            self._watch = self._query.on_snapshot(self._on_snapshot)
        if not self._ready.wait(self._timeout):
            raise TimeoutError(f"job cache: no snapshot of the jobs collection within {self._timeout:.0f}s")
        return self

    def stop(self) -> None:
        with self._lock:
            if self._watch is not None:
                self._watch.unsubscribe()
                self._watch = None

    def _on_snapshot(self, docs, changes, read_time) -> None:
        index = self._index
        self.documents_read += len(changes)
        for change in changes:
            doc = change.document
            account = doc.reference.parent.parent
            if account is None or account.parent.id != self._accounts:
                continue  # a `jobs` collection somewhere else: not ours
            key = (account.id, doc.id)
            if change.type.name == "REMOVED":
                index.remove(key)
                self.invalid.pop(doc.reference.path, None)
                continue
            try:
                index.upsert(_job_of(doc))
                self.invalid.pop(doc.reference.path, None)
            except InvalidJob as err:
                index.remove(key)
                self.invalid[doc.reference.path] = err.reason
                log.error("job cache: skipping invalid job %s: %s", doc.reference.path, err.reason)
        self.updated_at = read_time
        self._ready.set()

    def _current(self) -> JobIndex:
        if self._watch is None or not self._watch.is_active or not self._ready.is_set():
            self.start()
        return self._index

    def match(self, event: SystemEvent) -> list[Job]:
        return self._current().match(event)

    def get(self, aid: str, job_id: str) -> Job | None:
        return self._current().get((aid, job_id))

    def jobs(self) -> list[Job]:
        """Every job this instance knows (active and paused)."""
        return self._current().all()

    def __len__(self) -> int:
        return len(self._current())

    def status(self) -> dict:
        """For health checks: how many jobs, how fresh, which stored jobs were skipped as invalid."""
        index = self._current()
        return {
            "jobs": len(index),
            "read_time": self.updated_at.isoformat() if self.updated_at else None,
            "documents_read": self.documents_read,
            "invalid_jobs": dict(self.invalid),
        }
