"""The alert outbox: each rendered notification, sent until it is delivered or dead.

`alert_outbox/{id}` holds the payload (no secret in it), its state (pending, sending, sent, dead), attempts
and a lease: sending claims the entry with a write conditional on its update time, so two instances never
send it at once (the loser finds it busy, or sent), and a crash between the receiver's acceptance and the
mark resends it with the same id. A digest's entry is also its group's `unsent` notification until it ends.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from google.api_core.exceptions import AlreadyExists, Conflict, FailedPrecondition
from google.cloud import firestore

from sysevents.jobs.model import Job

RETENTION = timedelta(days=8)


def job_fields(job: Job) -> dict[str, str]:
    return {"job_id": job.id, "aid": job.aid, "job_key": job.key, "sink": job.sink}


def outbox_collection(client: firestore.Client, prefix: str):
    return client.collection(prefix + "outbox")


class OutboxMixin:
    """The outbox half of AlertStore (sysevents.alerts.store): needs `client`, `outbox` and `groups`."""

    client: firestore.Client
    outbox: Any
    groups: Any

    def _entry(self, job: Job, kind: str, payload: dict, now: datetime, *, event_ids: list[str],
               group_id: str | None = None) -> dict[str, Any]:  # fmt: skip
        return {**job_fields(job), "kind": kind, "state": "pending", "payload": payload,
                "event_ids": event_ids[:100], "group_id": group_id, "created_at": now, "attempts": 0,
                "lease_until": None, "last_error": None, "sent_at": None, "expire_at": now + RETENTION}  # fmt: skip

    def put(self, job: Job, oid: str, kind: str, payload: dict, now: datetime, event_ids: list[str]) -> bool:
        """Create an outbox entry (a resolution); False when it exists already (a redelivery)."""
        try:
            self.outbox.document(oid).create(self._entry(job, kind, payload, now, event_ids=event_ids))
        except (AlreadyExists, Conflict):
            return False
        return True

    def claim(self, oid: str, now: datetime, lease: timedelta) -> tuple[str, dict | None]:
        """("claimed", entry) to send it now; or "missing", "sent", "dead", "busy" (another instance holds
        its lease). Compare-and-set on the entry's update time: claimants never wait on each other's locks."""
        ref = self.outbox.document(oid)
        while True:
            snap = ref.get()
            if not snap.exists:
                return "missing", None
            e = snap.to_dict()
            if e["state"] in ("sent", "dead"):
                return e["state"], e
            if e.get("lease_until") and e["lease_until"] > now:
                return "busy", e
            change = {"state": "sending", "lease_until": now + lease, "attempts": e["attempts"] + 1}
            try:
                ref.update(change, option=self.client.write_option(last_update_time=snap.update_time))
            except FailedPrecondition:
                continue
            return "claimed", {**e, **change}

    def settle(self, oid: str, entry: dict, state: str, error: str | None = None) -> None:
        """After a send: "sent", "dead" (the group's next notification may go), or "pending" (retried)."""
        batch = self.client.batch()
        change: dict[str, Any] = {"state": state, "lease_until": None, "last_error": error}
        if state == "sent":
            change["sent_at"] = firestore.SERVER_TIMESTAMP
        batch.update(self.outbox.document(oid), change)
        if state in ("sent", "dead") and entry.get("group_id"):
            batch.set(self.groups.document(entry["group_id"]), {"unsent": None}, merge=True)
        batch.commit()

    def mark_dead(self, oid: str, reason: str) -> dict[str, Any] | None:
        snap = self.outbox.document(oid).get()
        if not snap.exists:
            return None
        entry = snap.to_dict()
        if entry["state"] != "dead":
            self.settle(oid, entry, "dead", reason)
        return {**entry, "state": "dead", "last_error": reason}
