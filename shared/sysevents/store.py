"""Jobs in Firestore, and the in-memory job cache the pipeline functions match against.

Cache design: a Firestore snapshot listener on the jobs collection keeps a `JobIndex` current. The
first snapshot is loaded once per function instance (one read per job); after that only changed
jobs are transferred, so steady-state ingest reads nothing from Firestore per event. A job change
reaches a running instance as soon as the listener delivers it (p50 12 ms, max 124 ms from the
write call against the emulator here; bench/bench_job_propagation.py). If the listener stops (network error, emulator restart) the next lookup
restarts it and reloads, so the cache cannot stay stale silently.
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
from .jobs import InvalidJob, Job, job_from_dict, job_to_dict
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


class JobStore:
    """Create, read, replace and delete jobs (the admin API builds on this)."""

    def __init__(self, client: firestore.Client, collection: str = "jobs"):
        self.client = client
        self.collection = client.collection(collection)
        self.last_write_time: datetime | None = None  # commit time of this store's latest write

    def put(self, job: Job) -> Job:
        now = datetime.now(UTC)
        job = job.model_copy(update={"created_at": job.created_at or now, "updated_at": now})
        self.last_write_time = self.collection.document(job.id).set(job_to_dict(job)).update_time
        return job

    def get(self, job_id: str) -> Job | None:
        snap = self.collection.document(job_id).get()
        return job_from_dict(snap.to_dict(), job_id=snap.id) if snap.exists else None

    def delete(self, job_id: str) -> None:
        self.last_write_time = self.collection.document(job_id).delete()

    def list(self, aid: str) -> list[Job]:
        return [
            job_from_dict(s.to_dict(), job_id=s.id) for s in self.collection.where("aid", "==", aid).stream()
        ]

    # -- versioned changes (the admin API): version 1 on create, +1 on every change, in a transaction ----
    def create(self, job: Job) -> Job:
        """Store a new job at version 1; JobExists if its id is taken."""
        now = datetime.now(UTC)
        job = job.model_copy(update={"version": 1, "created_at": now, "updated_at": now})
        try:
            self.last_write_time = self.collection.document(job.id).create(job_to_dict(job)).update_time
        except gexc.Conflict:
            raise JobExists(job.id) from None
        return job

    def change(
        self, aid: str, job_id: str, change: Callable[[Job], Job], expected_version: int | None = None
    ) -> tuple[Job, Job]:
        """Apply `change` to the account's job and store it at version + 1; returns (old, new).

        Raises JobNotFound (absent, or another account's), VersionConflict (`expected_version` is stale).
        """
        ref = self.collection.document(job_id)

        @firestore.transactional
        def run(tx: firestore.Transaction) -> tuple[Job, Job]:
            old = self._read_for_update(tx, ref, aid, expected_version)
            new = change(old).model_copy(
                update={
                    "id": old.id,
                    "aid": old.aid,
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
        ref = self.collection.document(job_id)

        @firestore.transactional
        def run(tx: firestore.Transaction) -> Job:
            old = self._read_for_update(tx, ref, aid, expected_version)
            tx.delete(ref)
            return old

        old = run(self.client.transaction())
        self.last_write_time = datetime.now(UTC)
        return old

    def _read_for_update(self, tx, ref, aid: str, expected_version: int | None) -> Job:
        snap = ref.get(transaction=tx)
        doc = snap.to_dict() if snap.exists else None
        if doc is None or doc.get("aid") != aid:
            raise JobNotFound(ref.id)
        old = job_from_dict(doc, job_id=snap.id)
        if expected_version is not None and expected_version != old.version:
            raise VersionConflict(ref.id, old.version, expected_version)
        return old

    def find(self, aid: str, job_id: str) -> Job:
        """The account's job; JobNotFound when absent or another account's."""
        snap = self.collection.document(job_id).get()
        doc = snap.to_dict() if snap.exists else None
        if doc is None or doc.get("aid") != aid:
            raise JobNotFound(job_id)
        return job_from_dict(doc, job_id=snap.id)

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
        q = self.collection.where(filter=FieldFilter("aid", "==", aid))
        if workflow:
            q = q.where(filter=FieldFilter("workflow", "==", workflow))
        if state:
            q = q.where(filter=FieldFilter("state", "==", state))
        if after:
            q = q.where(filter=FieldFilter(FieldPath.document_id(), ">", self.collection.document(after)))
        snaps = list(q.order_by(FieldPath.document_id()).limit(limit + 1).stream())
        jobs = []
        for snap in snaps[:limit]:
            try:
                jobs.append(job_from_dict(snap.to_dict(), job_id=snap.id))
            except InvalidJob as err:
                log.error("job store: skipping invalid job %s: %s", snap.id, err.reason)
        return jobs, (snaps[limit - 1].id if len(snaps) > limit else None)


class JobCache:
    """All jobs, kept current by a snapshot listener; `match` and `get` never touch Firestore."""

    def __init__(self, client: firestore.Client, collection: str = "jobs", start_timeout: float = 60.0):
        self._query = client.collection(collection)
        self._timeout = start_timeout
        self._lock = threading.Lock()
        self._index = JobIndex()
        self._watch = None
        self._ready = threading.Event()
        self.updated_at: datetime | None = None
        self.invalid: dict[str, str] = {}  # job id -> why its stored document was skipped

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
        for change in changes:
            doc = change.document
            if change.type.name == "REMOVED":
                index.remove(doc.id)
                self.invalid.pop(doc.id, None)
                continue
            try:
                index.upsert(job_from_dict(doc.to_dict() or {}, job_id=doc.id))
                self.invalid.pop(doc.id, None)
            except InvalidJob as err:
                index.remove(doc.id)
                self.invalid[doc.id] = err.reason
                log.error("job cache: skipping invalid job %s: %s", doc.id, err.reason)
        self.updated_at = read_time
        self._ready.set()

    def _current(self) -> JobIndex:
        if self._watch is None or not self._watch.is_active or not self._ready.is_set():
            self.start()
        return self._index

    def match(self, event: SystemEvent) -> list[Job]:
        return self._current().match(event)

    def get(self, job_id: str) -> Job | None:
        return self._current().get(job_id)

    def __len__(self) -> int:
        return len(self._current())

    def status(self) -> dict:
        """For health checks: how many jobs, how fresh, which stored jobs were skipped as invalid."""
        index = self._current()
        return {
            "jobs": len(index),
            "read_time": self.updated_at.isoformat() if self.updated_at else None,
            "invalid_jobs": dict(self.invalid),
        }
