"""The pure decisions of alert conditions (sysevents.alerts.conditions): thresholds over a sliding window,
absence deadlines (within, calendar, time zones, DST), `simulate` against a direct evaluation, and the
save-time validation of a job's condition."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sysevents.alerts.conditions import (
    Absence,
    Threshold,
    deadline_after_event,
    next_deadline,
    parse_duration,
    simulate,
    threshold_step,
)
from sysevents.jobs.model import InvalidJob
from sysevents.jobs.registry import job_from_dict

T0 = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)  # a Monday


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_durations():
    assert [parse_duration(v) for v in ("90s", "30m", "2h", "1d", 600, "1.5h")] == [
        90,
        1800,
        7200,
        86400,
        600,
        5400,
    ]
    for bad in ("30x", "", "-5m", True, None, "5s", "8d"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_one_work_failing_3_times_within_30_minutes_fires_once_and_resolves():
    cond = Threshold(count=3, within="30m", by=["subject_id"])
    w1 = {"subject_id": "w-1", "verb": "failed"}
    w2 = {"subject_id": "w-2", "verb": "failed"}
    events = [(at(0), w1), (at(5), w2), (at(10), w1), (at(20), w2), (at(25), w1), (at(26), w1), (at(100), w1)]
    got = simulate(cond, events, T0, at(200))
    assert [(t.kind, t.at, dict(t.group)) for t in got] == [
        ("fire", at(25), {"subject_id": "w-1"}),  # w-1's third failure within 30 minutes
        ("resolve", at(40), {"subject_id": "w-1"}),  # 10 leaves at 40: 25, 26 remain (2 < 3)
    ]  # w-2 failed twice only; w-1's failure at 100 is alone


def test_threshold_step_says_when_to_look_again():
    within = timedelta(minutes=30)
    assert threshold_step([at(0), at(1)], 3, within, firing=False).action is None
    step = threshold_step([at(0), at(1), at(2), at(3)], 3, within, firing=False)
    assert (step.action, step.check_at) == ("fire", at(31))  # the 2nd oldest leaving brings it to 2
    assert threshold_step([at(0), at(1), at(2)], 3, within, firing=True) == type(step)(None, at(30))
    assert threshold_step([at(2)], 3, within, firing=True).action == "resolve"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 600), st.sampled_from(["a", "b"])), max_size=40),
    st.integers(1, 5),
    st.integers(1, 60),
)
def test_simulated_threshold_equals_a_direct_evaluation_minute_by_minute(raw, count, within_min):
    """Fired exactly while the direct count of the window, at every event and every resolution, reaches
    the count: firings and resolutions alternate per group, and each is where the count crosses."""
    cond = Threshold(count=count, within=within_min * 60, by=["actor"])
    events = sorted(((at(m), {"actor": a}) for m, a in raw), key=lambda e: e[0])
    got = simulate(cond, [(t, d) for t, d in events], T0, at(1000))
    w = timedelta(minutes=within_min)

    def counted(actor, t):
        return sum(1 for s, d in events if d["actor"] == actor and t - w < s <= t)

    for actor in ("a", "b"):
        mine = [x for x in got if dict(x.group) == {"actor": actor}]
        assert [x.kind for x in mine] == ["fire", "resolve"] * (len(mine) // 2) + ["fire"] * (len(mine) % 2)
        for x in mine:
            if x.kind == "fire":
                assert counted(actor, x.at) >= count
                assert counted(actor, x.at - timedelta(microseconds=1)) < count or any(
                    y.kind == "resolve" and y.at == x.at for y in mine
                )
            else:
                assert counted(actor, x.at) < count <= counted(actor, x.at - timedelta(microseconds=1))
        times = [t for t, d in events if d["actor"] == actor]
        fires = [x.at for x in mine if x.kind == "fire"]
        # every event that brings the count to `count` while not firing is a firing
        assert all(counted(actor, t) < count or any(f <= t for f in fires) for t in times)


def test_absence_within_fires_after_two_quiet_hours_and_resolves_on_the_next_event():
    cond = Absence(within="2h")
    got = simulate(cond, [(at(30), {}), (at(60), {}), (at(300), {})], T0, at(600))
    assert [(t.kind, t.at, t.last_seen) for t in got] == [
        ("fire", at(180), at(60)),  # 2 h after the last event at 60
        ("resolve", at(300), at(60)),
        ("fire", at(420), at(300)),
    ]
    assert simulate(cond, [(at(m), {}) for m in range(0, 600, 60)], T0, at(600)) == []


def test_a_calendar_deadline_in_paris_is_06_00_local_on_the_days_asked():
    cond = Absence(
        by="06:00", timezone="Europe/Paris", days=["monday", "tuesday", "wednesday", "thursday", "friday"]
    )
    # Monday 7 December 2026, Paris is UTC+1: 06:00 local is 05:00 UTC
    assert next_deadline(cond, T0) == datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
    friday_noon = datetime(2026, 12, 11, 12, 0, tzinfo=UTC)
    assert next_deadline(cond, friday_noon) == datetime(2026, 12, 14, 5, 0, tzinfo=UTC)  # skips the weekend
    # summer time: 06:00 in Paris is 04:00 UTC
    assert next_deadline(cond, datetime(2026, 7, 6, 0, 0, tzinfo=UTC)) == datetime(
        2026, 7, 6, 4, 0, tzinfo=UTC
    )
    # the night the clocks change (Sunday 29 March 2026): Monday's deadline is at 04:00 UTC
    assert next_deadline(cond, datetime(2026, 3, 28, 12, tzinfo=UTC)) == datetime(
        2026, 3, 30, 4, 0, tzinfo=UTC
    )


def test_an_export_that_completes_before_06_00_satisfies_that_days_deadline_only():
    cond = Absence(by="06:00", timezone="Europe/Paris")
    monday_0300_paris = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
    assert deadline_after_event(cond, None, monday_0300_paris) == datetime(2026, 12, 8, 5, 0, tzinfo=UTC)
    events = [(monday_0300_paris, {}), (datetime(2026, 12, 9, 7, 0, tzinfo=UTC), {})]  # Tuesday's never came
    got = simulate(cond, events, T0, datetime(2026, 12, 10, 12, tzinfo=UTC))
    assert [(t.kind, t.at) for t in got] == [
        ("fire", datetime(2026, 12, 8, 5, 0, tzinfo=UTC)),  # Tuesday 06:00 Paris passed with nothing
        ("resolve", datetime(2026, 12, 9, 7, 0, tzinfo=UTC)),  # the late run, Wednesday 08:00 Paris
        # the late run stands for the missed one: Thursday's 06:00 is the next deadline, missed too
        ("fire", datetime(2026, 12, 10, 5, 0, tzinfo=UTC)),
    ]
    assert got[0].last_seen == monday_0300_paris


def _email(**config):
    return job_from_dict(
        {"workflow": "email_system_events", "config": {"recipients": ["ops@example.com"], **config}},
        job_id="j",
        aid="a",
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"system_event_type": "failed", "threshold": {"count": 0, "within": "30m"}},
            "config.threshold.count",
        ),
        (
            {"system_event_type": "failed", "threshold": {"count": 3, "within": "5s"}},
            "from 1 minute to 7 days",
        ),
        (
            {"system_event_type": "failed", "threshold": {"count": 3, "within": "30m", "by": ["no-dash"]}},
            "entry 0",
        ),
        (
            {
                "system_event_type": "failed",
                "threshold": {"count": 3, "within": "30m"},
                "grouping": {"by": ["verb"]},
            },
            "remove grouping",
        ),
        ({"absence": {"expect": {"system_event_type": "completed"}, "by": "6am"}}, "not a time of day"),
        (
            {"absence": {"expect": {"system_event_type": "completed"}, "by": "06:00", "timezone": "Paris"}},
            "unknown time zone 'Paris'",
        ),
        (
            {"absence": {"expect": {"system_event_type": "completed"}, "by": "06:00", "days": ["mon"]}},
            "not a weekday",
        ),
        (
            {
                "absence": {
                    "expect": {"system_event_type": "completed"},
                    "within": "2h",
                    "timezone": "Europe/Paris",
                }
            },
            "go with by",
        ),
        ({"absence": {"expect": {"system_event_type": "completed"}}}, "set within"),
        (
            {
                "system_event_type": "failed",
                "absence": {"expect": {"system_event_type": "completed"}, "within": "2h"},
            },
            "differ from the job",
        ),
        (
            {
                "system_event_type": "failed",
                "threshold": {"count": 3, "within": "1h"},
                "absence": {"within": "2h"},
            },
            "not both",
        ),
    ],
)
def test_conditions_are_checked_when_saved_with_clear_errors(config, message):
    with pytest.raises(InvalidJob) as err:
        _email(**config)
    assert message in err.value.reason


@pytest.mark.parametrize("window", [{"by": "06:00", "timezone": "Europe/Paris"}, {"within": "2h"}])
def test_an_absence_jobs_filter_is_its_expected_events_and_survives_a_round_trip(window):
    job = _email(absence={"expect": {"system_event_sources": {"work": ["nightly-export"]},
                                     "system_event_type": "completed"}, **window})  # fmt: skip
    assert {v.value for v in job.filter.verbs} == {"completed"}
    assert {k.value: set(v) for k, v in job.filter.sources.items()} == {"work": {"nightly-export"}}
    again = _email(**job.config.model_dump(mode="json", exclude_none=True, exclude={"recipients"}))
    assert again.config.absence == job.config.absence and again.filter == job.filter


def test_expect_filter_errors_name_the_position():
    with pytest.raises(InvalidJob) as err:
        _email(absence={"expect": {"system_event_type": "completed", "filter": "event.data.notes.contains("},
                        "within": "2h"})  # fmt: skip
    assert err.value.reason.startswith("config.absence.expect.filter: line 1, column ")


def test_cli_presets_for_each_user_story():
    from click.testing import CliRunner

    from sysevents.cli import main

    def run(*args):
        r = CliRunner().invoke(main, ["alerts", *args], catch_exceptions=False)
        return r.exit_code, r.output

    code, out = run(
        "threshold",
        "--count",
        "3",
        "--within",
        "30m",
        "--webhook-url",
        "https://hooks.slack.com/services/T/B/X",
    )
    assert code == 0, out
    job = job_from_dict(json.loads(out), job_id="j", aid="a")
    assert (
        job.config.threshold == Threshold(count=3, within="30m", by=["subject_id"])
        and job.config.kind() == "slack"
    )
    code, out = run("threshold", "--count", "21", "--within", "5m", "--verb", "deleted", "--by", "actor",
                    "--subject-type", "segment", "--to", "ops@example.com")  # fmt: skip
    assert code == 0, out
    assert json.loads(out)["config"]["threshold"] == {"count": 21, "within": "5m", "by": ["actor"]}
    code, out = run("absence", "--subject-id", "nightly-export", "--by", "06:00", "--timezone", "Europe/Paris",
                    "--to", "ops@example.com")  # fmt: skip
    assert code == 0, out
    job = job_from_dict(json.loads(out), job_id="j", aid="a")
    assert job.config.absence.describe() == "by 06:00 Europe/Paris" and {
        v.value for v in job.filter.verbs
    } == {"completed"}
    code, out = run(
        "absence", "--verb", "synccomplete", "--within", "2h", "--webhook-url", "https://x.example.com/h"
    )
    assert code == 0 and json.loads(out)["config"]["absence"]["within"] == "2h"
    assert run("absence", "--within", "2h", "--by", "06:00", "--to", "a@example.com")[0] != 0
    code, out = run("absence", "--by", "06:00", "--timezone", "Mars/Olympus", "--to", "a@example.com")
    assert code != 0 and "unknown time zone 'Mars/Olympus'" in out
    assert "give --webhook-url" in run("threshold", "--count", "3", "--within", "30m")[1]
