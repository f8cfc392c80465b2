"""Alert state in Firestore: each (event, job) accepted once, grouped into digests, rate-limited, sent once.

Collections (prefix from settings, default `alert_`):
- `seen/{hash(job, event)}`: the event was accepted for the job (and what became of it). Created in the
  same transaction as the effect, so a Pub/Sub redelivery finds it and changes nothing.
- `outbox/{id}`: one email, rendered, with a Message-ID fixed by its id. A sender claims it with a lease
  in a transaction, sends, then marks it sent: two instances never send it at once, and a crash between
  SMTP's acceptance and the mark resends the same Message-ID (receivers' duplicate detection drops it).
- `groups/{hash(job, group key)}`: pending events of a group and its timers (`flush_at`, `last_sent_at`,
  when each alert was last emailed). `flush_due` turns due groups into digest outbox entries.
- `rates/{job}`: the job's email count in the current fixed window.
Every read-modify-write is a Firestore transaction, so concurrent function instances stay consistent.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from google.cloud import firestore

from ..config import Settings
from ..events import SystemEvent
from ..jobs import EmailConfig, Job
from .mailer import Mailer, Outcome, Result, build, message_id
from .policy import Grouping, alert_key, muted_by
from .render import link_for, render_digest, render_single

log = logging.getLogger("sysevents.alerts")

OVERFLOW = "__rate_limited__"
MAX_FIELD_CHARS = 1000
MAX_FIELDS = 40
TX_ATTEMPTS = 25
DEFAULT_MAX_EVENTS = 20
# `seen` and `outbox` documents carry `expire_at` (a Firestore TTL policy removes them, terraform/firestore.tf):
# kept longer than Pub/Sub keeps a message (7 days), so a redelivery always finds its `seen` record.
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


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def _trim(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_FIELD_CHARS else value[: MAX_FIELD_CHARS - 3] + "..."
    if value is None or isinstance(value, bool | int | float):
        return value
    return _trim(json.dumps(value, ensure_ascii=False, default=str))


def summary(ce: dict[str, Any]) -> dict[str, Any]:
    """The event as kept in a group: the envelope, data fields clipped, so groups fit a Firestore document."""
    data = dict(list((ce.get("data") or {}).items())[:MAX_FIELDS])
    return {**ce, "data": {k: _trim(v) for k, v in data.items()}}


class AlertState:
    def __init__(self, client: firestore.Client, settings: Settings, mailer: Mailer | None = None):
        self.client = client
        self.settings = settings
        self.mailer = mailer or Mailer(settings)
        prefix = settings.alerts_collection_prefix
        self.groups = client.collection(prefix + "groups")
        self.outbox = client.collection(prefix + "outbox")
        self.seen = client.collection(prefix + "seen")
        self.rates = client.collection(prefix + "rates")

    # -- accepting events ----------------------------------------------------------------------------------
    def accept(self, job: Job, event: SystemEvent, now: datetime) -> Accepted:
        """Record one delivered (event, job); idempotent under redelivery. Raises TemplateError."""
        cfg = job.config
        assert isinstance(cfg, EmailConfig)
        ce = event.to_cloudevent()
        why = muted_by(cfg.silences, cfg.mute_windows, ce["data"], now)
        if why:
            return Accepted(Decision.DROPPED, why)
        seen_ref = self.seen.document(_hash(job.id, event.id))
        if cfg.grouping is None:
            return self._accept_single(job, cfg, ce, seen_ref, now)
        return self._accept_grouped(job, cfg.grouping, ce, seen_ref, now)

    def _accept_single(self, job: Job, cfg: EmailConfig, ce: dict, seen_ref, now: datetime) -> Accepted:
        oid = _hash("single", job.id, ce["id"])
        email = render_single(cfg.subject_template, cfg.body_template, ce, self._link(ce))
        entry = self._entry(
            job, "single", email.subject, email.body, f"{job.id}/{ce['id']}", now, event_ids=[ce["id"]]
        )
        overflow_ref = self.groups.document(_hash(job.id, OVERFLOW))
        rate_ref = self.rates.document(job.id)

        @firestore.transactional
        def tx(t) -> Accepted:
            seen = seen_ref.get(transaction=t)
            if seen.exists:
                return _from_seen(seen.to_dict())
            allowed, rate_write = self._rate(t, rate_ref, cfg, now)
            if allowed:
                overflow = None
            else:
                overflow = overflow_ref.get(transaction=t)
            if rate_write:
                t.set(rate_ref, rate_write)
            if allowed:
                t.create(self.outbox.document(oid), entry)
                t.create(
                    seen_ref,
                    {
                        "job_id": job.id,
                        "event_id": ce["id"],
                        "at": now,
                        "decision": "email",
                        "outbox_id": oid,
                        "expire_at": now + RETENTION,
                    },
                )
                return Accepted(Decision.EMAIL, "email", outbox_id=oid)
            _, window_end = cfg.rate_limit.window(now)  # type: ignore[union-attr]
            self._add_held(
                t, overflow_ref, overflow, job, [{"event": summary(ce), "repeat": False}], 0, window_end, now
            )
            t.create(
                seen_ref,
                {
                    "job_id": job.id,
                    "event_id": ce["id"],
                    "at": now,
                    "decision": "held",
                    "group_id": overflow_ref.id,
                    "expire_at": now + RETENTION,
                },
            )
            return Accepted(
                Decision.HELD,
                f"rate limit reached; held until {window_end.isoformat()}",
                group_id=overflow_ref.id,
            )

        return tx(self.client.transaction(max_attempts=TX_ATTEMPTS))

    def _accept_grouped(self, job: Job, grouping: Grouping, ce: dict, seen_ref, now: datetime) -> Accepted:
        key = grouping.key(ce["data"])
        group_ref = self.groups.document(_hash(job.id, json.dumps(key, sort_keys=True)))
        ak = _hash(alert_key(ce["data"]))
        wait = timedelta(seconds=grouping.group_wait)
        interval = timedelta(seconds=grouping.group_interval)
        repeat = timedelta(seconds=grouping.repeat_interval)

        @firestore.transactional
        def tx(t) -> Accepted:
            seen = seen_ref.get(transaction=t)
            if seen.exists:
                return _from_seen(seen.to_dict())
            snap = group_ref.get(transaction=t)
            g = snap.to_dict() if snap.exists else None
            if g is None or g.get("last_event_at") is None or now - g["last_event_at"] > repeat:
                # A new group, or one quiet for longer than repeat_interval: start over, as for a new group.
                g = {
                    "job_id": job.id,
                    "key": key,
                    "pending": [],
                    "omitted": 0,
                    "count": 0,
                    "seq": (g or {}).get("seq", 0),
                    "first_pending_at": None,
                    "flush_at": None,
                    "last_sent_at": None,
                    "notified": {},
                    "overflow": False,
                }
            is_repeat = False
            if not g["pending"] and g["omitted"] == 0:
                g["first_pending_at"] = now
            if g["last_sent_at"] is None:
                due = g["first_pending_at"] + wait
            else:
                notified_at = g["notified"].get(ak)
                if notified_at is None or notified_at + repeat <= now:
                    due = g["last_sent_at"] + interval
                else:
                    is_repeat = True
                    due = max(notified_at + repeat, g["last_sent_at"] + interval)
            g["flush_at"] = due if g["flush_at"] is None else min(g["flush_at"], due)
            if len(g["pending"]) < grouping.max_events:
                g["pending"].append({"event": summary(ce), "repeat": is_repeat, "alert": ak})
            else:
                g["omitted"] += 1
            g["count"] += 1
            g["last_event_at"] = now
            t.set(group_ref, g)
            t.create(
                seen_ref,
                {
                    "job_id": job.id,
                    "event_id": ce["id"],
                    "at": now,
                    "decision": "grouped",
                    "group_id": group_ref.id,
                    "expire_at": now + RETENTION,
                },
            )
            return Accepted(
                Decision.GROUPED,
                f"grouped; digest due {g['flush_at'].isoformat()}",
                group_id=group_ref.id,
                group_due=g["flush_at"] <= now,
            )

        return tx(self.client.transaction(max_attempts=TX_ATTEMPTS))

    # -- rate limit and the held-back group -------------------------------------------------------------
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

    def _add_held(
        self, t, ref, snap, job: Job, items: list[dict], omitted: int, window_end: datetime, now: datetime
    ) -> None:
        g = snap.to_dict() if snap is not None and snap.exists else None
        if g is None or (not g["pending"] and not g["omitted"]):
            g = {
                "job_id": job.id,
                "key": {},
                "pending": [],
                "omitted": 0,
                "count": 0,
                "seq": (g or {}).get("seq", 0),
                "first_pending_at": now,
                "flush_at": None,
                "last_sent_at": None,
                "notified": {},
                "overflow": True,
            }
        room = max(0, self._max_events(job) - len(g["pending"]))
        g["pending"].extend(items[:room])
        g["omitted"] += omitted + max(0, len(items) - room)
        g["count"] += len(items) + omitted
        g["flush_at"] = window_end if g["flush_at"] is None else min(g["flush_at"], window_end)
        g["last_event_at"] = now
        t.set(ref, g)

    @staticmethod
    def _max_events(job: Job) -> int:
        grouping = getattr(job.config, "grouping", None)
        return grouping.max_events if grouping else DEFAULT_MAX_EVENTS

    # -- flushing groups into digests -------------------------------------------------------------------
    def flush_group(self, job: Job, group_id: str, now: datetime) -> str | None:
        """Turn a due group into a digest outbox entry (in a transaction); its id, or None if not due."""
        cfg = job.config
        assert isinstance(cfg, EmailConfig)
        group_ref = self.groups.document(group_id)
        overflow_ref = self.groups.document(_hash(job.id, OVERFLOW))
        rate_ref = self.rates.document(job.id)
        repeat = timedelta(seconds=cfg.grouping.repeat_interval if cfg.grouping else 0)

        @firestore.transactional
        def tx(t) -> str | None:
            snap = group_ref.get(transaction=t)
            g = snap.to_dict() if snap.exists else None
            if (
                not g
                or g.get("flush_at") is None
                or g["flush_at"] > now
                or not (g["pending"] or g["omitted"])
            ):
                return None
            held_group = g.get("overflow", False)
            allowed, rate_write = (True, None) if held_group else self._rate(t, rate_ref, cfg, now)
            overflow = None if allowed else overflow_ref.get(transaction=t)
            oid = None
            if rate_write:
                t.set(rate_ref, rate_write)
            if allowed:
                oid = _hash("digest", job.id, group_id, str(g["seq"]))
                digest = self._digest(job, g, "rate_limited" if held_group else "grouped")
                email = render_digest(cfg.digest_template, digest)
                ids = [i["event"]["id"] for i in g["pending"]]
                t.create(
                    self.outbox.document(oid),
                    self._entry(
                        job,
                        "digest",
                        email.subject,
                        email.body,
                        f"{job.id}/{group_id}/{g['seq']}",
                        now,
                        event_ids=ids,
                        group_id=group_id,
                    ),
                )
            else:
                _, window_end = cfg.rate_limit.window(now)  # type: ignore[union-attr]
                self._add_held(t, overflow_ref, overflow, job, g["pending"], g["omitted"], window_end, now)
            notified = {k: v for k, v in g["notified"].items() if v + repeat > now}
            for item in g["pending"]:
                if not item.get("repeat") and item.get("alert"):
                    notified[item["alert"]] = now
            t.set(
                group_ref,
                {
                    **g,
                    "pending": [],
                    "omitted": 0,
                    "count": 0,
                    "flush_at": None,
                    "last_sent_at": now,
                    "notified": notified,
                    "seq": g["seq"] + 1,
                },
            )
            return oid

        return tx(self.client.transaction(max_attempts=TX_ATTEMPTS))

    def _digest(self, job: Job, g: dict, reason: str) -> dict[str, Any]:
        items = [
            {"event": i["event"], "link": self._link(i["event"]), "repeat": bool(i.get("repeat"))}
            for i in g["pending"]
        ]
        return {
            "job": {"id": job.id, "name": job.name},
            "group": g["key"],
            "reason": reason,
            "count": g["count"],
            "omitted": g["omitted"],
            "items": items,
        }

    def flush_due(
        self,
        get_job: Callable[[str], Job | None],
        now: datetime,
        limit: int = 200,
        on_dead: Callable[[str, str, int], None] | None = None,
    ) -> dict[str, int]:
        """Send every due digest and retry digests whose last attempt failed. Safe to run concurrently."""
        report = {"digests": 0, "sent": 0, "failed": 0, "dead_lettered": 0, "dropped_groups": 0}
        for snap in (
            self.groups.where(filter=firestore.FieldFilter("flush_at", "<=", now)).limit(limit).stream()
        ):
            g = snap.to_dict()
            job = get_job(g["job_id"])
            if job is None or job.state.value != "active" or not isinstance(job.config, EmailConfig):
                snap.reference.delete()
                report["dropped_groups"] += 1
                log.warning(
                    "alerts: dropped group %s of job %s (job gone, paused or not an email job)",
                    snap.id,
                    g["job_id"],
                )
                continue
            oid = self.flush_group(job, snap.id, now)
            if oid:
                report["digests"] += 1
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
            job = get_job(e["job_id"])
            if job is None or not isinstance(job.config, EmailConfig):
                (on_dead or self._mark_dead3)(snap.id, "job no longer exists", e["attempts"])
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
                (on_dead or self._mark_dead3)(snap.id, sent.result.reason, sent.attempts)
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
            "job_id": job.id,
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

        @firestore.transactional
        def claim(t) -> tuple[str, dict | None]:
            snap = ref.get(transaction=t)
            if not snap.exists:
                return "missing", None
            e = snap.to_dict()
            if e["state"] in ("sent", "dead"):
                return e["state"], e
            if e.get("lease_until") and e["lease_until"] > now:
                return "busy", e
            e = {**e, "state": "sending", "lease_until": now + lease, "attempts": e["attempts"] + 1}
            t.set(ref, e)
            return "claimed", e

        status, e = claim(self.client.transaction(max_attempts=TX_ATTEMPTS))
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
