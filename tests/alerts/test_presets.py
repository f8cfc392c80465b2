"""Ready-made alerts: the seed's Slack template verbatim, and "email me when any export job fails"."""

import json

import pytest
from click.testing import CliRunner

from sysevents.alerts import presets
from sysevents.cli import main
from sysevents.jobs.model import InvalidJob, job_from_dict
from sysevents.local.demo import SLACK_TEMPLATE as DEMO_SLACK_TEMPLATE
from sysevents.sinks.email.config import EmailConfig
from sysevents.templates import SAMPLE_EVENT, render

SEED_SLACK_TEMPLATE = (
    'local note = if std.objectHas(event.data, "notes") then event.data.notes else "A work failed"; {"text": '
    '"Alert notification: " + note + ". For more info go to: https://activate.getlytics.com/data/integrations/'
    'work/%s?aid=%s" % [event.data.subject_id, event.data.aid] }'
)


def test_slack_preset_uses_the_seed_template_verbatim():
    doc = presets.slack_alert("https://hooks.slack.com/services/T/B/X", subject_ids=["work-id-1"])
    assert doc["config"]["json_template"] == SEED_SLACK_TEMPLATE == DEMO_SLACK_TEMPLATE
    job = job_from_dict(doc, job_id="j", aid="12")
    assert json.loads(render(job.config.json_template, SAMPLE_EVENT)) == {
        "text": "Alert notification: Export to warehouse failed. For more info go to: "
        "https://activate.getlytics.com/data/integrations/work/work-id-1?aid=12"
    }


def test_export_failures_preset_is_an_email_job_on_work_failed_grouped_per_job():
    job = job_from_dict(presets.export_failures_email(["ops@example.com"]), job_id="j", aid="12")
    assert isinstance(job.config, EmailConfig) and job.sink == "email"
    assert job.filter.verbs == {"failed"} and job.filter.sources == {"work": frozenset()}
    assert job.config.grouping.by == ("subject_type", "subject_id")


def test_cli_prints_presets_and_refuses_bad_addresses():
    runner = CliRunner()
    ok = runner.invoke(main, ["alerts", "export-failures", "--to", "ops@example.com"])
    assert ok.exit_code == 0 and json.loads(ok.output)["workflow"] == "email_system_events"
    bad = runner.invoke(main, ["alerts", "export-failures", "--to", "ops@"])
    assert bad.exit_code == 2 and "config.recipients: 'ops@' is not an email address" in bad.output


def test_slack_preset_through_the_pipeline(stack, firestore_client, publisher, receiver, aid):
    from sysevents.events.model import new_event
    from sysevents.jobs.store import JobStore

    store = JobStore(firestore_client)
    store.put(
        job_from_dict(
            presets.slack_alert(receiver.url("/slack"), subject_ids=["work-id-1"]),
            job_id=f"{aid}-slack",
            aid=aid,
        )
    )
    if hasattr(store, "last_write_time"):
        stack.wait_for_job_caches(since=store.last_write_time)
    publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in [
        new_event(aid, "work", "work-id-1", "failed", notes="disk full"),
        new_event(aid, "work", "work-id-1", "failed"),
        new_event(aid, "work", "work-id-2", "failed")]])  # fmt: skip
    got = receiver.wait_for("/slack", 2, timeout=60)
    texts = sorted(r.json()["text"] for r in got)
    link = f"For more info go to: https://activate.getlytics.com/data/integrations/work/work-id-1?aid={aid}"
    assert texts == [f"Alert notification: A work failed. {link}", f"Alert notification: disk full. {link}"]


@pytest.mark.parametrize("recipients,message", [
    (["nope"], "config.recipients: 'nope' is not a valid email address: An email address must have an @-sign."),
    ([], "config.recipients: must be a list of one or more email addresses"),
    (["a@b"], "config.recipients: 'a@b' is not a valid email address: The part after the @-sign is not valid."),
    (["a@example.com\r\nBcc: x@example.com"], "contains control characters"),
])  # fmt: skip
def test_bad_recipients_are_refused_when_the_job_is_saved(recipients, message):
    with pytest.raises(InvalidJob) as err:
        job_from_dict(
            {
                "workflow": "email_system_events",
                "config": {"system_event_type": "failed", "recipients": recipients},
            },
            job_id="j",
            aid="1",
        )
    assert message in err.value.reason


def test_grouped_slack_and_pagerduty_presets_are_alert_jobs():
    from sysevents.jobs.model import job_from_dict

    grouped = presets.slack_alert("https://hooks.slack.com/services/T/B/X", group_by=("subject_type",),
                                  resolve_on=("completed",))  # fmt: skip
    job = job_from_dict(grouped, job_id="g", aid="a")
    assert job.config.alerting() and job.config.kind() == "slack"
    assert job.config.grouping.by == ("subject_type",) and job.config.resolve_on == ("completed",)
    assert job.config.json_template == presets.SLACK_TEMPLATE  # single alerts keep the seed's message
    pd = job_from_dict(presets.pagerduty_alert("rk-1"), job_id="p", aid="a")
    assert pd.config.kind() == "pagerduty" and pd.config.alerting() and pd.config.routing_key == "rk-1"
    assert {v.value for v in pd.config.match_verbs()} == {"failed", "completed"}
