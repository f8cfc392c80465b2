"""Alert state in Firestore, for every channel: each (event, job) accepted once, grouped, rate-limited, and
each notification rendered once into an outbox entry that is sent until it is delivered or dead.

Collections (prefix from settings, default `alert_`):
- `seen/{hash(job, event)}`: the event was accepted for the job (and what became of it). Created
  create-if-absent in the same atomic write as the effect, so a Pub/Sub redelivery finds it and changes
  nothing.
- `pending/{hash(job, event)}`: one accepted event waiting for its group's notification (its group, a
  summary of the event, its alert key, when it happened, and `due_at`: when its group was due as known at
  acceptance). Each event is its own document, so concurrent events of one group never write the same
  document: accepting needs no hot document and scales with instances. The flush deletes them in the
  transaction that records the notification.
- `groups/{hash(job, group key)}`: a group's timing state (`last_sent_at`, `last_event_at`, `notified`,
  `seq`) and its `unsent` notification, written by the flush of that group and when that notification
  ends.
- `outbox/{id}`: one notification, rendered (`payload`, no secret in it). Sending claims it with a lease
  (a write conditional on its update time), so two instances never send it at once; a crash between the
  receiver's acceptance and the mark resends it with the same id (webhook-id, Message-ID).
- `rates/{job}`: the job's notification count in the current fixed window (only with a rate limit).
- `firing/{hash(job, subject)}`: an alert notified and not resolved yet (`resolve_on`), with its group.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from google.api_core.exceptions import AlreadyExists, Conflict, NotFound
from google.cloud import firestore

from sysevents.alerts.outbox import RETENTION, OutboxMixin, job_fields, outbox_collection
from sysevents.alerts.policy import Grouping, alert_key
from sysevents.alerts.timing import group_due, is_repeat, restarts
from sysevents.config import Settings
from sysevents.jobs.model import Job

OVERFLOW = "__rate_limited__"
MAX_FIELD_CHARS = 1000
MAX_FIELDS = 40
TX_ATTEMPTS = 25
BATCH_ATTEMPTS = 8
FLUSH_CAP = 400
"""Most pending events one notification takes (one transaction writes each of them); more wait for the next."""
# `seen`, `outbox` and `firing` documents carry `expire_at` (Firestore TTL, terraform/firestore.tf), kept
# longer than Pub/Sub keeps a message (7 days: RETENTION), so a redelivery always finds its `seen` record.
FIRING_RETENTION = timedelta(days=30)


class Decision(StrEnum):
    NOTIFY = "notify"  # an outbox entry to send now
    GROUPED = "grouped"  # added to a group; its notification follows
    HELD = "held"  # over the rate limit; in the job's "held back" digest
    DROPPED = "dropped"  # silenced or muted


@dataclass(frozen=True)
class Accepted:
    decision: Decision
    reason: str
    outbox_id: str | None = None
    group_id: str | None = None
    due: datetime | None = None
    duplicate: bool = False


@dataclass(frozen=True)
class Flushed:
    """What a flush did: `outbox_id` of the notification to send (a new one, or the group's unsent one);
    `due` when nothing is due yet; `dead_reason` when its template failed (recorded dead at once)."""

    outbox_id: str | None
    due: datetime | None = None
    dead_reason: str | None = None
    kind: str = "digest"


class Contended(Exception):
    """Every attempt of a write lost to concurrent writers of the same documents (other deliveries of the
    job, other timers of the group): nothing was written. Not a failure: the same work, again shortly."""


def _run(tx: Callable, transaction, busy: str):
    """Run a transactional function; Contended when every attempt was aborted by concurrent transactions
    (the client then raises ValueError from the last Aborted, a Conflict)."""
    try:
        return tx(transaction)
    except ValueError as err:
        if not isinstance(err.__cause__, Conflict):
            raise
        raise Contended(f"{busy}: {err}") from err


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


_job_fields = job_fields


def _trim(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_FIELD_CHARS else value[: MAX_FIELD_CHARS - 3] + "..."
    if value is None or isinstance(value, bool | int | float):
        return value
    return _trim(json.dumps(value, ensure_ascii=False, default=str))


def summary(ce: dict[str, Any]) -> dict[str, Any]:
    """The event as kept while pending: the envelope, data fields clipped, so it fits a Firestore document."""
    data = dict(list((ce.get("data") or {}).items())[:MAX_FIELDS])
    return {**ce, "data": {k: _trim(v) for k, v in data.items()}}


def group_id_of(job: Job, key: dict[str, str]) -> str:
    return _hash(job.key, json.dumps(key, sort_keys=True))


def overflow_id(job: Job) -> str:
    return _hash(job.key, OVERFLOW)


def subject_of(ce: dict[str, Any]) -> str:
    d = ce.get("data") or {}
    return f"{d.get('subject_type')}/{d.get('subject_id')}"


class AlertStore(OutboxMixin):
    def __init__(self, client: firestore.Client, settings: Settings):
        self.client = client
        self.settings = settings
        prefix = settings.alerts_collection_prefix
        self.groups = client.collection(prefix + "groups")
        self.pending = client.collection(prefix + "pending")
        self.outbox = outbox_collection(client, prefix)
        self.seen = client.collection(prefix + "seen")
        self.rates = client.collection(prefix + "rates")
        self.firing = client.collection(prefix + "firing")

    # -- accepting events ----------------------------------------------------------------------------------
    def _duplicate(self, seen_ref) -> Accepted | None:
        """The earlier acceptance of this event, or None when there is none (nothing was written)."""
        snap = seen_ref.get()
        if snap.exists:
            doc = snap.to_dict()
            decision = Decision(doc["decision"])
            return Accepted(decision, f"already accepted ({decision.value})", outbox_id=doc.get("outbox_id"),
                            group_id=doc.get("group_id"), duplicate=True)  # fmt: skip
        return None

    def _commit_once(self, seen_ref, writes: Callable[[Any], None]) -> Accepted | None:
        """Commit `writes` (creates, with the `seen` record) in one batch. None: committed. A batch refused
        because one of its documents exists is a repeat: the earlier acceptance. A batch aborted by
        contention (Conflict: nothing was written) is committed again; after BATCH_ATTEMPTS, Contended, so the
        delivery is tried again rather than taken for a repeat."""
        attempt = 0
        while True:
            batch = self.client.batch()
            writes(batch)
            try:
                batch.commit()
                return None
            except (AlreadyExists, Conflict) as err:
                earlier = self._duplicate(seen_ref)
                if earlier is not None:
                    return earlier
                if isinstance(err, AlreadyExists):  # its pending event exists (its seen record expired)
                    return Accepted(Decision.GROUPED, "already accepted (pending)", duplicate=True)
                attempt += 1
                if attempt == BATCH_ATTEMPTS:
                    raise Contended(
                        f"accepting the event lost all {attempt} attempts to concurrent writes"
                    ) from err
                time.sleep(min(0.5, 0.01 * 2 ** (attempt - 1)) * (0.5 + random.random()))  # noqa: S311 - jitter

    def _seen(self, job: Job, ce: dict, now: datetime, decision: str, **extra: Any) -> dict[str, Any]:
        return {**_job_fields(job), "event_id": ce["id"], "at": now, "decision": decision,
                "expire_at": now + RETENTION, **extra}  # fmt: skip

    def _pending(self, job: Job, group_id: str, key: dict, ce: dict, alert: str | None, at: datetime,
                 due: datetime) -> dict[str, Any]:  # fmt: skip
        return {**_job_fields(job), "group_id": group_id, "key": key, "event": summary(ce), "alert": alert,
                "repeat": False, "at": at, "due_at": due}  # fmt: skip

    def accept_single(
        self, job: Job, ce: dict, now: datetime, oid: str, payload: dict, kind: str = "single"
    ) -> Accepted:
        """An ungrouped alert: its rendered notification into the outbox (unless the job's rate limit is
        reached: then into the job's held-back digest, due when the window ends)."""
        seen_ref = self.seen.document(_hash(job.key, ce["id"]))
        entry = self._entry(job, kind, payload, now, event_ids=[ce["id"]])
        limit = job.config.limit()
        if limit is None:

            def writes(batch) -> None:
                batch.create(seen_ref, self._seen(job, ce, now, "notify", outbox_id=oid))
                batch.create(self.outbox.document(oid), entry)

            return self._commit_once(seen_ref, writes) or Accepted(Decision.NOTIFY, "notify", outbox_id=oid)
        held = overflow_id(job)
        rate_ref = self.rates.document(job.key)

        @firestore.transactional
        def tx(t) -> Accepted:
            if seen_ref.get(transaction=t).exists:
                return Accepted(Decision.GROUPED, "already accepted", duplicate=True)
            allowed, rate_write = self._rate(t, rate_ref, job, now)
            if allowed:
                t.set(rate_ref, rate_write)
                t.create(self.outbox.document(oid), entry)
                t.create(seen_ref, self._seen(job, ce, now, "notify", outbox_id=oid))
                return Accepted(Decision.NOTIFY, "notify", outbox_id=oid)
            _, window_end = limit.window(now)
            t.create(
                self.pending.document(seen_ref.id), self._pending(job, held, {}, ce, None, now, window_end)
            )
            t.create(seen_ref, self._seen(job, ce, now, "held", group_id=held))
            return Accepted(Decision.HELD, f"rate limit reached; held until {window_end.isoformat()}",
                            group_id=held, due=window_end)  # fmt: skip

        return _run(tx, self.client.transaction(max_attempts=TX_ATTEMPTS), "the job's rate limit is busy")

    def accept_grouped(self, job: Job, grouping: Grouping, ce: dict, at: datetime, now: datetime) -> Accepted:
        """One atomic batch: the `seen` record and the pending event (both create-if-absent). The group
        document is only read, for the due time; the flush decides for itself."""
        from sysevents.alerts.timing import event_due

        seen_ref = self.seen.document(_hash(job.key, ce["id"]))
        gkey = grouping.key(ce["data"])
        group_id = group_id_of(job, gkey)
        alert = _hash(alert_key(ce["data"]))
        snap = self.groups.document(group_id).get()
        due = event_due(
            snap.to_dict() if snap.exists else None, grouping, alert, at, self.settings.time_scale
        )

        def writes(batch) -> None:
            batch.create(seen_ref, self._seen(job, ce, now, "grouped", group_id=group_id))
            batch.create(
                self.pending.document(seen_ref.id), self._pending(job, group_id, gkey, ce, alert, at, due)
            )

        earlier = self._commit_once(seen_ref, writes)
        if earlier is not None:
            return earlier
        return Accepted(
            Decision.GROUPED, f"grouped; notification due {due.isoformat()}", group_id=group_id, due=due
        )

    # -- rate limit ------------------------------------------------------------------------------------------
    def _rate(self, t, rate_ref, job: Job, now: datetime) -> tuple[bool, dict | None]:
        limit = job.config.limit()
        if limit is None:
            return True, None
        start, _ = limit.window(now)
        snap = rate_ref.get(transaction=t)
        doc = snap.to_dict() if snap.exists else {}
        count = doc.get("count", 0) if doc.get("window_start") == start else 0
        if count >= limit.max_notifications:
            return False, None
        return True, {"window_start": start, "count": count + 1, "max": limit.max_notifications}

    # -- flushing a group into one notification ------------------------------------------------------------
    def flush_group(
        self, job: Job, group_id: str, now: datetime, render: Callable[[list[dict], str, str], dict]
    ) -> Flushed:
        """The group's notification, if it is due: its unsent one, or a new one from its pending events, in
        one transaction that also deletes them and records the send in the group's timing state.
        `render(items, reason, outbox id)` makes the payload; a TemplateError records it dead at once."""
        from sysevents.templates import TemplateError

        group_ref = self.groups.document(group_id)
        held_group = group_id == overflow_id(job)
        rate_ref = self.rates.document(job.key)
        grouping = job.config.grouping
        scale = self.settings.time_scale
        repeat = timedelta(seconds=(grouping.repeat_interval if grouping else 0) * scale)
        query = self.pending.where(filter=firestore.FieldFilter("group_id", "==", group_id)).limit(FLUSH_CAP)

        # The group's pending events, found outside the transaction and then read in it by reference: the
        # transaction locks those documents only, not the query's range, so events accepted into the group
        # meanwhile are never blocked or aborted by a flush (they go in the next one, group_interval later).
        found = [s.reference for s in query.stream()]

        @firestore.transactional
        def tx(t) -> Flushed:
            snap = group_ref.get(transaction=t)
            g = snap.to_dict() if snap.exists else None
            if g and g.get("unsent"):
                return Flushed(g["unsent"])
            docs = sorted(
                ((s.reference, s.to_dict()) for s in (t.get_all(found) if found else []) if s.exists),
                key=lambda d: (d[1]["at"], d[0].id),
            )
            if not docs:
                return Flushed(None)
            items = [d for _, d in docs]
            due = (
                min(i["due_at"] for i in items)
                if held_group or grouping is None
                else group_due(g, grouping, items, scale)
            )
            if due > now:
                return Flushed(None, due=due)
            restart = held_group or grouping is None or restarts(g, items[0]["at"], repeat)
            state = {} if restart else g or {}
            for item in items:
                if not held_group:
                    item["repeat"] = bool(item.get("alert")) and is_repeat(
                        state, item["alert"], item["at"], repeat
                    )
            allowed, rate_write = (True, None) if held_group else self._rate(t, rate_ref, job, now)
            seq = (g or {}).get("seq", 0)
            oid = None
            dead = None
            if allowed:
                if rate_write:
                    t.set(rate_ref, rate_write)
                oid = _hash("digest", job.key, group_id, str(seq))
                try:
                    payload = render(items, "rate_limited" if held_group else "grouped", oid)
                except TemplateError as err:
                    dead, payload = f"digest template error: {err}", {}
                entry = self._entry(job, "digest", payload, now, event_ids=[i["event"]["id"] for i in items],
                                    group_id=group_id)  # fmt: skip
                if dead:
                    entry.update(state="dead", last_error=dead)
                t.create(self.outbox.document(oid), entry)
                for ref, _ in docs:
                    t.delete(ref)
                if job.config.resolve_on:
                    for item in items:
                        t.set(self.firing.document(_hash(job.key, subject_of(item["event"]))),
                              self._firing(job, item["event"], group_id, now))  # fmt: skip
            else:  # over the rate limit: to the job's held-back digest, sent when the window ends
                _, window_end = job.config.limit().window(now)
                held = overflow_id(job)
                for ref, item in docs:
                    t.update(
                        ref, {"group_id": held, "due_at": window_end, "key": {}, "repeat": item["repeat"]}
                    )
            notified = {k: v for k, v in (state.get("notified") or {}).items() if v + repeat > now}
            for item in items:
                if not item["repeat"] and item.get("alert"):
                    notified[item["alert"]] = now
            t.set(group_ref, {
                **_job_fields(job), "key": items[0].get("key") or {}, "seq": seq + 1, "last_sent_at": now,
                "last_event_at": max(items[-1]["at"], state.get("last_event_at") or items[-1]["at"]),
                "notified": notified, "unsent": oid if oid and not dead else None,
            })  # fmt: skip
            return Flushed(oid, dead_reason=dead)

        return _run(
            tx, self.client.transaction(max_attempts=TX_ATTEMPTS), "the group is being flushed elsewhere"
        )

    def overdue(self, before: datetime, sink: str, limit: int = 500) -> dict[str, str]:
        """{group id: job key} of groups with a pending event due before `before` (the sweep's search for a
        timer that was lost)."""
        query = (
            self.pending.where(filter=firestore.FieldFilter("due_at", "<=", before))
            .order_by("due_at")
            .select(["job_key", "group_id", "sink"])
            .limit(limit)
        )
        found: dict[str, str] = {}
        for s in query.stream():
            d = s.to_dict()
            if d.get("sink", "email") == sink:
                found.setdefault(d["group_id"], d["job_key"])
        return found

    def drop_group(self, group_id: str) -> int:
        """Delete a group's pending events and state (its job is gone or not alerting any more)."""
        refs = [
            s.reference
            for s in self.pending.where(filter=firestore.FieldFilter("group_id", "==", group_id)).stream()
        ]
        for start in range(0, len(refs), 400):
            batch = self.client.batch()
            for ref in refs[start : start + 400]:
                batch.delete(ref)
            batch.commit()
        self.groups.document(group_id).delete()
        return len(refs)

    # -- firing alerts and their resolution ----------------------------------------------------------------
    def _firing(self, job: Job, ce: dict, group_id: str | None, now: datetime) -> dict[str, Any]:
        return {**_job_fields(job), "subject": subject_of(ce), "group_id": group_id, "event": summary(ce),
                "since": now, "expire_at": now + FIRING_RETENTION}  # fmt: skip

    def fire(self, job: Job, ce: dict, group_id: str | None, now: datetime) -> None:
        self.firing.document(_hash(job.key, subject_of(ce))).set(self._firing(job, ce, group_id, now))

    def firing_of(self, job: Job, ce: dict) -> dict[str, Any] | None:
        snap = self.firing.document(_hash(job.key, subject_of(ce))).get()
        return snap.to_dict() if snap.exists else None

    def still_firing(self, job: Job, group_id: str) -> int:
        """How many other subjects of the group are firing."""
        query = self.firing.where(filter=firestore.FieldFilter("job_key", "==", job.key)).where(
            filter=firestore.FieldFilter("group_id", "==", group_id)
        )
        return int(query.count().get()[0][0].value)

    def resolve(self, job: Job, ce: dict, firing: dict[str, Any]) -> None:
        """The subject's alert is resolved: no longer firing, and a new alert about it is not a repeat."""
        self.firing.document(_hash(job.key, subject_of(ce))).delete()
        gid = firing.get("group_id")
        alert = firing.get("event") and _hash(alert_key(firing["event"].get("data") or {}))
        if gid and alert:
            try:
                self.groups.document(gid).update({f"notified.`{alert}`": firestore.DELETE_FIELD})
            except NotFound:  # no group document yet: nothing to forget
                return
