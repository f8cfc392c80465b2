"""Failed delivery attempts per (job, event), kept in Firestore.

Pub/Sub tells a push endpoint which attempt it is receiving (`deliveryAttempt`) in production, but
not in the emulator, and its own dead-lettering keeps no reason. Counting failures here lets a sink
dead-letter a message itself on its last attempt, with the reason, in both places. Only failures are
written: a delivery that succeeds first time costs no write.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from google.cloud import firestore

RETENTION = timedelta(days=7)  # a Firestore TTL policy on `expire_at` removes old records (terraform)


class AttemptLog:
    def __init__(self, client: firestore.Client, collection: str = "delivery_attempts"):
        self.client = client
        self.collection = client.collection(collection)

    @staticmethod
    def key(job_key: str, event_id: str) -> str:
        return hashlib.sha256(f"{job_key}\0{event_id}".encode()).hexdigest()[:40]

    def record_failure(
        self, job_key: str, event_id: str, reason: str, status: int | None, pubsub_attempt: int = 1
    ) -> int:
        """Count one failed attempt of (job key, event); returns how many attempts have failed so far."""
        ref = self.collection.document(self.key(job_key, event_id))
        now = datetime.now(UTC)

        @firestore.transactional
        def bump(tx: firestore.Transaction) -> int:
            snap = ref.get(transaction=tx)
            count = max((snap.get("failures") if snap.exists else 0) + 1, pubsub_attempt)
            tx.set(
                ref,
                {
                    "job": job_key,
                    "event_id": event_id,
                    "failures": count,
                    "last_reason": reason,
                    "last_status": status,
                    "updated_at": now,
                    "expire_at": now + RETENTION,
                },
            )
            return count

        return bump(self.client.transaction())

    def failures(self, job_key: str, event_id: str) -> int:
        snap = self.collection.document(self.key(job_key, event_id)).get()
        return snap.get("failures") if snap.exists else 0

    def reset(self, job_key: str, event_id: str) -> None:
        """Forget the failures of a delivery (a replay starts counting afresh)."""
        self.collection.document(self.key(job_key, event_id)).delete()
