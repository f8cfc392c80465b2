"""Noise-control settings and email rendering, without servers."""

from datetime import UTC, datetime

import pytest

from sysevents.alerts.policy import MuteWindow, RateLimit, Silence, muted_by
from sysevents.alerts.render import InvalidTemplate, check, link_for, render_single
from sysevents.jobs.model import InvalidJob, job_from_dict
from sysevents.sinks.email.mailer import build, message_id
from sysevents.templates import SAMPLE_EVENT, render_value


def email_job(**config):
    config = {"system_event_type": "failed", "recipients": ["ops@example.com"], **config}
    return job_from_dict({"workflow": "email_system_events", "config": config}, job_id="j", aid="12")


@pytest.mark.parametrize("config,message", [
    ({"grouping": {"by": []}}, "config.grouping.by: Tuple should have at least 1 item"),
    ({"grouping": {"by": ["verb", "verb"]}}, "config.grouping.by: lists a field twice"),
    ({"grouping": {"by": ["a.b"]}}, "'a.b' is not an event data field name"),
    ({"grouping": {"by": ["verb"], "group_interval": 600, "repeat_interval": 60}},
     "repeat_interval must be at least group_interval"),
    ({"rate_limit": {"max_emails": 0}}, "config.rate_limit.max_emails: Input should be greater than or equal to 1"),
    ({"silences": [{"matchers": {}, "ends_at": "2030-01-01T00:00:00Z"}]}, "config.silences.0.matchers"),
    ({"mute_windows": [{"weekdays": ["funday"]}]}, "'funday' is not a weekday or range"),
    ({"mute_windows": [{"weekdays": ["friday:monday"]}]}, "weekday range 'friday:monday' runs backwards"),
    ({"mute_windows": [{"times": [{"start_time": "22:00", "end_time": "06:00"}]}]},
     "must be before end_time 06:00 (split ranges that cross midnight in two)"),
    ({"mute_windows": [{"weekdays": ["sunday"], "location": "Mars/Base"}]}, "unknown time zone 'Mars/Base'"),
    ({"mute_windows": [{"location": "UTC"}]}, "set weekdays, times or both"),
])  # fmt: skip
def test_bad_noise_control_is_refused_with_the_reason(config, message):
    with pytest.raises(InvalidJob) as err:
        email_job(**config)
    assert message in err.value.reason


@pytest.mark.parametrize("config,field,message", [
    ({"subject_template": "event.data.nope"}, "subject_template", "no such field: nope"),
    ({"digest_template": '{"subject": "x"}'}, "digest_template",
     "digest_template must evaluate to {subject: <string>, body: <string>}"),
    ({"body_template": "42"}, "body_template", "the body must be a string, got int"),
    ({"subject_template": 'importstr "/etc/passwd"'}, "subject_template", "imports are not allowed in templates"),
    ({"grouping": {"by": ["verb"]}, "digest_template": '{subject: digest.group.nope, body: ""}'},
     "digest_template", "no such field: nope"),
])  # fmt: skip
def test_the_save_time_check_names_the_failing_template(config, field, message):
    cfg = email_job(**config).config  # loading does not check templates; saving (the admin API) does
    with pytest.raises(InvalidTemplate) as err:
        check(cfg.subject_template, cfg.body_template, cfg.digest_template,
              cfg.grouping.by if cfg.grouping else (), evaluate=render_value)  # fmt: skip
    assert err.value.field == field and message in str(err.value)


def test_silence_matches_every_matcher_while_active():
    s = Silence(matchers={"subject_id": ["a", "b"], "verb": "failed"}, ends_at=datetime(2030, 1, 1, tzinfo=UTC),
                starts_at=datetime(2029, 1, 1, tzinfo=UTC))  # fmt: skip
    inside = datetime(2029, 6, 1, tzinfo=UTC)
    assert s.active(inside) and not s.active(datetime(2030, 1, 1, tzinfo=UTC))
    assert s.matches({"subject_id": "b", "verb": "failed"}) and not s.matches(
        {"subject_id": "c", "verb": "failed"}
    )
    assert muted_by((s,), (), {"subject_id": "a", "verb": "failed"}, inside) == "silenced by silence 0"
    assert muted_by((s,), (), {"subject_id": "a", "verb": "failed"}, datetime(2031, 1, 1, tzinfo=UTC)) is None


def test_mute_window_weekday_ranges_times_and_time_zones():
    w = MuteWindow(weekdays=["saturday", "monday:tuesday"], location="America/New_York",
                   times=[{"start_time": "00:00", "end_time": "08:00"}])  # fmt: skip
    # Monday 2031-03-03 12:00 UTC is 07:00 in New York (EST): inside; 13:00 UTC is 08:00: outside.
    assert w.contains(datetime(2031, 3, 3, 12, 0, tzinfo=UTC))
    assert not w.contains(datetime(2031, 3, 3, 13, 0, tzinfo=UTC))
    assert not w.contains(datetime(2031, 3, 5, 12, 0, tzinfo=UTC))  # Wednesday
    assert MuteWindow(weekdays=["sunday"]).contains(datetime(2031, 3, 9, 23, 59, tzinfo=UTC))


def test_rate_limit_windows_are_fixed():
    r = RateLimit(max_emails=5, per_seconds=3600)
    start, end = r.window(datetime(2031, 3, 3, 12, 59, 59, tzinfo=UTC))
    assert (start, end) == (datetime(2031, 3, 3, 12, tzinfo=UTC), datetime(2031, 3, 3, 13, tzinfo=UTC))


def test_default_email_has_subject_type_verb_id_account_notes_time_and_link():
    email = render_single(None, None, SAMPLE_EVENT, link_for(SAMPLE_EVENT))
    assert email.subject == "[sysevents] work work-id-1 failed (account 12)"
    for text in ("Account:  12", "Subject:  work work-id-1", "Verb:     failed", "Time:     2026-01-01T00:00:00Z",
                 "Notes:    Export to warehouse failed",
                 "Details: https://activate.getlytics.com/data/integrations/work/work-id-1?aid=12"):  # fmt: skip
        assert text in email.body


def test_subject_is_one_line_and_the_message_id_is_fixed_by_job_and_event():
    email = render_single(
        '"a\\nb\\r\\nBcc: x@example.com"', None, SAMPLE_EVENT, "https://x", evaluate=render_value
    )
    assert email.subject == "a b Bcc: x@example.com"
    msg = build(sender="a <alerts@example.org>", recipients=("ops@example.com",), subject=email.subject,
                body=email.body, msg_id=message_id("job/event", "a <alerts@example.org>"),
                date=datetime(2031, 1, 1, tzinfo=UTC))  # fmt: skip
    assert (
        msg["Message-ID"] == message_id("job/event", "alerts@example.org") != message_id("job/other", "x@y.z")
    )
    assert msg["Message-ID"].endswith("@example.org>") and msg["Bcc"] is None
