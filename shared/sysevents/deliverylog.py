"""Per-job webhook accounting in Firestore: the attempt log, counters, dead letters, template versions.

Layout, under `webhook_jobs/{job_id}`:
- `attempts/{auto id}`: one record per attempt on the receiver (time, attempt number, outcome, status,
  latency, error, event id, webhook-id), removed by a TTL policy on `expire_at` (bounded retention).
- `counters/{0..SHARDS-1}`: sharded counters (a document takes about one sustained write per second;
  shards spread a busy job's writes): received, delivered, filtered, dead_lettered, failed_attempts,
  and `last_delivered_at`.
- `dead_letters/{webhook_id}`: each dead-lettered delivery (message, reason, attempts), for listing and
  replay; same TTL.
- `templates/{version}`: the template each job version used, written once per version per instance,
  so a replay can choose an older version.
- the job document itself: the failure streak (`streak_failures`, `streak_since`) for auto-disable.

The counters reconcile: received = delivered + filtered + dead_lettered + pending. "received" counts
deliveries the sink has seen at least once; "pending" ones have failed at least once and are waiting for
a retry (messages still in the Pub/Sub backlog are not counted yet: that is the subscription's
`num_undelivered_messages`). "filtered" counts deliveries skipped because their job was paused or deleted
after the event matched. A redelivery of an already delivered message (Pub/Sub is at-least-once) counts
twice; it is rare and shows as delivered > what the receiver kept.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

SHARDS = 8
COUNTERS = ("received", "delivered", "filtered", "dead_lettered", "failed_attempts")
TERMINAL = {"delivered": "delivered", "filtered": "filtered", "dead_lettered": "dead_lettered"}


class DeliveryLog:
    def __init__(self, client: firestore.Client, collection: str = "webhook_jobs", retention_days: int = 7):
        self.client = client
        self.collection = client.collection(collection)
        self.retention = timedelta(days=retention_days)
        self._templates_seen: set[tuple[str, int]] = set()

    def _job(self, job_id: str):
        return self.collection.document(job_id)

    @staticmethod
    def _shard(event_id: str) -> str:
        return str(int(hashlib.sha256(event_id.encode()).hexdigest()[:8], 16) % SHARDS)

    # -- writes per delivery ----------------------------------------------------------------------------
    def record(
        self,
        job_id: str,
        *,
        event_id: str,
        webhook_id: str,
        attempt: int,
        outcome: str,
        first_seen: bool,
        status: int | None = None,
        latency_ms: float | None = None,
        error: str | None = None,
        log_attempt: bool = True,
    ) -> None:
        """One attempt's record and the counters it moves, in one batch (two document writes; one when
        `log_attempt` is False, e.g. filtered deliveries that never reached the receiver)."""
        now = datetime.now(UTC)
        job = self._job(job_id)
        batch = self.client.batch()
        if log_attempt:
            batch.set(
                job.collection("attempts").document(),
                {
                    "at": now,
                    "attempt": attempt,
                    "outcome": outcome,
                    "status": status,
                    "latency_ms": latency_ms,
                    "error": None if outcome == "delivered" else (error or "")[:1000],
                    "event_id": event_id,
                    "webhook_id": webhook_id,
                    "expire_at": now + self.retention,
                },
            )
        inc: dict[str, Any] = {}
        if first_seen:
            inc["received"] = firestore.Increment(1)
        if outcome in TERMINAL:
            inc[TERMINAL[outcome]] = firestore.Increment(1)
        else:
            inc["failed_attempts"] = firestore.Increment(1)
        if outcome == "delivered":
            inc["last_delivered_at"] = now
        batch.set(job.collection("counters").document(self._shard(event_id)), inc, merge=True)
        batch.commit()

    def dead_letter(self, job_id: str, webhook_id: str, data: bytes, attributes: dict[str, str]) -> None:
        now = datetime.now(UTC)
        self._job(job_id).collection("dead_letters").document(webhook_id).set(
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

    def remember_template(self, job_id: str, version: int, template: str | None) -> None:
        """Keep the template of this job version (once per version per instance)."""
        if (job_id, version) in self._templates_seen:
            return
        self._job(job_id).collection("templates").document(str(version)).set(
            {"version": version, "json_template": template, "saved_at": datetime.now(UTC)}
        )
        self._templates_seen.add((job_id, version))

    def template(self, job_id: str, version: int) -> tuple[bool, str | None]:
        """(found, template) of a job version the sink has delivered with."""
        snap = self._job(job_id).collection("templates").document(str(version)).get()
        return (True, snap.get("json_template")) if snap.exists else (False, None)

    # -- failure streak (auto-disable) --------------------------------------------------------------------
    def streak_failure(self, job_id: str) -> tuple[int, datetime]:
        """Count one more consecutive failure; returns (failures, since). A delivery recorded after the
        streak began resets it (successes write no streak field: they cost nothing extra)."""
        ref = self._job(job_id)
        now = datetime.now(UTC)
        last_ok = self.last_delivered_at(job_id)

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

    def reset_streak(self, job_id: str) -> None:
        self._job(job_id).set({"streak_failures": 0, "streak_since": None}, merge=True)

    # -- reads (admin API) ----------------------------------------------------------------------------
    def last_delivered_at(self, job_id: str) -> datetime | None:
        found = [s.to_dict().get("last_delivered_at") for s in self._counter_docs(job_id)]
        found = [t for t in found if t is not None]
        return max(found) if found else None

    def _counter_docs(self, job_id: str) -> list:
        return [s for s in self._job(job_id).collection("counters").stream()]

    def stats(self, job_id: str) -> dict[str, Any]:
        totals = dict.fromkeys(COUNTERS, 0)
        last = None
        for snap in self._counter_docs(job_id):
            doc = snap.to_dict()
            for k in COUNTERS:
                totals[k] += int(doc.get(k) or 0)
            t = doc.get("last_delivered_at")
            last = t if t and (last is None or t > last) else last
        totals["pending"] = (
            totals["received"] - totals["delivered"] - totals["filtered"] - totals["dead_lettered"]
        )
        streak = self._job(job_id).get()
        doc = streak.to_dict() if streak.exists else {}
        totals["last_delivered_at"] = last.isoformat() if last else None
        totals["consecutive_failures"] = doc.get("streak_failures", 0)
        since = doc.get("streak_since")
        totals["failing_since"] = since.isoformat() if since and totals["consecutive_failures"] else None
        return totals

    def attempts(self, job_id: str, limit: int = 50, before: datetime | None = None) -> list[dict[str, Any]]:
        """Newest first."""
        q = self._job(job_id).collection("attempts").order_by("at", direction=firestore.Query.DESCENDING)
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
        self, job_id: str, since: datetime | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        q = self._job(job_id).collection("dead_letters").order_by("dead_lettered_at")
        if since is not None:
            q = q.where(filter=FieldFilter("dead_lettered_at", ">=", since))
        return [{"webhook_id": s.id, **s.to_dict()} for s in q.limit(limit).stream()]

    def forget_dead_letter(self, job_id: str, webhook_id: str) -> None:
        self._job(job_id).collection("dead_letters").document(webhook_id).delete()


def replay(
    rt, job, *, since: datetime | None = None, template_version: int | None = None, limit: int = 1000
) -> list[str]:
    """Publish the job's dead-lettered deliveries (all, or dead-lettered since a time) to its sink topic
    again, rendered with the job's current template or with `template_version`. Returns the webhook-ids
    replayed; each leaves the dead-letter list (it is back in the pipeline, and back there if it fails)."""
    from .functions.webhook import REPLAY_TEMPLATE_ATTR

    dlog = DeliveryLog(rt.firestore, retention_days=rt.settings.webhook_log_retention_days)
    topic = rt.topology.sinks[job.sink].topic
    done = []
    for item in dlog.dead_letters(job.id, since=since, limit=limit):
        attrs = {
            k: v
            for k, v in (item.get("attributes") or {}).items()
            if k in ("job_id", "job_version", "event_id", "aid")
        }
        attrs["replay"] = "1"
        if template_version is not None:
            attrs[REPLAY_TEMPLATE_ATTR] = str(template_version)
        rt.attempts.reset(job.id, item.get("event_id") or attrs.get("event_id", ""))
        rt.publisher.publish_all([(topic, item["data"].encode(), attrs)])
        dlog.forget_dead_letter(job.id, item["webhook_id"])
        done.append(item["webhook_id"])
    return done
