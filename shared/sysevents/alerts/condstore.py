"""Condition state in Firestore (sysevents.alerts.watch decides; this reads and writes).

- `counts/{hash(job, event)}`: one counted event of a threshold: its condition group (`cond_id`), when it
  happened (`at`) and its summary. Created if absent, so a redelivered event (a sink killed mid-way,
  Pub/Sub's at-least-once) is counted once; expired by TTL after its window.
- `conditions/{hash(job, group)}`: a condition group's state: `kind`, `key` (the group's field values),
  `firing` and `since`, `last_seen` (absence: the newest expected event), `check_at` (when its timer is
  due: the deadline, or when a firing threshold would fall below its count), `seq` (notifications made)
  and `unsent` (the outbox id of a notification made and not sent yet: whoever comes next sends it).
Each change of a condition's state is one transaction on its document that also creates the
notification's outbox entry, so a notification is made exactly once however often the decision runs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from google.api_core.exceptions import AlreadyExists, Conflict
from google.cloud import firestore

from sysevents.alerts.ids import hash_of, summary
from sysevents.alerts.outbox import job_fields
from sysevents.alerts.store import TX_ATTEMPTS, AlertStore, _run
from sysevents.jobs.model import Job

COUNT_MARGIN = timedelta(days=1)
"""How long a counted event is kept beyond its window (TTL), so a late redelivery still finds it."""
STATE_RETENTION = timedelta(days=30)
Change = Callable[[dict[str, Any] | None], tuple[dict[str, Any] | None, tuple[str, str, dict] | None]]
"""(state or None) -> (new state or None to leave it, (outbox id, kind, payload) to create or None)."""


def cond_id_of(job: Job, key: dict[str, str]) -> str:
    import json

    return hash_of(job.key, "condition", json.dumps(key, sort_keys=True))


class ConditionStore:
    def __init__(self, alerts: AlertStore):
        self.alerts = alerts
        self.client = alerts.client
        prefix = alerts.settings.alerts_collection_prefix
        self.counts = self.client.collection(prefix + "counts")
        self.conditions = self.client.collection(prefix + "conditions")

    # -- threshold counts --------------------------------------------------------------------------------
    def count_event(self, job: Job, cond_id: str, ce: dict, at: datetime, within: timedelta) -> bool:
        """Count the event once (False: it was counted already)."""
        doc = {**job_fields(job), "cond_id": cond_id, "at": at, "event": summary(ce),
               "expire_at": at + within + COUNT_MARGIN}  # fmt: skip
        try:
            self.counts.document(hash_of(job.key, ce["id"])).create(doc)
        except (AlreadyExists, Conflict):
            return False
        return True

    def _window(self, cond_id: str, now: datetime, within: timedelta):
        return (
            self.counts.where(filter=firestore.FieldFilter("cond_id", "==", cond_id))
            .where(filter=firestore.FieldFilter("at", ">", now - within))
            .where(filter=firestore.FieldFilter("at", "<=", now))
        )

    def count_in(self, cond_id: str, now: datetime, within: timedelta) -> int:
        """Events counted in the window `(now - within, now]` (one aggregation query)."""
        return int(self._window(cond_id, now, within).count().get()[0][0].value)

    def newest(self, cond_id: str, now: datetime, within: timedelta, n: int) -> list[dict[str, Any]]:
        """The newest `n` counted events in the window, oldest first."""
        query = self._window(cond_id, now, within).order_by("at", direction=firestore.Query.DESCENDING)
        return sorted(
            (s.to_dict() for s in query.limit(n).stream()), key=lambda d: (d["at"], d["event"]["id"])
        )

    # -- condition state ----------------------------------------------------------------------------------
    def state(self, cond_id: str) -> dict[str, Any] | None:
        snap = self.conditions.document(cond_id).get()
        return snap.to_dict() if snap.exists else None

    def create_state(self, job: Job, cond_id: str, doc: dict[str, Any], now: datetime) -> bool:
        """The condition's first state (False: it exists already)."""
        try:
            self.conditions.document(cond_id).create(self._stamped(job, doc, now))
        except (AlreadyExists, Conflict):
            return False
        return True

    def _stamped(self, job: Job, doc: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {**job_fields(job), **doc, "updated_at": now, "expire_at": now + STATE_RETENTION}

    def change(self, job: Job, cond_id: str, now: datetime, change: Change) -> dict[str, Any] | None:
        """Apply `change` to the condition's state in one transaction, with the outbox entry it makes;
        returns the state as written (or as found, when `change` left it)."""
        ref = self.conditions.document(cond_id)

        @firestore.transactional
        def tx(t) -> dict[str, Any] | None:
            snap = ref.get(transaction=t)
            old = snap.to_dict() if snap.exists else None
            new, made = change(old)
            if new is None:
                return old
            if made is not None:
                oid, kind, payload = made
                entry = self.alerts.outbox_entry(job, kind, payload, now, event_ids=[])
                t.create(self.alerts.outbox.document(oid), entry)
                new = {**new, "unsent": oid}
            t.set(ref, self._stamped(job, new, now))
            return new

        return _run(
            tx, self.client.transaction(max_attempts=TX_ATTEMPTS), "the condition is changing elsewhere"
        )

    def sent(self, cond_id: str, oid: str) -> None:
        """The notification `oid` ended (sent or dead): nothing of the condition's is unsent any more."""
        ref = self.conditions.document(cond_id)

        @firestore.transactional
        def tx(t) -> None:
            snap = ref.get(transaction=t)
            if snap.exists and (snap.to_dict() or {}).get("unsent") == oid:
                t.update(ref, {"unsent": None})

        _run(tx, self.client.transaction(max_attempts=TX_ATTEMPTS), "the condition is changing elsewhere")

    def due(self, before: datetime, sink: str, limit: int = 500) -> list[dict[str, Any]]:
        """Conditions of `sink` whose timer was due before `before` (the sweep's search for lost timers)."""
        query = (
            self.conditions.where(filter=firestore.FieldFilter("check_at", "<=", before))
            .order_by("check_at")
            .limit(limit)
        )
        return [{**s.to_dict(), "cond_id": s.id} for s in query.stream() if s.to_dict().get("sink") == sink]

    def of_job(self, job: Job, limit: int = 20) -> list[dict[str, Any]]:
        """The job's condition groups (for its view), firing first."""
        query = self.conditions.where(filter=firestore.FieldFilter("job_key", "==", job.key)).limit(limit)
        docs = [s.to_dict() for s in query.stream()]
        return sorted(docs, key=lambda d: (not d.get("firing"), str(d.get("key"))))
