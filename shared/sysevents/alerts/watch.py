"""Conditions live: the alert engine's half for jobs with a `threshold` or an `absence`
(sysevents.alerts.conditions decides; sysevents.alerts.condstore keeps the state in Firestore).

- **threshold**: each event of the job is counted once (`counts`, created if absent: a redelivery counts
  nothing more), then the group's count in the window is one aggregation query; when it reaches the
  count, one transaction marks the group firing and creates its notification (a digest of the events in
  the window), which is then sent. A firing group's timer on the delay queue is due when the oldest
  events that made the count leave the window: it resolves the group, or waits until the next such time.
- **absence**: armed when the job is saved (and by the sweep for a job it finds unarmed): the
  condition's state holds the deadline (`check_at`) and a timer on the delay queue is put for it. Each
  expected event moves the deadline (the timer, finding it later, waits again), and resolves the
  condition if it fired. The timer at the deadline is what fires it: no event is involved.
Silences and mute windows apply: a threshold counts no muted event, and an absence whose alert is muted
at its deadline fires without a notification (and so resolves without one).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sysevents.alerts.conditions import (
    Absence,
    Threshold,
    armed_deadline,
    deadline_after_event,
    human,
    threshold_step,
)
from sysevents.alerts.condstore import ConditionStore, cond_id_of
from sysevents.alerts.ids import hash_of, summary
from sysevents.alerts.policy import muted_by
from sysevents.delivery.message import Delivery
from sysevents.delivery.outcome import Kind, Outcome
from sysevents.filters import compile_filter
from sysevents.jobs.model import Job, JobState
from sysevents.transport.delays import Release, task_id

Send = Callable[[Job, str, Any, datetime], Outcome]
"""The engine's send of an outbox entry: (job, outbox id, attempt, now) -> outcome."""


def _iso(t: datetime | None) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if t else "never"


def within_of(settings, cond: Threshold | Absence) -> timedelta | None:
    return None if cond.within is None else settings.scaled(cond.within)


def put_timer(rt, job: Job, topic: str, cond_id: str, kind: str, at: datetime) -> None:
    """The condition's timer on the delay queue at `at` (one task per condition and time)."""
    from sysevents.events.model import new_event

    stamp = at.isoformat(timespec="milliseconds")
    notice = {
        "kind": "timer",
        "id": "tmr_" + hash_of(cond_id, stamp)[:32],
        "group": cond_id,
        "condition": kind,
    }
    marker = new_event(job.aid, "work", job.id, "updated", actor="sysevents")
    timer = Delivery(event=marker, job_id=job.id, job_version=job.version, aid=job.aid,
                     generation=job.generation, notice=notice)  # fmt: skip
    rt.delays.put(Release(topic, timer.to_json(), timer.attributes()), at, task_id(topic, timer.id))


def arm(rt, job: Job, now: datetime | None = None) -> dict[str, Any] | None:
    """Arm an active absence job (when it is saved, or first seen by the sweep): its state with its first
    deadline, and the timer for it. A saved change of its window moves the deadline. Returns the state."""
    cond = getattr(job.config, "absence", None)
    if cond is None or job.state is not JobState.ACTIVE:
        return None
    now = now or datetime.now(UTC)
    store, within = ConditionStore(rt.alert_store), within_of(rt.settings, cond)
    cid = cond_id_of(job, {})
    state = store.state(cid)
    if state is None:
        doc = {"kind": "absence", "key": {}, "firing": False, "since": None, "last_seen": None,
               "armed_at": now, "check_at": armed_deadline(cond, within, now), "seq": 0, "unsent": None}  # fmt: skip
        store.create_state(job, cid, doc, now)
        state = store.state(cid) or doc
    elif not state.get("firing"):
        seen = state.get("last_seen")
        due = (
            deadline_after_event(cond, within, seen)
            if seen
            else armed_deadline(cond, within, state["armed_at"])
        )
        if due != state.get("check_at"):
            state = (
                store.change(job, cid, now, lambda old: ({**(old or state), "check_at": due}, None)) or state
            )
    if state.get("check_at") is not None:
        put_timer(
            rt, job, rt.topology.sinks[job.sink].timer_topic or job.sink, cid, "absence", state["check_at"]
        )
    return state


class Watch:
    def __init__(
        self, rt, sink: str, channel, send: Send, link: Callable[[dict], str], timer_topic: str, clock
    ):
        self.rt, self.sink, self.channel, self._send, self.link = rt, sink, channel, send, link
        self.timer_topic, self.clock = timer_topic, clock
        self._store: ConditionStore | None = None

    @property
    def store(self) -> ConditionStore:
        if self._store is None:
            self._store = ConditionStore(self.rt.alert_store)
        return self._store

    def _timer(self, job: Job, cid: str, kind: str, at: datetime) -> None:
        put_timer(self.rt, job, self.timer_topic, cid, kind, at)

    def _flush_unsent(self, job: Job, cid: str, state: dict | None, attempt, now: datetime) -> Outcome | None:
        """Send the condition's notification that was made and not sent (a crash, or a retry)."""
        oid = (state or {}).get("unsent")
        if not oid:
            return None
        outcome = self._send(job, oid, attempt, now)
        if outcome.kind in (Kind.DELIVERED, Kind.PERMANENT, Kind.FILTERED):
            self.store.sent(cid, oid)
        return outcome

    def _digest(self, job: Job, kind: str, text: str, items: list[dict], key: dict, extra: dict) -> dict:
        cap = 20
        return {"job": {"id": job.id, "name": job.name}, "account": job.aid, "group": key, "reason": kind,
                "count": len(items), "omitted": max(0, len(items) - cap),
                "items": [{"event": e, "link": self.link(e), "repeat": False} for e in items[:cap]],
                "condition": {"kind": kind, "summary": text, **extra}}  # fmt: skip

    def _alert(self, job: Job, cid: str, seq: int, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
        """The alert a condition fired, as an event envelope (what resolutions and templates refer to)."""
        return {"specversion": "1.0", "id": "cond_" + hash_of(cid, str(seq))[:24],
                "source": f"//sysevents/accounts/{job.aid}", "type": "io.sysevents.alert.condition",
                "subject": f"{data.get('subject_type')}/{data.get('subject_id')}", "time": _iso(at),
                "datacontenttype": "application/json", "data": {"aid": job.aid, **data}}  # fmt: skip

    # -- events ------------------------------------------------------------------------------------------
    def deliver(self, delivery: Delivery, job: Job, attempt) -> Outcome:
        cond = job.config.condition()
        if isinstance(cond, Threshold):
            return self._count(delivery, job, cond, attempt)
        assert isinstance(cond, Absence)
        return self._seen(delivery, job, cond, attempt)

    def _count(self, delivery: Delivery, job: Job, cond: Threshold, attempt) -> Outcome:
        ce, now = delivery.event.to_cloudevent(), self.clock()
        cfg = job.config
        why = muted_by(cfg.silences, cfg.mute_windows, ce["data"], now)
        if why:
            return Outcome.filtered(why)
        within = self.rt.settings.scaled(cond.within)
        at = min(delivery.event.time, now)
        if at <= now - within:
            return Outcome.filtered(f"happened before the threshold's window of {human(cond.within)}")
        key = cond.key(ce["data"])
        cid = cond_id_of(job, key)
        counted = self.store.count_event(job, cid, ce, at, within)
        state = self.store.state(cid)
        sent = self._flush_unsent(job, cid, state, attempt, now)
        if sent is not None:
            return sent
        if state and state.get("firing"):
            if not counted and state.get("check_at"):  # a redelivery: its timer may not have been put
                self._timer(job, cid, "threshold", state["check_at"])
            return Outcome.accepted(f"counted; firing since {_iso(state.get('since'))}")
        n = self.store.count_in(cid, now, within)
        if n < cond.count:
            return Outcome.accepted(f"counted: {n} of {cond.count} within {human(cond.within)}")
        return self._fire_threshold(job, cond, cid, key, state, attempt, now, within)

    def _fire_threshold(self, job, cond: Threshold, cid, key, state, attempt, now, within) -> Outcome:
        newest = self.store.newest(cid, now, within, cond.count)
        step = threshold_step([d["at"] for d in newest], cond.count, within, firing=False)
        if step.action != "fire":
            return Outcome.accepted("counted; the window moved on")
        seq = (state or {}).get("seq", 0) + 1
        events = [d["event"] for d in newest]
        last = events[-1]["data"]
        where = ", ".join(f"{k}={v}" for k, v in key.items())
        text = (f"{len(events)} {last.get('subject_type')} {last.get('verb')} events within {human(cond.within)}"
                f"{' for ' + where if where else ''} in account {job.aid} (threshold {cond.count})")  # fmt: skip
        alert = self._alert(job, cid, seq, now, {"subject_type": last.get("subject_type"),
                            "subject_id": key.get("subject_id", last.get("subject_id")), "verb": last.get("verb"),
                            "notes": text, "condition": "threshold", "condition_text": f"fired at {_iso(now)}"})  # fmt: skip
        oid = hash_of("condition", job.key, cid, str(seq))
        payload = self.channel.digest(job, self._digest(job, "threshold", text, events, key, {"count": cond.count,
                                      "within": cond.within}), oid, cid)  # fmt: skip

        def change(old):
            if old and (old.get("firing") or old.get("seq", 0) + 1 != seq):
                return None, None  # another delivery fired it
            new = {"kind": "threshold", "key": key, "firing": True, "since": now, "check_at": step.check_at,
                   "seq": seq, "count": len(events), "alert": alert}  # fmt: skip
            return new, (oid, "digest", payload)

        new = self.store.change(job, cid, now, change)
        if step.check_at is not None:
            self._timer(job, cid, "threshold", step.check_at)
        return self._flush_unsent(job, cid, new, attempt, now) or Outcome.accepted("counted; firing")

    def _seen(self, delivery: Delivery, job: Job, cond: Absence, attempt) -> Outcome:
        ce, now = delivery.event.to_cloudevent(), self.clock()
        if cond.expect.filter and not expect_matches(cond.expect.filter, delivery.event):
            return Outcome.filtered("does not match absence.expect.filter")
        at = min(delivery.event.time, now)
        within = within_of(self.rt.settings, cond)
        cid = cond_id_of(job, {})
        state = self.store.state(cid)
        sent = self._flush_unsent(job, cid, state, attempt, now)
        if sent is not None:
            return sent
        if state and not state.get("firing") and state.get("last_seen") and state["last_seen"] >= at:
            return Outcome.accepted(f"expected event seen; next deadline {_iso(state.get('check_at'))}")
        firing = bool(state and state.get("firing"))
        due = deadline_after_event(cond, within, at, late=firing)
        seq = (state or {}).get("seq", 0) + 1
        made = None
        if firing and state.get("alert"):
            oid = hash_of("condition", job.key, cid, str(seq))
            made = (oid, "resolve", self.channel.resolved(job, summary(ce), state["alert"], oid, cid))

        def change(old):
            if old is None:
                return {"kind": "absence", "key": {}, "firing": False, "since": None, "last_seen": at,
                        "armed_at": now, "check_at": due, "seq": 0}, None  # fmt: skip
            if old.get("firing"):
                if old.get("seq", 0) + 1 != seq:
                    return None, None
                return {**old, "firing": False, "since": None, "last_seen": at, "check_at": due, "seq": seq,
                        "resolved_at": now}, made  # fmt: skip
            return {
                **old,
                "last_seen": max(at, old.get("last_seen") or at),
                "check_at": max(due, old["check_at"] or due),
            }, None

        new = self.store.change(job, cid, now, change)
        if (
            state is None or firing
        ):  # no timer was pending: put one (a pending one, finding the deadline later, waits)
            self._timer(job, cid, "absence", due)
        return self._flush_unsent(job, cid, new, attempt, now) or Outcome.accepted(
            f"expected event seen; next deadline {_iso(due)}"
        )

    # -- timers ------------------------------------------------------------------------------------------
    def notice(self, delivery: Delivery, job: Job, attempt) -> Outcome:
        assert delivery.notice is not None
        cid, now = delivery.notice.get("group", ""), self.clock()
        cond = job.config.condition()
        state = self.store.state(cid)
        if cond is None or state is None or state.get("kind") != delivery.notice.get("condition"):
            return Outcome.filtered("the job has no such condition any more")
        sent = self._flush_unsent(job, cid, state, attempt, now)
        if sent is not None:
            return sent
        if state.get("check_at") is None:
            return Outcome.filtered(f"not armed (firing since {_iso(state.get('since'))})")
        if now < state["check_at"]:
            return Outcome.wait(state["check_at"], f"condition due at {_iso(state['check_at'])}")
        if isinstance(cond, Threshold):
            return self._recheck(job, cond, cid, state, attempt, now)
        return self._deadline(job, cond, cid, state, attempt, now)

    def _recheck(self, job: Job, cond: Threshold, cid: str, state: dict, attempt, now: datetime) -> Outcome:
        within = self.rt.settings.scaled(cond.within)
        newest = self.store.newest(cid, now, within, cond.count)
        step = threshold_step([d["at"] for d in newest], cond.count, within, firing=bool(state.get("firing")))
        seq = state.get("seq", 0) + 1
        if step.action != "resolve":
            if step.check_at is None:
                return Outcome.filtered("not firing")
            self.store.change(
                job, cid, now, lambda old: ({**(old or state), "check_at": step.check_at}, None)
            )
            return Outcome.wait(step.check_at, f"still {len(newest)} or more; looking again then")
        text = f"below the threshold of {cond.count} within {human(cond.within)} again"
        alert = state.get("alert") or {}
        d = alert.get("data") or {}
        subject = f"{d.get('subject_type')} {d.get('subject_id')}"
        resolving = {**alert, "id": "cond_" + hash_of(cid, str(seq))[:24], "time": _iso(now),
                     "data": {**(alert.get("data") or {}), "notes": f"{subject}: {text}"}}  # fmt: skip
        oid = hash_of("condition", job.key, cid, str(seq))
        payload = self.channel.resolved(job, resolving, alert, oid, cid)

        def change(old):
            if not old or not old.get("firing") or old.get("seq", 0) + 1 != seq:
                return None, None
            return {**old, "firing": False, "since": None, "check_at": None, "seq": seq, "resolved_at": now}, (
                oid, "resolve", payload)  # fmt: skip

        new = self.store.change(job, cid, now, change)
        return self._flush_unsent(job, cid, new, attempt, now) or Outcome.filtered("resolved elsewhere")

    def _deadline(self, job: Job, cond: Absence, cid: str, state: dict, attempt, now: datetime) -> Outcome:
        if state.get("firing"):
            return Outcome.filtered(f"firing since {_iso(state.get('since'))}")
        deadline, seen, seq = state["check_at"], state.get("last_seen"), state.get("seq", 0) + 1
        what = describe_expect(job)
        text = f"No {what} {cond.describe()} in account {job.aid}; last seen {_iso(seen)}"
        alert = self._alert(job, cid, seq, deadline, {**expect_subject(job), "notes": text, "condition": "absence",
                            "last_seen": _iso(seen), "condition_text": f"absent since {_iso(seen)}"})  # fmt: skip
        muted = muted_by(job.config.silences, job.config.mute_windows, alert["data"], now)
        oid = hash_of("condition", job.key, cid, str(seq))
        made = None
        if not muted:
            digest = self._digest(
                job, "absence", text, [], {}, {"last_seen": _iso(seen), "deadline": _iso(deadline)}
            )
            made = (oid, "digest", self.channel.digest(job, digest, oid, cid))

        def change(old):
            if not old or old.get("firing") or old.get("check_at") != deadline:
                return None, None  # an expected event moved it, or another timer fired it
            return {**old, "firing": True, "since": deadline, "check_at": None, "seq": seq,
                    "alert": None if muted else alert}, made  # fmt: skip

        new = self.store.change(job, cid, now, change)
        if muted:
            return Outcome.filtered(f"absent since {_iso(seen)}; not notified: {muted}")
        return self._flush_unsent(job, cid, new, attempt, now) or Outcome.filtered("fired elsewhere")

    def dead_lettered(self, delivery: Delivery, job: Job, reason: str) -> None:
        """A delivery that was sending a condition's notification failed for good: that notification is dead
        (the condition's next one may go)."""
        cond = job.config.condition()
        if delivery.notice is not None:
            cid = delivery.notice.get("group", "")
        elif isinstance(cond, Threshold):
            cid = cond_id_of(job, cond.key(delivery.event.to_cloudevent()["data"]))
        else:
            cid = cond_id_of(job, {})
        oid = (self.store.state(cid) or {}).get("unsent")
        if oid:
            self.rt.alert_store.mark_dead(oid, reason)
            self.store.sent(cid, oid)

    # -- the safety net and the job's view ---------------------------------------------------------------
    def sweep(self, job_of_key: Callable[[str], Job | None], jobs: list[Job], now: datetime, grace) -> dict:
        """Arm absence jobs never armed; put again the timers of conditions overdue by `grace` (lost)."""
        report = {"armed": 0, "condition_timers": 0, "dropped_conditions": 0}
        for job in jobs:
            if job.sink != self.sink or job.state is not JobState.ACTIVE:
                continue
            if self.store.state(cond_id_of(job, {})) is None and arm(self.rt, job, now) is not None:
                report["armed"] += 1
        for doc in self.store.due(now - grace, self.sink):
            job = job_of_key(doc["job_key"])
            if job is None or job.config.condition() is None:  # gone, or no condition any more
                self.store.conditions.document(doc["cond_id"]).delete()
                report["dropped_conditions"] += 1
                continue
            if job.state is not JobState.ACTIVE:  # paused: armed again when it is resumed (admin API)
                continue
            self._timer(job, doc["cond_id"], doc["kind"], now)
            report["condition_timers"] += 1
        return report


def absence_job(job: Job) -> bool:
    """Jobs the sweep arms if they were never armed (a module-level function: the job cache keeps one
    listing per `where`)."""
    return getattr(job.config, "absence", None) is not None


def view(rt, job: Job) -> list[dict[str, Any]]:
    """The condition's state for the job's view: per group, armed or firing, since, last seen, next check."""
    if getattr(job.config, "threshold", None) is None and not absence_job(job):
        return []
    out = []
    for d in ConditionStore(rt.alert_store).of_job(job):
        out.append({"group": d.get("key") or {}, "state": "firing" if d.get("firing") else "armed",
                    "firing_since": _iso(d["since"]) if d.get("since") else None,
                    "last_seen": _iso(d["last_seen"]) if d.get("last_seen") else None,
                    "next_check": _iso(d["check_at"]) if d.get("check_at") else None})  # fmt: skip
    return out


def expect_subject(job: Job) -> dict[str, str]:
    """Subject type, id and verb of an absence alert: the expected events' (when there is one of each)."""
    sources = job.config.system_event_sources or {}
    kind = next(iter(sources), "work")
    ids = sources.get(kind, ()) if sources else ()
    verbs = sorted(v.value for v in job.config.verbs())
    return {"subject_type": str(kind), "subject_id": ids[0] if len(ids) == 1 else job.id, "verb": verbs[0]}


def describe_expect(job: Job) -> str:
    """ "completed from work nightly-export" """
    verbs = "/".join(sorted(v.value for v in job.config.verbs()))
    sources = job.config.system_event_sources
    if not sources:
        return f"{verbs} event"
    where = "; ".join(f"{k} {', '.join(ids)}" if ids else f"any {k}" for k, ids in sources.items())
    return f"{verbs} from {where}"


def expect_matches(text: str, event) -> bool:
    """The CEL part of `absence.expect` (sysevents.filters, compiled once per text); a missing field is no
    match."""
    return compile_filter(text).matches(event)
