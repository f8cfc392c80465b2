"""Per-job delivery accounting in Firestore, the same for every workflow: attempt log, counters, dead
letters, template versions and the failure streak.

Layout, under `job_state/{job key}` (the key is account, job id and generation: a job deleted and created
again starts from nothing, and nothing of one account is reachable from another's):
- `attempts/{auto id}`: one record per attempt on the destination (time, attempt number, outcome, status,
  latency, error, event id, delivery id), removed by a TTL policy on `expire_at` (bounded retention).
- `counters/{0..SHARDS-1}`: sharded counters (a document takes about one sustained write per second;
  shards spread a busy job's writes): received, delivered, accepted, filtered, dead_lettered,
  failed_attempts, delayed (waiting in the delay queue: for a retry, a hold or a rate-limit slot), and
  `last_delivered_at`.
- `dead_letters/{delivery id}`: each dead-lettered delivery (message, reason, attempts), for listing and
  replay; same TTL.
- `templates/{version}`: the template each job version used, written once per version per instance,
  so a replay can choose an older version.
- the `job_state/{key}` document itself: the failure streak (`streak_failures`, `streak_since`).

The counters reconcile: received = delivered + accepted + filtered + dead_lettered + pending. "received"
counts deliveries the sink has seen at least once; "pending" ones have not ended yet: most of them are
"delayed" (in the delay queue, for a retry, a hold or a rate-limit slot), the rest in flight (messages
still in the Pub/Sub backlog are not counted yet: that is the subscription's `num_undelivered_messages`). "accepted" counts deliveries taken into the sink's own
durable state to be sent later (an email digest, a backfill's hand-over). "filtered" counts deliveries
skipped on purpose: the job was paused, deleted or re-created after the event matched, or its policy
dropped the event (silence, mute window). A redelivery of an already delivered message (Pub/Sub is
at-least-once) counts twice; it is rare and shows as delivered > what the receiver kept.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from ..jobs import Job

SHARDS = 8
COLLECTION = "job_state"
COUNTERS = ("received", "delivered", "accepted", "filtered", "dead_lettered", "failed_attempts", "delayed")
TERMINAL = {
    "delivered": "delivered",
    "accepted": "accepted",
    "filtered": "filtered",
    "dead_lettered": "dead_lettered",
}
SUBCOLLECTIONS = ("attempts", "counters", "dead_letters", "templates")


class DeliveryLog:
    def __init__(self, client: firestore.Client, collection: str = COLLECTION, retention_days: int = 7):
        self.client = client
        self.collection = client.collection(collection)
        self.retention = timedelta(days=retention_days)
        self._templates_seen: set[tuple[str, int]] = set()

    def doc(self, job: Job):
        return self.collection.document(job.key)

    @staticmethod
    def _shard(event_id: str) -> str:
        return str(int(hashlib.sha256(event_id.encode()).hexdigest()[:8], 16) % SHARDS)

    # -- writes per delivery ----------------------------------------------------------------------------
    def record(
        self,
        job: Job,
        *,
        event_id: str,
        delivery_id: str,
        attempt: int,
        outcome: str,
        first_seen: bool,
        status: int | None = None,
        latency_ms: float | None = None,
        error: str | None = None,
        log_attempt: bool = True,
        delayed: int = 0,
    ) -> None:
        """One attempt's record and the counters it moves, in one batch (two document writes; one when
        `log_attempt` is False: nothing reached the destination). `delayed` moves the count of deliveries
        waiting in the delay queue (+1 put away, -1 released)."""
        now = datetime.now(UTC)
        doc = self.doc(job)
        batch = self.client.batch()
        if log_attempt:
            batch.set(
                doc.collection("attempts").document(),
                {
                    "at": now,
                    "attempt": attempt,
                    "outcome": outcome,
                    "status": status,
                    "latency_ms": latency_ms,
                    "error": None if outcome == "delivered" else (error or "")[:1000],
                    "event_id": event_id,
                    "webhook_id": delivery_id,
                    "expire_at": now + self.retention,
                },
            )
        inc: dict[str, Any] = {}
        if first_seen:
            inc["received"] = firestore.Increment(1)
        if outcome in TERMINAL:
            inc[TERMINAL[outcome]] = firestore.Increment(1)
        elif outcome != "waiting":
            inc["failed_attempts"] = firestore.Increment(1)
        if delayed:
            inc["delayed"] = firestore.Increment(delayed)
        if outcome == "delivered":
            inc["last_delivered_at"] = now
        batch.set(doc.collection("counters").document(self._shard(event_id)), inc, merge=True)
        batch.commit()

    def dead_letter(self, job: Job, delivery_id: str, data: bytes, attributes: dict[str, str]) -> None:
        now = datetime.now(UTC)
        self.doc(job).collection("dead_letters").document(delivery_id).set(
            {
                "data": data.decode(),
                "attributes": attributes,
                "reason": attributes.get("reason", ""),
                "attempts": int(attributes.get("attempts") or 0),
                "event_id": attributes.get("event_id", ""),
                "dead_lettered_at": now,
                "expire_at": now + self.retention,
            }
        )

    def remember_template(self, job: Job, template: str | None) -> None:
        """Keep the template of this job version (once per version per instance)."""
        if (job.key, job.version) in self._templates_seen:
            return
        self.doc(job).collection("templates").document(str(job.version)).set(
            {"version": job.version, "json_template": template, "saved_at": datetime.now(UTC)}
        )
        self._templates_seen.add((job.key, job.version))

    def template(self, job: Job, version: int) -> tuple[bool, str | None]:
        """(found, template) of a job version the sink has delivered with."""
        snap = self.doc(job).collection("templates").document(str(version)).get()
        return (True, snap.get("json_template")) if snap.exists else (False, None)

    # -- failure streak (auto-disable) --------------------------------------------------------------------
    def streak_failure(self, job: Job) -> tuple[int, datetime]:
        """Count one more consecutive failure; returns (failures, since). A delivery recorded after the
        streak began resets it (successes write no streak field: they cost nothing extra)."""
        ref = self.doc(job)
        now = datetime.now(UTC)
        last_ok = self.last_delivered_at(job)

        @firestore.transactional
        def bump(tx: firestore.Transaction) -> tuple[int, datetime]:
            snap = ref.get(transaction=tx)
            doc = snap.to_dict() if snap.exists else {}
            count, since = doc.get("streak_failures", 0), doc.get("streak_since")
            if since is None or (last_ok is not None and last_ok >= since):
                count, since = 0, now
            count += 1
            tx.set(ref, {"streak_failures": count, "streak_since": since}, merge=True)
            return count, since

        return bump(self.client.transaction())

    def reset_streak(self, job: Job) -> None:
        self.doc(job).set({"streak_failures": 0, "streak_since": None}, merge=True)

    # -- reads (admin API) ----------------------------------------------------------------------------
    def last_delivered_at(self, job: Job) -> datetime | None:
        found = [s.to_dict().get("last_delivered_at") for s in self._counter_docs(job)]
        found = [t for t in found if t is not None]
        return max(found) if found else None

    def _counter_docs(self, job: Job) -> list:
        return list(self.doc(job).collection("counters").stream())

    def stats(self, job: Job) -> dict[str, Any]:
        totals = dict.fromkeys(COUNTERS, 0)
        last = None
        for snap in self._counter_docs(job):
            doc = snap.to_dict()
            for k in COUNTERS:
                totals[k] += int(doc.get(k) or 0)
            t = doc.get("last_delivered_at")
            last = t if t and (last is None or t > last) else last
        totals["pending"] = totals["received"] - sum(totals[k] for k in TERMINAL.values())
        state = self.doc(job).get()
        doc = state.to_dict() if state.exists else {}
        since = doc.get("streak_since")
        failing = bool(since and doc.get("streak_failures")) and not (last is not None and last >= since)
        totals["last_delivered_at"] = last.isoformat() if last else None
        totals["consecutive_failures"] = doc.get("streak_failures", 0) if failing else 0
        totals["failing_since"] = since.isoformat() if failing else None
        return totals

    def attempts(self, job: Job, limit: int = 50, before: datetime | None = None) -> list[dict[str, Any]]:
        """Newest first."""
        q = self.doc(job).collection("attempts").order_by("at", direction=firestore.Query.DESCENDING)
        if before is not None:
            q = q.where(filter=FieldFilter("at", "<", before))
        out = []
        for snap in q.limit(limit).stream():
            doc = snap.to_dict()
            doc.pop("expire_at", None)
            doc["at"] = doc["at"].isoformat()
            out.append(doc)
        return out

    def dead_letters(
        self, job: Job, since: datetime | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        q = self.doc(job).collection("dead_letters").order_by("dead_lettered_at")
        if since is not None:
            q = q.where(filter=FieldFilter("dead_lettered_at", ">=", since))
        return [{"webhook_id": s.id, **s.to_dict()} for s in q.limit(limit).stream()]

    def forget_dead_letter(self, job: Job, delivery_id: str) -> None:
        self.doc(job).collection("dead_letters").document(delivery_id).delete()

    def forget(self, job: Job) -> int:
        """Delete everything kept for this job generation (the job was deleted); returns documents deleted."""
        return self.client.recursive_delete(self.doc(job))
