"""Backfill runs in Firestore: state, cursor and counts, the lease that keeps one runner on a backfill at a
time, and the late events a backfill-then-continuous export parks for its backfill to write.

`exports/{job key}`: one document per job generation (`Job.key`), so a job created again after a delete
starts its backfill afresh. `held/{event id}` under it: late events parked by streaming (sysevents.sinks.
bigquery.export) until the backfill finishes; `park_unless_done` and `finish` are transactions on the run
document, so an event is either parked before the run is done (and written by the backfill) or sees the
run done.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from google.cloud import firestore as fs

from sysevents.events.model import SystemEvent
from sysevents.jobs.model import Job


class RunState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class LeaseLost(RuntimeError):
    """Another runner took the backfill over (this one's lease ran out): stop without writing more."""


class Runs:
    """Backfill runs in Firestore: `exports/{job key}`, one per job generation (re-running resumes it)."""

    def __init__(self, client: fs.Client, collection: str = "exports"):
        self.collection = client.collection(collection)
        self._done: set[tuple[str, str]] = set()

    def get(self, job_key: str) -> dict[str, Any] | None:
        snap = self.collection.document(job_key).get()
        return snap.to_dict() if snap.exists else None

    def put(self, job_key: str, fields: dict[str, Any]) -> None:
        self.collection.document(job_key).set(fields, merge=True)

    # A lease keeps one runner (a tick, `sysevents export run`) on a backfill at a time.
    def claim(self, job_key: str, owner: str, seconds: float) -> bool:
        """Take the run's lease for `seconds` unless another owner holds an unexpired one."""
        ref = self.collection.document(job_key)

        @fs.transactional
        def txn(tx: fs.Transaction) -> bool:
            snap = ref.get(transaction=tx)
            run = snap.to_dict() if snap.exists else {}
            now = datetime.now(UTC)
            if run.get("lease_owner") not in (None, owner) and (run.get("lease_until") or now) > now:
                return False
            tx.set(ref, {"lease_owner": owner, "lease_until": now + timedelta(seconds=seconds)}, merge=True)
            return True

        return txn(self.collection._client.transaction())

    def checkpoint(self, job_key: str, owner: str, fields: dict[str, Any], seconds: float) -> None:
        """Store `fields` and renew the lease, in one transaction; LeaseLost when `owner` no longer has it."""
        ref = self.collection.document(job_key)

        @fs.transactional
        def txn(tx: fs.Transaction) -> None:
            snap = ref.get(transaction=tx)
            if (snap.to_dict() or {}).get("lease_owner") != owner:
                raise LeaseLost(f"backfill {job_key} is no longer held by {owner}")
            until = datetime.now(UTC) + timedelta(seconds=seconds)
            tx.set(ref, {**fields, "lease_until": until}, merge=True)

        txn(self.collection._client.transaction())

    def release(self, job_key: str, owner: str) -> None:
        ref = self.collection.document(job_key)

        @fs.transactional
        def txn(tx: fs.Transaction) -> None:
            snap = ref.get(transaction=tx)
            if snap.exists and (snap.to_dict() or {}).get("lease_owner") == owner:
                tx.set(ref, {"lease_owner": None, "lease_until": None}, merge=True)

        txn(self.collection._client.transaction())

    def is_done(self, job: Job, watermark: datetime) -> bool:
        """Whether the backfill up to `watermark` finished (cached once true: it never becomes false)."""
        key = (job.key, watermark.isoformat())
        if key in self._done:
            return True
        run = self.get(job.key)
        done = bool(run and run.get("state") == RunState.DONE and run.get("end") == watermark.isoformat())
        if done:
            self._done.add(key)
        return done

    def park_unless_done(
        self, job: Job, watermark: datetime, event: SystemEvent, published_at: str | None
    ) -> bool:
        """In one transaction: True when the backfill up to `watermark` is done (the caller writes the
        event if absent); else keep the late event under `exports/{job key}/held/` for the backfill to
        finish with, and return False. `finish` takes the same lock, so no event slips between them."""
        run_ref = self.collection.document(job.key)
        held_ref = run_ref.collection("held").document(event.id)

        @fs.transactional
        def txn(tx: fs.Transaction) -> bool:
            snap = run_ref.get(transaction=tx)
            run = snap.to_dict() if snap.exists else {}
            if run.get("state") == RunState.DONE and run.get("end") == watermark.isoformat():
                return True
            tx.set(held_ref, {"event": event.to_cloudevent(), "published_at": published_at})
            return False

        return txn(self.collection._client.transaction())

    def finish(self, job_key: str, write_held: Callable[[list[dict[str, Any]]], None]) -> int:
        """Hand the held late events to `write_held`, then mark the run done once none is left (in a
        transaction that sees any event parked meanwhile). Returns how many were held."""
        run_ref = self.collection.document(job_key)
        held = run_ref.collection("held")
        count = 0

        @fs.transactional
        def close(tx: fs.Transaction) -> bool:
            if list(held.limit(1).get(transaction=tx)):
                return False
            tx.set(run_ref, {"state": RunState.DONE.value, "finished_at": datetime.now(UTC)}, merge=True)
            return True

        while True:
            docs = list(held.limit(500).stream())
            if docs:
                write_held([d.to_dict() for d in docs])
                for d in docs:
                    d.reference.delete()
                count += len(docs)
                continue
            if close(self.collection._client.transaction()):
                return count

    def forget(self, job: Job) -> None:
        """Delete the run of a deleted job (and any events it parked)."""
        self.collection._client.recursive_delete(self.collection.document(job.key))
