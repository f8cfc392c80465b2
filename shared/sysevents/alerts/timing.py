"""When a group is due: Alertmanager's group_wait, group_interval and repeat_interval, as pure functions.

A group's timing state `g` (its `groups/{id}` document) holds `last_sent_at` (its last notification),
`last_event_at` (the newest event that notification carried) and `notified` ({alert: when it was last
notified}). Pending events carry `at` (when the event happened, clamped to when it was accepted: see
`start_of`) and `alert` (sysevents.alerts.policy.alert_key, hashed). `scale` is SYSEVENTS_TIME_SCALE: the
local stack plays every window faster; production is 1.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sysevents.alerts.policy import Grouping
from sysevents.config import scaled


def start_of(event_time: datetime, accepted_at: datetime, grouping: Grouping, scale: float = 1.0) -> datetime:
    """When an event starts its group's clock: when it happened, so that the pipeline's own latency is not
    added to group_wait; but never in the future (a producer's clock ahead), and an event older than
    group_wait (a backlog drained, a replay) starts it now: it waits for company, as a new one would."""
    if event_time > accepted_at or event_time < accepted_at - scaled(grouping.group_wait, scale):
        return accepted_at
    return event_time


def is_repeat(g: dict[str, Any], alert: str, at: datetime, repeat: timedelta) -> bool:
    notified_at = (g.get("notified") or {}).get(alert)
    return notified_at is not None and notified_at + repeat > at


def restarts(g: dict[str, Any] | None, first_at: datetime, repeat: timedelta) -> bool:
    """A group never notified, or quiet for longer than repeat_interval, starts over (group_wait again)."""
    if not g or g.get("last_sent_at") is None:
        return True
    last = g.get("last_event_at")
    return last is None or first_at - last > repeat


def event_due(
    g: dict[str, Any] | None, grouping: Grouping, alert: str, at: datetime, scale: float = 1.0
) -> datetime:
    """When a group with timing state `g` is due for an event of alert `alert` that came at `at`:
    group_wait after the first event of a new group; group_interval after the last notification for a new
    alert; and for an alert already notified, not before repeat_interval after that notification."""
    repeat = scaled(grouping.repeat_interval, scale)
    if restarts(g, at, repeat):
        return at + scaled(grouping.group_wait, scale)
    assert g is not None
    after_last = g["last_sent_at"] + scaled(grouping.group_interval, scale)
    if is_repeat(g, alert, at, repeat):
        return max(g["notified"][alert] + repeat, after_last)
    return after_last


def group_due(
    g: dict[str, Any] | None, grouping: Grouping, items: list[dict[str, Any]], scale: float = 1.0
) -> datetime:
    """When a group with these pending events is due: its earliest event's due time."""
    first_at = min(i["at"] for i in items)
    if restarts(g, first_at, scaled(grouping.repeat_interval, scale)):
        return first_at + scaled(grouping.group_wait, scale)
    return min(event_due(g, grouping, i["alert"], i["at"], scale) for i in items)
