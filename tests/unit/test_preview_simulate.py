"""The alert engine's decisions replayed over past events (sysevents.preview.simulate), and the preview
report over a history (sysevents.preview.report): pure, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from sysevents.auditlog.history import History, InvalidRange, bounded_range
from sysevents.events.model import new_event
from sysevents.jobs.registry import job_from_dict
from sysevents.preview.report import preview
from sysevents.preview.simulate import AlertReplay

AID = "acct-1"
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def job(**config):
    config.setdefault("system_event_type", "failed")
    return job_from_dict(
        {
            "workflow": "webhook_system_events",
            "config": {"webhook_url": "https://hooks.example.com/x", **config},
        },
        job_id="j-1",
        aid=AID,
    )


def ev(minutes: float, subject: str = "w-1", verb: str = "failed", **data):
    return new_event(AID, "work", subject, verb, time=T0 + timedelta(minutes=minutes), **data)


def replay(j, events, end_minutes: float = 10_000):
    r = AlertReplay(j)
    for e in events:
        r.feed(e)
    return r, r.finish(T0 + timedelta(minutes=end_minutes))


GROUPED = {
    "grouping": {"by": ["subject_id"], "group_wait": 60, "group_interval": 600, "repeat_interval": 3600}
}


def test_a_burst_within_group_wait_is_one_digest_per_group():
    events = [ev(0.1 * i, "w-1") for i in range(5)] + [ev(0.2, "w-2")]
    _, notices = replay(job(**GROUPED), events)
    assert [(n.kind, n.events, n.group) for n in notices] == [
        ("digest", 5, {"subject_id": "w-1"}),
        ("digest", 1, {"subject_id": "w-2"}),
    ]
    assert notices[0].at == T0 + timedelta(seconds=60)  # group_wait from the first event
    assert notices[1].at == T0 + timedelta(minutes=0.2, seconds=60)


def test_later_events_wait_group_interval_repeats_wait_repeat_interval_and_a_quiet_group_starts_over():
    by_type = {"grouping": {**GROUPED["grouping"], "by": ["subject_type"]}}
    events = [ev(0, "w-1"), ev(3, "w-2"), ev(4, "w-3")]  # new alerts after the group's first digest
    _, notices = replay(job(**by_type), events + [ev(300, "w-1")])  # 300: quiet for > repeat_interval
    assert [(n.at - T0, n.events) for n in notices] == [
        (timedelta(seconds=60), 1),
        (timedelta(seconds=60 + 600), 2),  # group_interval after the last notification
        (timedelta(minutes=300, seconds=60), 1),  # group_wait again
    ]
    _, notices = replay(job(**by_type), [ev(0, "w-1"), ev(5, "w-1")])  # the same alert again: a repeat
    assert [(n.at - T0, n.events) for n in notices] == [
        (timedelta(seconds=60), 1),
        (timedelta(seconds=60 + 3600), 1),  # not before repeat_interval after its notification
    ]


def test_without_grouping_each_event_is_one_notification_until_the_rate_limit_holds_them_back():
    j = job(notify_limit={"max_notifications": 2, "per_seconds": 3600})
    events = [ev(i) for i in range(5)]  # 09:00-09:04, one window 09:00-10:00
    r, notices = replay(j, events)
    assert [n.kind for n in notices] == ["single", "single", "held_back"]
    assert notices[2].events == 3 and notices[2].at == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    _, before_window_end = replay(j, events, end_minutes=59)
    assert [n.kind for n in before_window_end] == ["single", "single"]  # the digest is not due yet


def test_silences_mute_windows_and_resolutions():
    j = job(
        silences=[{"matchers": {"subject_id": "w-9"}, "ends_at": "2027-01-01T00:00:00Z"}],
        mute_windows=[{"weekdays": ["sunday"]}],
        resolve_on=["completed"],
    )
    events = [
        ev(0, "w-1"),
        ev(1, "w-9"),  # silenced
        ev(2, "w-2", "completed"),  # nothing firing for w-2
        ev(3, "w-1", "completed"),  # resolves w-1
        new_event(AID, "work", "w-1", "failed", time=datetime(2026, 12, 6, 12, tzinfo=UTC)),  # a Sunday
    ]
    r, notices = replay(j, events, end_minutes=60 * 24 * 30)
    assert [n.kind for n in notices] == ["single", "resolved"]
    assert dict(r.filtered) == {"silenced": 1, "nothing firing to resolve": 1, "muted": 1}


def test_report_counts_matches_and_notifications():
    j = job(**GROUPED)
    events = [ev(0.1 * i, "w-1") for i in range(3)] + [ev(0.1, "w-1", "completed"), ev(0.2, "w-2")]
    events.sort(key=lambda e: e.time)
    past = History(events, False, T0 - timedelta(days=1), T0 + timedelta(days=1))
    report = preview(j, past)
    assert report["scanned"] == 5 and report["matched"] == 4 and report["alerting"] is True
    assert report["notifications"] == 2 and report["notifications_by_kind"] == {"digest": 2}
    assert sum(report["matched_per_day"].values()) == 4 and len(report["sample"]) == 4
    export = preview(job(), past)
    assert export["alerting"] is False and export["deliveries"] == export["notifications"] == 4


def test_ranges_are_bounded():
    now = T0
    assert bounded_range(None, None, now=now, default_days=7, max_days=31) == (now - timedelta(days=7), now)
    for start, end in ((now, now - timedelta(hours=1)), (now - timedelta(days=40), None)):
        try:
            bounded_range(start, end, now=now, default_days=7, max_days=31)
        except InvalidRange as err:
            assert err.field == "start"
        else:
            raise AssertionError(f"{start}..{end} was accepted")
    assert bounded_range(None, now + timedelta(days=3), now=now, default_days=1, max_days=31)[1] == now


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 600),
            st.sampled_from(["w-1", "w-2", "w-3"]),
            st.sampled_from(["failed", "completed"]),
        ),
        max_size=40,
    ),
    st.booleans(),
    st.sampled_from([None, 1, 3]),
    st.integers(600, 1400),
)
def test_every_event_is_notified_once_filtered_or_still_waiting(raw, grouped, max_notifications, end):
    """Conservation: each matched event is in exactly one notification, filtered, or waiting at the end."""
    config = dict(GROUPED) if grouped else {}
    config.update(system_event_multiple_types=["failed", "completed"], resolve_on=[])
    if max_notifications:
        config["notify_limit"] = {"max_notifications": max_notifications, "per_seconds": 3600}
    events = sorted((ev(m, s, v) for m, s, v in raw), key=lambda e: e.time)
    r, notices = replay(job(**config), events, end_minutes=end)
    assert sum(n.events for n in notices) + sum(r.filtered.values()) + r.waiting == len(events)
    assert all(a.at <= b.at for a, b in zip(notices, notices[1:], strict=False))


def test_a_threshold_job_previews_its_firings_and_resolutions():
    j = job(threshold={"count": 3, "within": "30m", "by": ["subject_id"]})
    events = [ev(m, "w-1") for m in (0, 5, 10)] + [ev(1, "w-2"), ev(2, "w-2")] + [ev(120, "w-1")]
    events.sort(key=lambda e: e.time)
    report = preview(j, History(events, False, T0, T0 + timedelta(hours=3)))
    assert report["matched"] == 6
    assert report["notifications_by_kind"] == {"fired": 1, "resolved": 1}  # w-1 only, and once
    fired = report["first_notifications"][0]
    assert fired["group"] == {"subject_id": "w-1"} and fired["at"] == (T0 + timedelta(minutes=10)).isoformat()


def test_an_absence_job_previews_each_deadline_missed():
    j = job(absence={"expect": {"filter": 'event.data.notes == "nightly"'}, "within": "2h"})
    events = [ev(0, notes="nightly"), ev(60, notes="other"), ev(300, notes="nightly")]
    report = preview(j, History(events, False, T0, T0 + timedelta(hours=6)))
    assert report["filtered"] == {"does not match absence.expect.filter": 1}
    assert report["notifications_by_kind"] == {
        "fired": 1,
        "resolved": 1,
    }  # silent 2h after 09:00; back at 14:00
