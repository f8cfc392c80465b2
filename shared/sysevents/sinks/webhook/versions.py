"""Template versions: the template each version of a webhook job delivered with, so a replay can ask for an
older one (`template_version`, sysevents.delivery.replay).

Kept at `job_state/{job key}/templates/{version}` (with the job's other delivery state: deleted with it),
written once per version per instance: concurrent first deliveries of a version write it once, and the
others do not wait for it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from google.cloud import firestore

from sysevents.delivery.accounting import COLLECTION
from sysevents.jobs.model import Job


class TemplateVersions:
    def __init__(self, client: firestore.Client, collection: str = COLLECTION):
        self.collection = client.collection(collection)
        self._seen: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def _ref(self, job: Job, version: int):
        return self.collection.document(job.key).collection("templates").document(str(version))

    def remember(self, job: Job, template: str | None) -> None:
        """Keep the template of this job version (one write per version per instance)."""
        seen = (job.key, job.version)
        if seen in self._seen:
            return
        with self._lock:
            if seen in self._seen:
                return
            self._seen.add(seen)
        try:
            self._ref(job, job.version).set(
                {"version": job.version, "json_template": template, "saved_at": datetime.now(UTC)}
            )
        except BaseException:
            self._seen.discard(seen)  # the next delivery writes it
            raise

    def get(self, job: Job, version: int) -> tuple[bool, str | None]:
        """(found, template) of a job version the sink has delivered with."""
        snap = self._ref(job, version).get()
        return (True, snap.get("json_template")) if snap.exists else (False, None)
