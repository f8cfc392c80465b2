"""Alert state in Firestore: each (event, job) accepted once, grouped into digests, rate-limited, sent once.

Collections (prefix from settings, default `alert_`):
- `seen/{hash(job, event)}`: the event was accepted for the job (and what became of it). Created
  create-if-absent in the same atomic write as the effect, so a Pub/Sub redelivery finds it and changes
  nothing.
- `pending/{hash(job, event)}`: one accepted event waiting for its group's digest (its group, a summary of
  the event, its alert key, when it came, and `due_at`: when its group was due as known at acceptance,
  what `flush_due` looks for). Each event is its own document, so concurrent events of one group never
  write the same document; the flush deletes them in the transaction that records the digest.
- `groups/{hash(job, group key)}`: a group's timing state only (`last_sent_at`, `last_event_at`, when
  each alert was last emailed, `seq`), written only by the flush of that group.
- `outbox/{id}`: one email, rendered, with a Message-ID fixed by its id. A sender claims it with a lease
  (a write conditional on the entry's update time), sends, then marks it sent: two instances never send it at once, and a crash between
  SMTP's acceptance and the mark resends the same Message-ID (receivers' duplicate detection drops it).
- `rates/{job}`: the job's email count in the current fixed window.
Accepting an event is one atomic batch (no transaction) unless the job has a rate limit; flushing a group
is one transaction on its group document and its pending events, so concurrent instances stay consistent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from google.api_core.exceptions import AlreadyExists, Conflict, FailedPrecondition
from google.cloud import firestore

from ..config import Settings
from ..events import SystemEvent
from ..jobs import Job
from ..sinks.email.config import EmailConfig
from ..sinks.email.mailer import Mailer, Outcome, Result, build, message_id
from ..templates import TemplateError
from .policy import Grouping, alert_key, muted_by
from .render import Evaluate, link_for, render_digest, render_single

log = logging.getLogger("sysevents.alerts")

OVERFLOW = "__rate_limited__"
MAX_FIELD_CHARS = 1000
MAX_FIELDS = 40
TX_ATTEMPTS = 25
DEFAULT_MAX_EVENTS = 20
FLUSH_CAP = 400
"""Most pending events one digest takes (one transaction writes each of them); more wait for the next."""
DISCOVERY_PAGES = 20
# `seen` and `outbox` documents carry `expire_at` (a Firestore TTL policy removes them, terraform/firestore.tf):
# kept longer than Pub/Sub keeps a message (7 days), so a redelivery always finds its `seen` record.
# `pending` documents do not expire: they wait for their digest (up to repeat_interval) and the flush
# deletes them.
RETENTION = timedelta(days=8)


class Decision(StrEnum):
    EMAIL = "email"  # an outbox entry to send now
    GROUPED = "grouped"  # added to a group; a digest follows
    HELD = "held"  # over the rate limit; in the job's "held back" digest
    DROPPED = "dropped"  # silenced or muted


@dataclass(frozen=True)
class Accepted:
    decision: Decision
    reason: str
    outbox_id: str | None = None
    group_id: str | None = None
    group_due: bool = False
    duplicate: bool = False


@dataclass(frozen=True)
class Sent:
    result: Result
    attempts: int
    busy: bool = False  # another instance holds the lease


@dataclass(frozen=True)
class Flushed:
    """What `flush_group` did: the digest's outbox id (None: not due, nothing pending, or held back by the
    rate limit), and why it was dead-lettered at once (its template failed)."""

    outbox_id: str | None
    dead_reason: str | None = None


def _job_fields(job: Job) -> dict[str, str]:
    """How alert state documents name their job: its key (account, id, generation), and id and account."""
    return {"job_id": job.id, "aid": job.aid, "job_key": job.key}


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


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


def _is_repeat(g: dict[str, Any], alert: str, at: datetime, repeat: timedelta) -> bool:
    notified_at = g.get("notified", {}).get(alert)
    return notified_at is not None and notified_at + repeat > at


def _restarts(g: dict[str, Any] | None, first_at: datetime, repeat: timedelta) -> bool:
    """A group never emailed, or quiet for longer than repeat_interval, starts over (group_wait again)."""
    if not g or g.get("last_sent_at") is None:
        return True
    last = g.get("last_event_at")
    return last is None or first_at - last > repeat


def event_due(g: dict[str, Any] | None, grouping: Grouping, alert: str, at: datetime) -> datetime:
    """When a group with timing state `g` is due for an event of alert `alert` that came at `at`:
    group_wait after the first event of a new group; group_interval after the last digest for a new
    alert; and for an alert already emailed, not before repeat_interval after that email."""
    repeat = timedelta(seconds=grouping.repeat_interval)
    if _restarts(g, at, repeat):
        return at + timedelta(seconds=grouping.group_wait)
    assert g is not None
    after_last = g["last_sent_at"] + timedelta(seconds=grouping.group_interval)
    if _is_repeat(g, alert, at, repeat):
        return max(g["notified"][alert] + repeat, after_last)
    return after_last


def group_due(g: dict[str, Any] | None, grouping: Grouping, items: list[dict[str, Any]]) -> datetime:
    """When a group with these pending events is due: its earliest event's due time."""
    first_at = min(i["at"] for i in items)
    if _restarts(g, first_at, timedelta(seconds=grouping.repeat_interval)):
        return first_at + timedelta(seconds=grouping.group_wait)
    return min(event_due(g, grouping, i["alert"], i["at"]) for i in items)


class AlertState:
    def __init__(
        self,
        client: firestore.Client,
        settings: Settings,
        mailer: Mailer | None = None,
        *,
        evaluate: Evaluate | None = None,
    ):
        self.client = client
        self.settings = settings
        self.mailer = mailer or Mailer(settings)
        self.evaluate = evaluate  # runs a job's own templates: the template sandbox (Runtime.sandbox)
        prefix = settings.alerts_collection_prefix
        self.groups = client.collection(prefix + "groups")
        self.pending = client.collection(prefix + "pending")
        self.outbox = client.collection(prefix + "outbox")
        self.seen = client.collection(prefix + "seen")
        self.rates = client.collection(prefix + "rates")
        self._flushing: set[str] = set()  # groups this instance is flushing now
        self._flushing_lock = threading.Lock()

    # -- accepting events ----------------------------------------------------------------------------------
    def accept(self, job: Job, event: SystemEvent, now: datetime) -> Accepted:
        """Record one delivered (event, job); idempotent under redelivery. Raises TemplateError."""
        cfg = job.config
        assert isinstance(cfg, EmailConfig)
        ce = event.to_cloudevent()
        why = muted_by(cfg.silences, cfg.mute_windows, ce["data"], now)
        if why:
            return Accepted(Decision.DROPPED, why)
        key = _hash(job.key, event.id)
        if cfg.grouping is None:
            return self._accept_single(job, cfg, ce, key, now)
        return self._accept_grouped(job, cfg.grouping, ce, key, now)

    def _duplicate(self, seen_ref) -> Accepted:
        snap = seen_ref.get()
        if snap.exists:
            return _from_seen(snap.to_dict())
        # Its `seen` record expired while the event still waits for a digest: still a duplicate.
        return Accepted(Decision.GROUPED, "already accepted (grouped)", duplicate=True)

    def _pending_doc(self, job: Job, group_id: str, key: dict, ce: dict, alert: str | None, now: datetime,
                     due: datetime, repeat: bool = False) -> dict[str, Any]:  # fmt: skip
        return {
            **_job_fields(job),
            "group_id": group_id,
            "key": key,
            "event": summary(ce),
            "alert": alert,
            "repeat": repeat,
            "at": now,
            "due_at": due,
        }

    def _accept_single(self, job: Job, cfg: EmailConfig, ce: dict, key: str, now: datetime) -> Accepted:
        seen_ref = self.seen.document(key)
        oid = self.single_outbox_id(job, ce["id"])
        email = render_single(
            cfg.subject_template, cfg.body_template, ce, self._link(ce), evaluate=self.evaluate
        )
        entry = self._entry(
            job, "single", email.subject, email.body, f"{job.key}/{ce['id']}", now, event_ids=[ce["id"]]
        )
        seen_email = {
            **_job_fields(job),
            "event_id": ce["id"],
            "at": now,
            "decision": "email",
            "outbox_id": oid,
            "expire_at": now + RETENTION,
        }
        if cfg.rate_limit is None:
            batch = self.client.batch()
            batch.create(seen_ref, seen_email)
            batch.create(self.outbox.document(oid), entry)
            try:
                batch.commit()
            except (AlreadyExists, Conflict):
                return self._duplicate(seen_ref)
            return Accepted(Decision.EMAIL, "email", outbox_id=oid)

        overflow_id = _hash(job.key, OVERFLOW)
        rate_ref = self.rates.document(job.key)

        @firestore.transactional
        def tx(t) -> Accepted:
            seen = seen_ref.get(transaction=t)
            if seen.exists:
                return _from_seen(seen.to_dict())
            allowed, rate_write = self._rate(t, rate_ref, cfg, now)
            if allowed:
                assert rate_write is not None
                t.set(rate_ref, rate_write)
                t.create(self.outbox.document(oid), entry)
                t.create(seen_ref, seen_email)
                return Accepted(Decision.EMAIL, "email", outbox_id=oid)
            _, window_end = cfg.rate_limit.window(now)  # type: ignore[union-attr]
            t.create(
                self.pending.document(key), self._pending_doc(job, overflow_id, {}, ce, None, now, window_end)
            )
            t.create(
                seen_ref,
                {
                    **_job_fields(job),
                    "event_id": ce["id"],
                    "at": now,
                    "decision": "held",
                    "group_id": overflow_id,
                    "expire_at": now + RETENTION,
                },
            )
            return Accepted(
                Decision.HELD,
                f"rate limit reached; held until {window_end.isoformat()}",
                group_id=overflow_id,
            )

        return tx(self.client.transaction(max_attempts=TX_ATTEMPTS))

    def _accept_grouped(self, job: Job, grouping: Grouping, ce: dict, key: str, now: datetime) -> Accepted:
        """One atomic batch: create the `seen` record and the pending event (both create-if-absent). The
        group document is only read, for the due time the flush looks for; the flush decides for itself."""
        seen_ref = self.seen.document(key)
        gkey = grouping.key(ce["data"])
        group_id = _hash(job.key, json.dumps(gkey, sort_keys=True))
        alert = _hash(alert_key(ce["data"]))
        snap = self.groups.document(group_id).get()
        due = event_due(snap.to_dict() if snap.exists else None, grouping, alert, now)
        batch = self.client.batch()
        batch.create(
            seen_ref,
            {
                **_job_fields(job),
                "event_id": ce["id"],
                "at": now,
                "decision": "grouped",
                "group_id": group_id,
                "expire_at": now + RETENTION,
            },
        )
        batch.create(self.pending.document(key), self._pending_doc(job, group_id, gkey, ce, alert, now, due))
        try:
            batch.commit()
        except (AlreadyExists, Conflict):
            return self._duplicate(seen_ref)
        return Accepted(
            Decision.GROUPED,
            f"grouped; digest due {due.isoformat()}",
            group_id=group_id,
            group_due=due <= now,
        )

    # -- rate limit ------------------------------------------------------------------------------------
    def _rate(self, t, rate_ref, cfg: EmailConfig, now: datetime) -> tuple[bool, dict | None]:
        """Read the job's window count in the transaction; (allowed, the write to make)."""
        if cfg.rate_limit is None:
            return True, None
        start, _ = cfg.rate_limit.window(now)
        snap = rate_ref.get(transaction=t)
        doc = snap.to_dict() if snap.exists else {}
        count = doc.get("count", 0) if doc.get("window_start") == start else 0
        if count >= cfg.rate_limit.max_emails:
            return False, None
        return True, {"window_start": start, "count": count + 1, "max": cfg.rate_limit.max_emails}

    @staticmethod
    def _max_events(job: Job) -> int:
        grouping = getattr(job.config, "grouping", None)
        return grouping.max_events if grouping else DEFAULT_MAX_EVENTS

    # -- flushing groups into digests -------------------------------------------------------------------
    def flush_group(self, job: Job, group_id: str, now: datetime) -> Flushed:
        """If the group is due, turn its pending events into one digest outbox entry, in one transaction
        that also deletes them and records the send in the group's timing state. A digest whose template
        fails is recorded dead (with the reason) in the same way: its events are not retried forever."""
        with self._flushing_lock:
            if group_id in self._flushing:
                return Flushed(None)  # another thread of this instance is at it
            self._flushing.add(group_id)
        try:
            return self._flush_group(job, group_id, now)
        finally:
            with self._flushing_lock:
                self._flushing.discard(group_id)

    def _flush_group(self, job: Job, group_id: str, now: datetime) -> Flushed:
        cfg = job.config
        assert isinstance(cfg, EmailConfig)
        group_ref = self.groups.document(group_id)
        overflow_id = _hash(job.key, OVERFLOW)
        held_group = group_id == overflow_id
        rate_ref = self.rates.document(job.key)
        grouping = cfg.grouping
        repeat = timedelta(seconds=grouping.repeat_interval if grouping else 0)
        query = self.pending.where(filter=firestore.FieldFilter("group_id", "==", group_id)).limit(FLUSH_CAP)

        @firestore.transactional
        def tx(t) -> Flushed:
            snap = group_ref.get(transaction=t)
            g = snap.to_dict() if snap.exists else None
            docs = sorted(
                ((s.reference, s.to_dict()) for s in t.get(query)), key=lambda d: (d[1]["at"], d[0].id)
            )
            if not docs:
                return Flushed(None)
            items = [d for _, d in docs]
            if held_group or grouping is None:
                due = min(i["due_at"] for i in items)
            else:
                due = group_due(g, grouping, items)
            if due > now:  # not due yet: bring stale due times up to date so the search skips them till then
                for ref, item in docs:
                    if item["due_at"] < due:
                        t.update(ref, {"due_at": due})
                return Flushed(None)
            restart = held_group or grouping is None or _restarts(g, items[0]["at"], repeat)
            state = {} if restart else g or {}
            for item in items:
                if not held_group:
                    item["repeat"] = bool(item.get("alert")) and _is_repeat(
                        state, item["alert"], item["at"], repeat
                    )
            allowed, rate_write = (True, None) if held_group else self._rate(t, rate_ref, cfg, now)
            if rate_write:
                t.set(rate_ref, rate_write)
            seq = (g or {}).get("seq", 0)
            oid, dead = None, None
            if allowed:
                oid = _hash("digest", job.key, group_id, str(seq))
                digest = self._digest(job, items, "rate_limited" if held_group else "grouped")
                try:
                    email = render_digest(cfg.digest_template, digest, evaluate=self.evaluate)
                    subject, body = email.subject, email.body
                except TemplateError as err:
                    dead, subject, body = f"digest template error: {err}", "", ""
                entry = self._entry(
                    job,
                    "digest",
                    subject,
                    body,
                    f"{job.key}/{group_id}/{seq}",
                    now,
                    event_ids=[i["event"]["id"] for i in items],
                    group_id=group_id,
                )
                if dead:
                    entry.update(state="dead", last_error=dead, next_attempt_at=None)
                t.create(self.outbox.document(oid), entry)
                for ref, _ in docs:
                    t.delete(ref)
            else:  # over the rate limit: to the job's held-back digest, sent when the window ends
                _, window_end = cfg.rate_limit.window(now)  # type: ignore[union-attr]
                for ref, item in docs:
                    t.update(
                        ref,
                        {"group_id": overflow_id, "due_at": window_end, "key": {}, "repeat": item["repeat"]},
                    )
            notified = {k: v for k, v in (state.get("notified") or {}).items() if v + repeat > now}
            for item in items:
                if not item["repeat"] and item.get("alert"):
                    notified[item["alert"]] = now
            t.set(
                group_ref,
                {
                    **_job_fields(job),
                    "key": items[0].get("key") or {},
                    "seq": seq + 1,
                    "last_sent_at": now,
                    "last_event_at": max(items[-1]["at"], state.get("last_event_at") or items[-1]["at"]),
                    "notified": notified,
                },
            )
            return Flushed(oid, dead)

        return tx(self.client.transaction(max_attempts=TX_ATTEMPTS))

    def _digest(self, job: Job, items: list[dict], reason: str) -> dict[str, Any]:
        listed = items[: self._max_events(job)]
        return {
            "job": {"id": job.id, "name": job.name},
            "group": items[0].get("key") or {},
            "reason": reason,
            "count": len(items),
            "omitted": len(items) - len(listed),
            "items": [
                {"event": i["event"], "link": self._link(i["event"]), "repeat": bool(i.get("repeat"))}
                for i in listed
            ],
        }

    def _due_groups(self, now: datetime, page: int) -> dict[str, str]:
        """{group id: job key} of the groups with a pending event due by `now`."""
        found: dict[str, str] = {}
        query = (
            self.pending.where(filter=firestore.FieldFilter("due_at", "<=", now))
            .order_by("due_at")
            .select(["job_key", "group_id", "due_at"])
            .limit(page)
        )
        last = None
        for _ in range(DISCOVERY_PAGES):
            snaps = list((query.start_after(last) if last is not None else query).stream())
            for s in snaps:
                d = s.to_dict()
                found.setdefault(d["group_id"], d["job_key"])
            if len(snaps) < page:
                break
            last = snaps[-1]
        return found

    def _drop_group(self, group_id: str) -> int:
        """Delete a group's pending events and state (its job is gone, paused or not an email job)."""
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

    def flush_due(
        self,
        get_job: Callable[[str], Job | None],  # job key -> the job, if it still exists at that generation
        now: datetime,
        limit: int = 200,
        on_dead: Callable[[str, str, int], None] | None = None,
    ) -> dict[str, int]:
        """Send every due digest and retry digests whose last attempt failed. Safe to run concurrently.
        A group whose flush fails (its digest template, Firestore) does not stop the others."""
        report = {"digests": 0, "sent": 0, "failed": 0, "dead_lettered": 0, "dropped_groups": 0, "errors": 0}
        dead = on_dead or self._mark_dead3
        for group_id, job_key in self._due_groups(now, max(limit, 50)).items():
            job = get_job(job_key)
            if job is None or job.state.value != "active" or not isinstance(job.config, EmailConfig):
                dropped = self._drop_group(group_id)
                report["dropped_groups"] += 1
                log.warning(
                    "alerts: dropped group %s of job %s with %d pending event(s) (job gone, paused or not "
                    "an email job)",
                    group_id,
                    job_key,
                    dropped,
                )
                continue
            try:
                flushed = self.flush_group(job, group_id, now)
                if flushed.outbox_id and flushed.dead_reason:
                    report["dead_lettered"] += 1
                    log.warning("alerts: digest %s of job %s dead-lettered: %s", flushed.outbox_id, job.id,
                                flushed.dead_reason)  # fmt: skip
                    dead(flushed.outbox_id, flushed.dead_reason, 0)
                elif flushed.outbox_id:
                    report["digests"] += 1
            except Exception:  # one group's failure must not hold up the others; its events stay pending
                report["errors"] += 1
                log.exception("alerts: flushing group %s of job %s failed", group_id, job.id)
        pending = (
            self.outbox.where(filter=firestore.FieldFilter("kind", "==", "digest"))
            .where(filter=firestore.FieldFilter("state", "==", "pending"))
            .limit(limit)
            .stream()
        )
        for snap in pending:
            e = snap.to_dict()
            if e.get("next_attempt_at") and e["next_attempt_at"] > now:
                continue
            job = get_job(e["job_key"])
            if job is None or not isinstance(job.config, EmailConfig):
                dead(snap.id, "job no longer exists", e["attempts"])
                report["dead_lettered"] += 1
                continue
            sent = self.deliver(snap.id, job, now)
            if sent.busy:
                continue
            if sent.result.outcome is Outcome.SENT:
                report["sent"] += 1
            elif (
                sent.result.outcome is Outcome.PERMANENT or sent.attempts >= self.settings.alerts_max_attempts
            ):
                dead(snap.id, sent.result.reason, sent.attempts)
                report["dead_lettered"] += 1
            else:
                report["failed"] += 1
        return report

    # -- sending ---------------------------------------------------------------------------------------
    def _entry(
        self,
        job: Job,
        kind: str,
        subject: str,
        body: str,
        key: str,
        now: datetime,
        *,
        event_ids: list[str],
        group_id: str | None = None,
    ) -> dict[str, Any]:
        return {
            **_job_fields(job),
            "kind": kind,
            "state": "pending",
            "subject": subject,
            "body": body,
            "message_id": message_id(key, self.settings.email_from),
            "event_ids": event_ids[:100],
            "group_id": group_id,
            "created_at": now,
            "attempts": 0,
            "lease_until": None,
            "next_attempt_at": now,
            "last_error": None,
            "sent_at": None,
            "expire_at": now + RETENTION,
        }

    def _link(self, ce: dict[str, Any]) -> str:
        return link_for(ce, self.settings.email_link_template)

    def deliver(self, oid: str, job: Job, now: datetime) -> Sent:
        """Claim the outbox entry (lease), send it over SMTP, record the outcome."""
        ref = self.outbox.document(oid)
        lease = timedelta(seconds=self.settings.smtp_timeout * 3 + 30)

        def claim() -> tuple[str, dict | None]:
            # Compare-and-set on the entry's update time, not a transaction: concurrent claimants of one
            # entry never wait on each other's locks; the loser re-reads it and finds it busy or sent.
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

        status, e = claim()
        if status == "missing":
            return Sent(Result(Outcome.PERMANENT, f"outbox entry {oid} does not exist"), 0)
        assert e is not None
        if status == "sent":
            return Sent(Result(Outcome.SENT, "already sent"), e["attempts"])
        if status == "dead":
            return Sent(
                Result(Outcome.PERMANENT, f"already dead-lettered: {e.get('last_error')}"), e["attempts"]
            )
        if status == "busy":
            return Sent(Result(Outcome.RETRY, "another instance is sending it"), e["attempts"], busy=True)
        cfg = job.config
        assert isinstance(cfg, EmailConfig)
        msg = build(
            sender=self.settings.email_from,
            recipients=cfg.recipients,
            subject=e["subject"],
            body=e["body"],
            msg_id=e["message_id"],
            date=e["created_at"],
            headers={"X-Sysevents-Job": job.id, "X-Sysevents-Kind": e["kind"]},
        )
        result = self.mailer.send(msg, cfg.recipients)
        if result.outcome is Outcome.SENT:
            ref.update(
                {
                    "state": "sent",
                    "sent_at": firestore.SERVER_TIMESTAMP,
                    "lease_until": None,
                    "last_error": None,
                    "refused": list(result.refused),
                }
            )
            log.info("alerts: sent %s %s of job %s (attempt %d)", e["kind"], oid, job.id, e["attempts"])
        else:
            backoff = timedelta(seconds=min(600, 2 ** e["attempts"]))
            ref.update(
                {
                    "state": "pending",
                    "lease_until": None,
                    "last_error": result.reason,
                    "next_attempt_at": now + backoff,
                }
            )
            log.warning(
                "alerts: %s %s of job %s failed (attempt %d): %s",
                e["kind"],
                oid,
                job.id,
                e["attempts"],
                result.reason,
            )
        return Sent(result, e["attempts"])

    def _mark_dead3(self, oid: str, reason: str, attempts: int) -> None:
        self.mark_dead(oid, reason)

    @staticmethod
    def single_outbox_id(job: Job, event_id: str) -> str:
        """The outbox entry of an ungrouped event's email."""
        return _hash("single", job.key, event_id)

    def mark_dead(self, oid: str, reason: str) -> dict[str, Any] | None:
        ref = self.outbox.document(oid)
        snap = ref.get()
        if not snap.exists:
            return None
        ref.update({"state": "dead", "last_error": reason, "lease_until": None})
        return {**snap.to_dict(), "state": "dead", "last_error": reason}


def _from_seen(doc: dict[str, Any]) -> Accepted:
    decision = Decision(doc["decision"])
    return Accepted(
        decision,
        f"already accepted ({decision.value})",
        outbox_id=doc.get("outbox_id"),
        group_id=doc.get("group_id"),
        duplicate=True,
    )
