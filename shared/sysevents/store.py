"""Jobs in Firestore, and the in-memory job cache the pipeline functions match against.

Cache design: a Firestore snapshot listener on the jobs collection keeps a `JobIndex` current. The
first snapshot is loaded once per function instance (one read per job); after that only changed
jobs are transferred, so steady-state ingest reads nothing from Firestore per event. A job change
reaches a running instance as soon as the listener delivers it (about a second here; measured by
bench/bench_matching.py). If the listener stops (network error, emulator restart) the next lookup
restarts it and reloads, so the cache cannot stay stale silently.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from google.cloud import firestore

from .events import SystemEvent
from .jobs import InvalidJob, Job, job_from_dict, job_to_dict
from .matching import JobIndex

log = logging.getLogger(__name__)


class JobStore:
    """Create, read, replace and delete jobs (the admin API builds on this)."""

    def __init__(self, client: firestore.Client, collection: str = "jobs"):
        self.client = client
        self.collection = client.collection(collection)

    def put(self, job: Job) -> Job:
        now = datetime.now(UTC)
        job = job.model_copy(update={"created_at": job.created_at or now, "updated_at": now})
        self.collection.document(job.id).set(job_to_dict(job))
        return job

    def get(self, job_id: str) -> Job | None:
        snap = self.collection.document(job_id).get()
        return job_from_dict(snap.to_dict(), job_id=snap.id) if snap.exists else None

    def delete(self, job_id: str) -> None:
        self.collection.document(job_id).delete()

    def list(self, aid: str) -> list[Job]:
        return [job_from_dict(s.to_dict(), job_id=s.id) for s in self.collection.where("aid", "==", aid).stream()]


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
