"""The alert engine every alerting sink runs (email jobs; webhook jobs with noise control or resolution):
one event in, at most one notification out, on the job's channel.

For each delivered event (`deliver`):
1. silences and mute windows drop it (filtered, with the reason);
2. a `resolve_on` verb resolves the alert firing for the same subject: the channel gets a "resolved"
   notification (PagerDuty: `resolve` with the alert's dedup key, once its group has nothing left firing);
   with nothing firing for the subject, it is filtered;
3. without grouping, its notification is rendered into the outbox and sent now (or held by the rate limit
   into the job's "held back" digest);
4. with grouping, it joins its group (accepted) and the group's **timer** is put on the durable delay queue
   (sysevents.transport.delays) for the group's due time: group_wait after the first event (counted from when the
   event happened), group_interval after the last notification. No tick polls the groups.
When a timer fires (`notice`: a delivery whose `notice` is the timer), the group is flushed into one
notification -- the digest, rendered with the job's `digest_template` or the channel's default -- and sent
through the channel. Its outcome is the timer delivery's outcome, so the envelope retries it on the job's
retry schedule, counts it and dead-letters it like any delivery. After each notification a follow-up timer
at group_interval catches events that joined the group while it was being flushed.

Timers are de-duplicated per instance (one per group and due time: the first event of a group sets it, the
rest of the burst find it set) and by task name in Cloud Tasks; a timer that finds nothing due is filtered
(or waits again until the group is due). The sweep (`sweep`, on a schedule) is the safety net for a timer
that was lost: it re-arms groups with events overdue by more than SWEEP_GRACE.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sysevents.alerts.channel import Channel
from sysevents.alerts.digest import link_for
from sysevents.alerts.ids import hash_of, overflow_id, subject_of
from sysevents.alerts.policy import muted_by
from sysevents.alerts.store import AlertStore, Contended, Decision
from sysevents.alerts.timing import start_of
from sysevents.alerts.watch import Watch
from sysevents.delivery.attempt import Attempt
from sysevents.delivery.message import Delivery
from sysevents.delivery.outcome import Kind, Outcome
from sysevents.jobs.model import Job, JobState
from sysevents.templates import TemplateError
from sysevents.transport.delays import Release, task_id

log = logging.getLogger("sysevents.alerts")

DEFAULT_MAX_EVENTS = 20
SWEEP_GRACE = timedelta(seconds=60)
MAX_TIMERS = 50_000
CONTENDED_RETRY = timedelta(seconds=1)
"""How soon work that lost every attempt to concurrent writers is tried again."""


class Notifier:
    """The alert engine of one sink: `sink` names its topology sink (its timer topic and the sweep's
    share), `channel` renders and sends (sysevents.alerts.channel)."""

    def __init__(self, rt, sink, channel: Channel, clock: Callable[[], datetime] | None = None):
        self.rt = rt
        self.clock = clock or (lambda: datetime.now(UTC))
        self.sink_name = sink.name
        self.timer_topic = sink.timer_topic or sink.topic
        self.channel = channel
        self._timers: dict[str, float] = {}
        self._lock = threading.Lock()
        self.watch = Watch(rt, self.sink_name, channel, self._send, self._link, self.timer_topic, self.clock)

    @property
    def store(self) -> AlertStore:
        return self.rt.alert_store

    def _link(self, ce: dict[str, Any]) -> str:
        return link_for(ce, self.rt.settings.email_link_template)

    @property
    def _lease(self) -> timedelta:
        s = self.rt.settings
        return timedelta(seconds=max(s.smtp_timeout, s.webhook_read_timeout) * 3 + 30)

    # -- events ------------------------------------------------------------------------------------------
    def deliver(self, delivery: Delivery, job: Job, attempt: Attempt) -> Outcome:
        try:
            return self._deliver(delivery, job, attempt)
        except Contended as err:
            return self._contended(err)

    def notice(self, delivery: Delivery, job: Job, attempt: Attempt) -> Outcome:
        """A group's timer fired: flush the group and send its notification."""
        try:
            return self._notice(delivery, job, attempt)
        except Contended as err:
            return self._contended(err)

    def _contended(self, err: Contended) -> Outcome:
        """Concurrent writers won every attempt and nothing was written: the same work again shortly (its
        `seen` record or the group's state makes a repeat harmless), not a failure of the receiver's."""
        return Outcome.wait(self.clock() + CONTENDED_RETRY, f"busy, trying again: {err}")

    def _deliver(self, delivery: Delivery, job: Job, attempt: Attempt) -> Outcome:
        cfg = job.config
        if cfg.condition() is not None:  # threshold or absence (sysevents.alerts.watch)
            return self.watch.deliver(delivery, job, attempt)
        ce = delivery.event.to_cloudevent()
        now = self.clock()
        why = muted_by(cfg.silences, cfg.mute_windows, ce["data"], now)
        if why:
            return Outcome.filtered(why)
        try:
            if delivery.event.verb.value in cfg.resolve_on:
                return self._resolve(job, ce, attempt, now)
            if cfg.grouping is None:
                return self._single(delivery, job, ce, attempt, now)
        except TemplateError as err:
            return Outcome.permanent(f"template error: {err}", counts_against_receiver=False)
        at = start_of(delivery.event.time, now, cfg.grouping, self.rt.settings.time_scale)
        accepted = self.store.accept_grouped(job, cfg.grouping, ce, at, now)
        if accepted.group_id and accepted.due:
            self._arm(job, delivery, accepted.group_id, accepted.due)
        return Outcome.accepted(accepted.reason)

    def _single(self, delivery: Delivery, job: Job, ce: dict, attempt: Attempt, now: datetime) -> Outcome:
        oid = hash_of("single", job.key, ce["id"])
        payload = self.channel.single(job, ce, self._link(ce), f"{job.key}/{ce['id']}")
        accepted = self.store.accept_single(job, ce, now, oid, payload)
        if accepted.decision is not Decision.NOTIFY:  # held back by the rate limit (or a redelivery of one)
            if accepted.group_id and accepted.due:
                self._arm(job, delivery, accepted.group_id, accepted.due)
            return Outcome.accepted(accepted.reason)
        return self._send(job, accepted.outbox_id or oid, attempt, now, fired=(ce, None))

    def _resolve(self, job: Job, ce: dict, attempt: Attempt, now: datetime) -> Outcome:
        firing = self.store.firing_of(job, ce)
        if firing is None:
            return Outcome.filtered(f"nothing firing for {subject_of(ce)} to resolve")
        gid = firing.get("group_id")
        if gid and self.channel.incidents(job):
            others = self.store.still_firing(job, gid) - 1
            if others > 0:  # the group's incident stays open while any of its subjects fires
                self.store.resolve(job, ce, firing)
                return Outcome.filtered(f"resolved {subject_of(ce)}; {others} more still firing in its group")
        dedup = gid or f"{job.key}/{firing['event']['id']}"  # the key its trigger was sent with
        oid = hash_of("resolve", job.key, ce["id"])
        payload = self.channel.resolved(job, ce, firing["event"], oid, dedup)
        self.store.put(job, oid, "resolve", payload, now, [ce["id"]])
        outcome = self._send(job, oid, attempt, now)
        if outcome.kind is Kind.DELIVERED:
            self.store.resolve(job, ce, firing)
        return outcome

    # -- sending one notification ---------------------------------------------------------------------------
    def _send(self, job: Job, oid: str, attempt: Attempt, now: datetime,
              fired: tuple[dict, str | None] | None = None) -> Outcome:  # fmt: skip
        gated = self.channel.gate(job, attempt)
        if gated is not None:
            return gated
        status, entry = self.store.claim(oid, now, self._lease)
        if status == "missing":
            return Outcome.permanent(f"notification {oid} does not exist")
        assert entry is not None
        if status == "sent":
            return Outcome.delivered("already sent")
        if status == "dead":
            return Outcome.permanent(f"already dead-lettered: {entry.get('last_error')}")
        if status == "busy":
            return Outcome.wait(entry["lease_until"], "another instance is sending it")
        outcome = self.channel.send(job, oid, entry["payload"], entry["kind"], entry.get("created_at"))
        outcome = self.channel.answer(job, attempt, outcome)
        if outcome.kind is Kind.DELIVERED:
            self.store.settle(oid, entry, "sent")
            if fired is not None and job.config.resolve_on:
                self.store.fire(job, fired[0], fired[1], now)
        elif outcome.kind in (Kind.PERMANENT, Kind.FILTERED):  # filtered: the channel held it (no recipient)
            self.store.settle(oid, entry, "dead", outcome.reason)
        else:
            self.store.settle(oid, entry, "pending", outcome.reason)
        return outcome

    # -- timers ---------------------------------------------------------------------------------------------
    def _arm(
        self, job: Job, delivery: Delivery, group_id: str, due: datetime, *, force: bool = False
    ) -> None:
        """Put the group's timer at `due`, unless this instance has one pending for it at or before then."""
        at = due.timestamp()
        with self._lock:
            have = self._timers.get(group_id)
            if (
                not force
                and have is not None
                and have <= at + 0.001
                and have > self.clock().timestamp() - 1.0
            ):
                return
            if len(self._timers) >= MAX_TIMERS:
                self._timers.clear()
            self._timers[group_id] = at
        stamp = due.isoformat(timespec="milliseconds")
        notice = {"kind": "timer", "id": "tmr_" + hash_of(group_id, stamp)[:32], "group": group_id}
        timer = Delivery(event=delivery.event, job_id=job.id, job_version=job.version, aid=job.aid,
                         generation=job.generation, notice=notice)  # fmt: skip
        topic = self.timer_topic  # its own subscription: a timer never waits behind a backlog
        self.rt.delays.put(Release(topic, timer.to_json(), timer.attributes()), due, task_id(topic, timer.id))

    def _notice(self, delivery: Delivery, job: Job, attempt: Attempt) -> Outcome:
        assert delivery.notice is not None
        if delivery.notice.get("condition"):
            return self.watch.notice(delivery, job, attempt)
        gid = delivery.notice.get("group", "")
        now = self.clock()
        with self._lock:  # a timer due by now has fired: it no longer stands for a pending one
            if self._timers.get(gid, float("inf")) <= now.timestamp() + 0.001:
                del self._timers[gid]

        def render(items: list[dict], reason: str, oid: str) -> dict:
            return self.channel.digest(job, self._digest(job, items, reason), oid, gid)

        flushed = self.store.flush_group(job, gid, now, render)
        if flushed.dead_reason:
            return Outcome.permanent(flushed.dead_reason, counts_against_receiver=False)
        if flushed.outbox_id is None:
            if flushed.due is not None:
                return Outcome.wait(flushed.due, f"group due at {flushed.due.isoformat()}")
            return Outcome.filtered("nothing pending in the group")
        outcome = self._send(job, flushed.outbox_id, attempt, now)
        grouping = job.config.grouping
        if outcome.kind is Kind.DELIVERED and grouping is not None and gid != overflow_id(job):
            # events that joined while this flush ran: group_interval from now, as Alertmanager would
            self._arm(job, delivery, gid, now + self.rt.settings.scaled(grouping.group_interval), force=True)
        return outcome

    def _digest(self, job: Job, items: list[dict], reason: str) -> dict[str, Any]:
        grouping = job.config.grouping
        listed = items[: grouping.max_events if grouping else DEFAULT_MAX_EVENTS]
        return {
            "job": {"id": job.id, "name": job.name},
            "account": job.aid,
            "group": items[0].get("key") or {},
            "reason": reason,
            "count": len(items),
            "omitted": len(items) - len(listed),
            "items": [
                {"event": i["event"], "link": self._link(i["event"]), "repeat": bool(i.get("repeat"))}
                for i in listed
            ],  # fmt: skip
        }

    def dead_lettered(self, delivery: Delivery, job: Job, reason: str) -> None:
        """A notification's delivery failed for good: its outbox entry is dead (the group may go on)."""
        if job.config.condition() is not None:
            self.watch.dead_lettered(delivery, job, reason)
            return
        if delivery.notice is None:
            for oid in (
                hash_of("single", job.key, delivery.event.id),
                hash_of("resolve", job.key, delivery.event.id),
            ):
                self.store.mark_dead(oid, reason)
            return
        unsent = self.store.unsent_of(delivery.notice.get("group", "-"))
        if unsent:
            self.store.mark_dead(unsent, reason)

    # -- the safety net -------------------------------------------------------------------------------------
    def sweep(
        self,
        job_of_key: Callable[[str], Job | None],
        now: datetime | None = None,
        absence_jobs: Callable[[], list[Job]] | None = None,
    ) -> dict[str, int]:
        """Re-arm the timers of groups with events overdue by more than SWEEP_GRACE (a timer lost, e.g. by a
        restart of the local Cloud Tasks emulator); drop the groups of jobs gone or not alerting any more.
        A paused job's groups are kept as they are: its events were accepted, and once it is resumed the
        sweep re-arms them (or `resume` with replay sends the timers that fired while it was paused)."""
        from sysevents.events.model import new_event

        now = now or self.clock()
        report = {"rearmed": 0, "dropped_groups": 0, "kept_paused": 0}
        for gid, key in self.store.overdue(now - SWEEP_GRACE, self.sink_name).items():
            job = job_of_key(key)
            if job is not None and job.state is JobState.PAUSED and job.config.alerting():
                report["kept_paused"] += 1
                continue
            if job is None or job.state is not JobState.ACTIVE or not job.config.alerting():
                dropped = self.store.drop_group(gid)
                report["dropped_groups"] += 1
                log.warning("alerts: dropped group %s of job %s with %d pending event(s): job gone or not "
                            "alerting", gid, key, dropped)  # fmt: skip
                continue
            marker = new_event(job.aid, "work", job.id, "updated", actor="sysevents")
            self._arm(job, Delivery.of(marker, job), gid, now, force=True)
            report["rearmed"] += 1
        conditions = self.watch.sweep(job_of_key, absence_jobs() if absence_jobs else [], now, SWEEP_GRACE)
        report.update({k: v for k, v in conditions.items() if v})  # condition figures, when there are any
        return report
