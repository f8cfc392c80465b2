"""Per-instance clients, built once on first use: settings, publisher, Firestore, the job cache."""

from __future__ import annotations

import logging
import threading
from functools import cache

from google.cloud import firestore

from .attempts import AttemptLog
from .config import Settings, settings
from .jobs import Job
from .pubsub import Publisher
from .store import JobCache, JobStore
from .topology import Topology, load

_lock = threading.Lock()


@cache
def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


class Runtime:
    def __init__(self, cfg: Settings | None = None, topology: Topology | None = None):
        _logging()
        self.settings = cfg or settings()
        self.topology = topology or load()
        self.firestore = firestore.Client(project=self.settings.project)
        self.publisher = Publisher(self.settings.project)
        self.jobs = JobStore(self.firestore, self.settings.jobs_collection)
        self.attempts = AttemptLog(self.firestore)
        self._cache: JobCache | None = None
        self._bigquery = None

    @property
    def cache(self) -> JobCache:
        if self._cache is None:
            with _lock:
                if self._cache is None:
                    self._cache = JobCache(
                        self.firestore, self.settings.jobs_collection, self.settings.job_cache_start_timeout
                    ).start()
        return self._cache

    def job_for(self, job_id: str, version: int) -> Job | None:
        """The job a delivery names, at least at the version ingest matched it with: from the cache, or
        from Firestore when this instance's cache has not caught up yet (a just-created or just-changed
        job). None when the job no longer exists."""
        job = self.cache.get(job_id)
        if job is None or job.version < version:
            job = self.jobs.get(job_id) or job
        return job

    @property
    def bigquery(self):
        """The BigQuery client (google.cloud.bigquery.Client), built on first use; the emulator's when
        SYSEVENTS_BIGQUERY_ENDPOINT is set."""
        if self._bigquery is None:
            with _lock:
                if self._bigquery is None:
                    from google.cloud import bigquery

                    if self.settings.bigquery_endpoint:
                        from google.auth.credentials import AnonymousCredentials

                        self._bigquery = bigquery.Client(
                            project=self.settings.project,
                            credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": self.settings.bigquery_endpoint},
                        )
                    else:
                        self._bigquery = bigquery.Client(
                            project=self.settings.project, location=self.settings.bigquery_location
                        )
        return self._bigquery


_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        with _lock:
            if _runtime is None:
                _runtime = Runtime()
    return _runtime


def health(rt: Runtime, function: str) -> tuple[dict, int]:
    """GET on a push function: its job cache's freshness (the tests and `make dev` wait on it)."""
    return {"function": function, "job_cache": rt.cache.status()}, 200
