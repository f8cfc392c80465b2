"""The alert engine's decisions replayed over past events: which notifications a job would have sent.

The live engine (sysevents.alerts.engine) decides each event as it arrives, with its state in Firestore.
This replays the same decisions, with the same pure functions (sysevents.alerts.policy for silences and
mute windows, sysevents.alerts.timing for group_wait, group_interval and repeat_interval, the rate limit's
fixed windows), over events in time order, with its state in memory, and with each event arriving when it
happened (the live engine's clock is the event's time plus the pipeline's latency, a second or so):

- an event a silence or mute window covers at its time is filtered;
- a `resolve_on` event resolves the subject's firing alert (a "resolved" notification) or is filtered;
- without grouping each event is one notification, unless the job's rate limit is reached in the current
  window: then it waits for the window's "held back" digest, sent when the window ends;
- with grouping each event joins its group, and the group is flushed into one digest when it is due
  (`group_due`), exactly as a flush decides: the timing state starts over after repeat_interval of quiet,
  and a flush over the rate limit moves the group's events into the held-back digest.

Cost: O(events x log(groups)) time, memory for the groups' pending events (bounded by the events read).
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sysevents.alerts.policy import alert_key, muted_by
from sysevents.alerts.timing import group_due, restarts
from sysevents.config import scaled
from sysevents.events.model import SystemEvent
from sysevents.jobs.model import Job

HELD = "held back"  # the key of the job's held-back digest among the groups


@dataclass(frozen=True)
class Notice:
    """One notification the job would have sent: when, of which kind ("single", "digest", "held_back",
    "resolved"), how many events it carries, and its group's key (grouping fields -> values)."""

    at: datetime
    kind: str
    events: int
    group: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "kind": self.kind, "events": self.events, "group": self.group}


@dataclass
class _Group:
    key: dict[str, str]
    items: list[dict[str, Any]] = field(default_factory=list)  # {"at", "alert", "subject"}, oldest first
    g: dict[str, Any] | None = None  # the timing state a flush keeps (last_sent_at, last_event_at, notified)
    due_at: datetime | None = None  # the held-back digest's due time (the rate window's end)
    scheduled: datetime | None = None  # when its next flush runs (never before the event that set it)


class AlertReplay:
    """The alert decisions of one job over events fed in time order (`feed`), then `finish(end)`."""

    def __init__(self, job: Job, scale: float = 1.0):
        self.job, self.cfg, self.scale = job, job.config, scale
        self.grouping = self.cfg.grouping
        self.limit = self.cfg.limit()
        self.repeat = scaled(self.grouping.repeat_interval if self.grouping else 0, scale)
        self.notices: list[Notice] = []
        self.filtered: Counter[str] = Counter()
        self.groups: dict[str, _Group] = {}
        self.firing: set[str] = set()
        self._rate: tuple[datetime | None, int] = (None, 0)
        self._heap: list[tuple[datetime, int, str]] = []
        self._seq = 0

    # -- events ------------------------------------------------------------------------------------------
    def feed(self, event: SystemEvent) -> None:
        at = event.time
        self._flush_until(at)
        data = event.to_cloudevent()["data"]
        subject = f"{event.subject_type.value}/{event.subject_id}"
        if why := muted_by(self.cfg.silences, self.cfg.mute_windows, data, at):
            self.filtered["silenced" if why.startswith("silenced") else "muted"] += 1
            return
        if event.verb.value in self.cfg.resolve_on:
            if subject in self.firing:
                self.firing.discard(subject)
                self.notices.append(Notice(at, "resolved", 1))
            else:
                self.filtered["nothing firing to resolve"] += 1
            return
        item = {"at": at, "alert": alert_key(data), "subject": subject}
        if self.grouping is None:
            if self._allowed(at):
                self._notify(Notice(at, "single", 1), [item])
            else:
                self._hold(at, [item])
            return
        key = self.grouping.key(data)
        gid = json.dumps(key, sort_keys=True)
        group = self.groups.setdefault(gid, _Group(key))
        group.items.append(item)
        self._schedule(gid, at)

    def finish(self, end: datetime) -> list[Notice]:
        """Flush what would have been due before `end`; events still waiting are not counted as sent."""
        self._flush_until(end, inclusive=False)
        return self.notices

    @property
    def waiting(self) -> int:
        """Events accepted into a group (or the held-back digest) whose notification was not due yet."""
        return sum(len(g.items) for g in self.groups.values())

    # -- groups and flushes ------------------------------------------------------------------------------
    def _due(self, gid: str) -> datetime | None:
        group = self.groups[gid]
        if not group.items:
            return None
        if gid == HELD:
            return group.due_at
        items = [{"at": i["at"], "alert": i["alert"]} for i in group.items]
        return group_due(group.g, self.grouping, items, self.scale)

    def _schedule(self, gid: str, now: datetime) -> None:
        """The group's next flush: when it is due, or now when that is past (a timer armed for a time gone
        by fires at once)."""
        due = self._due(gid)
        if due is not None:
            group = self.groups[gid]
            group.scheduled = max(due, now)
            self._seq += 1
            heapq.heappush(self._heap, (group.scheduled, self._seq, gid))

    def _flush_until(self, t: datetime, inclusive: bool = True) -> None:
        while self._heap and (self._heap[0][0] <= t if inclusive else self._heap[0][0] < t):
            at, _, gid = heapq.heappop(self._heap)
            group = self.groups[gid]
            if group.items and group.scheduled == at:  # else stale: the group was scheduled again
                self._flush(gid, at)

    def _flush(self, gid: str, now: datetime) -> None:
        group = self.groups[gid]
        items, group.items = group.items, []
        if gid == HELD:
            self._notify(Notice(now, "held_back", len(items)), items)
            return
        state = {} if restarts(group.g, items[0]["at"], self.repeat) else group.g or {}
        notified = {k: v for k, v in (state.get("notified") or {}).items() if v + self.repeat > now}
        repeats = {i["alert"] for i in items if i["alert"] in notified}
        if self._allowed(now):
            self._notify(Notice(now, "digest", len(items), group.key), items)
        else:
            self._hold(now, items)
        for item in items:
            if item["alert"] not in repeats:
                notified[item["alert"]] = now
        last = max(items[-1]["at"], state.get("last_event_at") or items[-1]["at"])
        group.g = {"last_sent_at": now, "last_event_at": last, "notified": notified}

    # -- the rate limit and what it holds back -------------------------------------------------------------
    def _allowed(self, now: datetime) -> bool:
        if self.limit is None:
            return True
        start, _ = self.limit.window(now)
        window, count = self._rate
        count = count if window == start else 0
        if count >= self.limit.max_notifications:
            return False
        self._rate = (start, count + 1)
        return True

    def _hold(self, now: datetime, items: list[dict[str, Any]]) -> None:
        assert self.limit is not None
        held = self.groups.setdefault(HELD, _Group({}))
        _, window_end = self.limit.window(now)
        if not held.items:
            held.due_at = window_end
        held.items.extend(items)
        self._schedule(HELD, now)

    def _notify(self, notice: Notice, items: list[dict[str, Any]]) -> None:
        self.notices.append(notice)
        if self.cfg.resolve_on:
            self.firing.update(i["subject"] for i in items)


def window_of(notices: list[Notice], start: datetime, bucket: timedelta) -> dict[str, int]:
    """Notifications per bucket (e.g. per day) from `start`: {bucket start (ISO 8601): count}."""
    out: Counter[str] = Counter()
    for n in notices:
        k = start + bucket * int((n.at - start) / bucket)
        out[k.isoformat()] += 1
    return dict(sorted(out.items()))
