"""Flushing an alert group into one notification, in one Firestore transaction, in three stages:

- **read** the group's timing state, its pending events (found outside the transaction and then read in it
  by reference: the transaction locks those documents only, not the query's range, so events accepted into
  the group meanwhile are never blocked or aborted by a flush -- they go in the next one), and the job's
  notification count when it has a rate limit;
- **compute** whether the group is due (sysevents.alerts.timing), which events are repeats, whether the
  rate limit allows a notification now, and the group's next timing state;
- **write** the notification into the outbox (rendered once; a template error records it dead at once),
  delete the events it carries (or move them to the job's held-back digest when over the rate limit), mark
  their alerts firing (`resolve_on`), and store the group's state with its `unsent` notification.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sysevents.alerts.ids import hash_of, overflow_id, subject_of
from sysevents.alerts.outbox import job_fields
from sysevents.alerts.timing import group_due, is_repeat, restarts
from sysevents.config import scaled
from sysevents.jobs.model import Job


@dataclass(frozen=True)
class Flushed:
    """What a flush did: `outbox_id` of the notification to send (a new one, or the group's unsent one);
    `due` when nothing is due yet; `dead_reason` when its template failed (recorded dead at once)."""

    outbox_id: str | None
    due: datetime | None = None
    dead_reason: str | None = None
    kind: str = "digest"


Render = Callable[[list[dict], str, str], dict]
"""(pending events, reason "grouped" | "rate_limited", outbox id) -> the notification's payload."""


@dataclass
class Flush:
    """One flush of one group: what it read and what it decided (see the module docstring)."""

    store: Any  # the AlertStore (sysevents.alerts.store), whose collections and documents it writes
    job: Job
    group_id: str
    now: datetime
    found: list[Any]  # references of the group's pending events, found before the transaction
    held_group: bool  # the job's held-back digest (over its rate limit), not a grouping group
    g: dict[str, Any] | None = None  # the group's timing state
    docs: list[tuple[Any, dict]] = field(default_factory=list)  # (reference, pending event), oldest first
    allowed: bool = True  # the rate limit lets a notification go now
    rate_write: dict | None = None

    @property
    def grouping(self):
        return self.job.config.grouping

    @property
    def repeat(self):
        return scaled(self.grouping.repeat_interval if self.grouping else 0, self.store.settings.time_scale)

    @property
    def items(self) -> list[dict]:
        return [d for _, d in self.docs]

    # -- read --------------------------------------------------------------------------------------------
    def read(self, t) -> None:
        snap = self.store.groups.document(self.group_id).get(transaction=t)
        self.g = snap.to_dict() if snap.exists else None
        found = t.get_all(self.found) if self.found else []
        self.docs = sorted(
            ((s.reference, s.to_dict()) for s in found if s.exists), key=lambda d: (d[1]["at"], d[0].id)
        )

    def read_rate(self, t) -> None:
        if not self.held_group:
            rate_ref = self.store.rates.document(self.job.key)
            self.allowed, self.rate_write = self.store.rate_allows(t, rate_ref, self.job, self.now)

    # -- compute -------------------------------------------------------------------------------------------
    def due(self) -> datetime:
        items = self.items
        if self.held_group or self.grouping is None:
            return min(i["due_at"] for i in items)
        return group_due(self.g, self.grouping, items, self.store.settings.time_scale)

    def state(self) -> dict[str, Any]:
        """The timing state this notification builds on: none when the group starts over."""
        restart = (
            self.held_group or self.grouping is None or restarts(self.g, self.items[0]["at"], self.repeat)
        )
        return {} if restart else self.g or {}

    def mark_repeats(self, state: dict[str, Any]) -> None:
        for item in self.items:
            if not self.held_group:
                item["repeat"] = bool(item.get("alert")) and is_repeat(
                    state, item["alert"], item["at"], self.repeat
                )

    def next_state(self, state: dict[str, Any], oid: str | None, dead: str | None) -> dict[str, Any]:
        items, now = self.items, self.now
        notified = {k: v for k, v in (state.get("notified") or {}).items() if v + self.repeat > now}
        for item in items:
            if not item["repeat"] and item.get("alert"):
                notified[item["alert"]] = now
        return {
            **job_fields(self.job), "key": items[0].get("key") or {}, "seq": (self.g or {}).get("seq", 0) + 1,
            "last_sent_at": now, "last_event_at": max(items[-1]["at"], state.get("last_event_at") or items[-1]["at"]),
            "notified": notified, "unsent": oid if oid and not dead else None,
        }  # fmt: skip

    # -- write ---------------------------------------------------------------------------------------------
    def write_notification(self, t, render: Render) -> tuple[str, str | None]:
        """The notification into the outbox, its events out of the group; (outbox id, dead reason)."""
        from sysevents.templates import TemplateError

        store, job, items = self.store, self.job, self.items
        if self.rate_write:
            t.set(store.rates.document(job.key), self.rate_write)
        oid = hash_of("digest", job.key, self.group_id, str((self.g or {}).get("seq", 0)))
        dead = None
        try:
            payload = render(items, "rate_limited" if self.held_group else "grouped", oid)
        except TemplateError as err:
            dead, payload = f"digest template error: {err}", {}
        entry = store.outbox_entry(job, "digest", payload, self.now, event_ids=[i["event"]["id"] for i in items],
                             group_id=self.group_id)  # fmt: skip
        if dead:
            entry.update(state="dead", last_error=dead)
        t.create(store.outbox.document(oid), entry)
        for ref, _ in self.docs:
            t.delete(ref)
        if job.config.resolve_on:
            for item in items:
                t.set(store.firing.document(hash_of(job.key, subject_of(item["event"]))),
                      store.firing_doc(job, item["event"], self.group_id, self.now))  # fmt: skip
        return oid, dead

    def write_held_back(self, t) -> None:
        """Over the rate limit: the events move to the job's held-back digest, sent when the window ends."""
        _, window_end = self.job.config.limit().window(self.now)
        held = overflow_id(self.job)
        for ref, item in self.docs:
            t.update(ref, {"group_id": held, "due_at": window_end, "key": {}, "repeat": item["repeat"]})

    def run(self, t, render: Render) -> Flushed:
        """The whole flush in transaction `t`."""
        self.read(t)
        if self.g and self.g.get("unsent"):
            return Flushed(self.g["unsent"])
        if not self.docs:
            return Flushed(None)
        due = self.due()
        if due > self.now:
            return Flushed(None, due=due)
        state = self.state()
        self.mark_repeats(state)
        self.read_rate(t)
        oid = dead = None
        if self.allowed:
            oid, dead = self.write_notification(t, render)
        else:
            self.write_held_back(t)
        t.set(self.store.groups.document(self.group_id), self.next_state(state, oid, dead))
        return Flushed(oid, dead_reason=dead)
