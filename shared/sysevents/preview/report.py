"""A job previewed against the account's history: what it would have matched, delivered and notified.

`preview(job, history)` runs the job over past events exactly as ingest and the sinks would have: the same
match (sysevents.jobs.matching.matches, the definition the job index applies), the same loop protection
(sysevents.jobs.origin.deliverable), then, for an alerting job, the alert engine's decisions replayed
(sysevents.preview.simulate). An export job delivers every matched event; an alerting job sends the
notifications the replay finds.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from sysevents.alerts.policy import muted_by
from sysevents.auditlog.history import History
from sysevents.jobs import origin
from sysevents.jobs.matching import matches
from sysevents.jobs.model import Job
from sysevents.preview.simulate import AlertReplay, Notice, window_of

SAMPLE_SIZE = 20
LISTED_NOTICES = 100
DAY = timedelta(days=1)


def matched_events(job: Job, history: History) -> list:
    """The events of `history` the job would have received, oldest first."""
    f = job.filter
    out = []
    for event in history.events:
        if matches(f, event) and origin.deliverable(event, [job])[0]:
            out.append(event)
    return out


def preview(job: Job, history: History, *, scale: float = 1.0) -> dict[str, Any]:
    """The preview's report (the admin API's `JobPreview`)."""
    events = matched_events(job, history)
    report: dict[str, Any] = {
        "range": {"start": history.start.isoformat(), "end": history.end.isoformat()},
        "scanned": len(history.events),
        "truncated": history.truncated,
        "matched": len(events),
        "matched_per_day": per_day(events, history),
        "first_match": events[0].time.isoformat() if events else None,
        "last_match": events[-1].time.isoformat() if events else None,
        "sample": [e.to_cloudevent() for e in events[:SAMPLE_SIZE]],
        "alerting": job.config.alerting(),
    }
    if not job.config.alerting():
        report.update(deliveries=len(events), notifications=len(events))
        return report
    condition = job.config.condition()
    if condition is not None:
        report.update(conditions_report(job, condition, events, history, scale))
        return report
    replay = AlertReplay(job, scale)
    for event in events:
        replay.feed(event)
    notices = replay.finish(history.end)
    report.update(
        deliveries=len(notices),
        notifications=len(notices),
        notifications_by_kind=dict(Counter(n.kind for n in notices)),
        notifications_per_day=window_of(notices, history.start, DAY),
        filtered=dict(replay.filtered),
        waiting_at_end=replay.waiting,
        first_notifications=[n.to_dict() for n in notices[:LISTED_NOTICES]],
    )
    return report


def conditions_report(job: Job, condition, events: list, history: History, scale: float) -> dict[str, Any]:
    """A threshold or absence job: the firings and resolutions its condition would have made
    (sysevents.alerts.conditions.simulate), over the events it counts (not silenced or muted at their time;
    for an absence, those its `expect.filter` selects)."""
    from sysevents.alerts.conditions import Absence, simulate
    from sysevents.filters import compile_filter

    cfg, filtered, counted = job.config, Counter(), []
    expect = (
        compile_filter(condition.expect.filter)
        if isinstance(condition, Absence) and condition.expect.filter
        else None
    )
    for event in events:
        data = event.to_cloudevent()["data"]
        if isinstance(condition, Absence):  # an expected event re-arms it, silenced or not
            if expect is None or expect.matches(event):
                counted.append((event.time, data))
            else:
                filtered["does not match absence.expect.filter"] += 1
        elif why := muted_by(cfg.silences, cfg.mute_windows, data, event.time):
            filtered["silenced" if why.startswith("silenced") else "muted"] += 1
        else:
            counted.append((event.time, data))
    moves = simulate(condition, counted, history.start, history.end, scale)
    kinds = Counter("fired" if m.kind == "fire" else "resolved" for m in moves)
    notices = [
        Notice(m.at, "fired" if m.kind == "fire" else "resolved", m.count, dict(m.group)) for m in moves
    ]
    return {
        "deliveries": len(moves),
        "notifications": len(moves),
        "notifications_by_kind": dict(kinds),
        "notifications_per_day": window_of(notices, history.start, DAY),
        "filtered": dict(filtered),
        "waiting_at_end": 0,
        "first_notifications": [n.to_dict() for n in notices[:LISTED_NOTICES]],
    }


def per_day(events: list, history: History) -> dict[str, int]:
    """Matched events per day of the range (from its start): {day start (ISO 8601): count}."""
    start, out = history.start, Counter()
    for e in events:
        out[(start + DAY * int((e.time - start) / DAY)).isoformat()] += 1
    return dict(sorted(out.items()))
