"""Email alerts through the real pipeline: ingest -> deliveries-email -> email function -> aiosmtpd
(STARTTLS and AUTH required by the local server), retries and dead letters. The test account allows the
recipients' domain, as an operator would (test_email_consent.py covers recipients that must confirm)."""

import json
import re

import pytest
from helpers import allow_email_domain, email_job, pull, put_jobs, wait_until
from helpers import publish_events as publish

from sysevents.events.model import new_event
from sysevents.sinks.email.mailer import message_id

pytestmark = pytest.mark.integration
SINK = "email"  # the `dead_letters` fixture's sink


@pytest.fixture(autouse=True)
def allowed(firestore_client, aid):
    allow_email_domain(firestore_client, aid)


def test_a_failure_event_is_emailed_once_with_the_default_templates(stack, store, publisher, aid):
    to = f"ops-{aid}@example.com"
    job = email_job(f"{aid}-mail", aid, [f"Ops <{to}>"])
    put_jobs(stack, store, job)
    ev = new_event(aid, "work", "work-id-1", "failed", notes="Export to warehouse failed: permission denied")
    publish(stack, publisher, ev, new_event(aid, "work", "work-id-1", "completed"))  # completed: not matched

    [mail] = stack.smtp.wait_for(stack.smtp.to(to), 1, timeout=60)
    assert mail.subject == f"[sysevents] work work-id-1 failed (account {aid})"
    assert mail.message_id == message_id(f"{job.key}/{ev.id}", "alerts@sysevents.local")
    assert mail.message["To"] == to and mail.message["Auto-Submitted"] == "auto-generated"
    body = mail.body
    assert "Notes:    Export to warehouse failed: permission denied" in body
    assert f"Account:  {aid}" in body and f"Event id: {ev.id}" in body
    assert f"https://activate.getlytics.com/data/integrations/work/work-id-1?aid={aid}" in body
    assert stack.smtp.wait_for(stack.smtp.to(to), 2, timeout=3) == [mail]  # and nothing more


def test_custom_jsonnet_subject_and_body(stack, store, publisher, aid):
    to = f"custom-{aid}@example.com"
    put_jobs(
        stack,
        store,
        email_job(
            f"{aid}-custom",
            aid,
            [to],
            subject_template='"ALERT " + event.data.subject_id',
            body_template='"Work %s: %s" % [event.data.subject_id, event.data.notes]',
        ),
    )
    publish(stack, publisher, new_event(aid, "work", "w-9", "failed", notes="disk full"))
    [mail] = stack.smtp.wait_for(stack.smtp.to(to), 1, timeout=60)
    assert mail.subject == "ALERT w-9"
    assert mail.body.strip() == "Work w-9: disk full"


def test_grouped_failures_arrive_in_digests_each_event_once(stack, store, publisher, aid):
    # Exact group_wait / group_interval timing is covered in test_alert_state.py with a controlled clock; here
    # the pipeline's push timing decides how the 5 events split into digests, but each is in exactly one.
    to = f"digest-{aid}@example.com"
    put_jobs(
        stack,
        store,
        email_job(f"{aid}-grp", aid, [to], grouping={"by": ["verb"], "group_wait": 5, "group_interval": 1}),
    )
    events = [new_event(aid, "work", f"w-{i}", "failed") for i in range(5)]
    publish(stack, publisher, *events)

    def digests() -> list:
        return stack.smtp.wait_for(stack.smtp.to(to), 1, timeout=5)

    def alerts(mails) -> int:
        return sum(int(re.match(r"\[sysevents\] (\d+) alert", m.subject).group(1)) for m in mails)

    wait_until(lambda: alerts(digests()) >= 5, timeout=90)
    mails = digests()
    listed = [line.split()[3] for m in mails for line in m.body.splitlines() if line.startswith("- ")]
    assert alerts(mails) == 5
    assert sorted(listed) == [f"w-{i}" for i in range(5)]
    assert all(m.subject.endswith("alert(s): verb=failed") for m in mails)


def test_temporary_smtp_failures_are_retried_then_dead_lettered(
    stack, store, publisher, subscriber, dead_letters, aid
):
    to = f"ops+smtp451-{aid}@example.com"
    job = email_job(f"{aid}-451", aid, [to])
    put_jobs(stack, store, job)
    ev = new_event(aid, "work", "w-1", "failed")
    publish(stack, publisher, ev)
    max_attempts = job.config.max_attempts  # 1 + the job's retry schedule
    [msg] = pull(subscriber, dead_letters, 1, timeout=120)
    assert msg.attributes["reason"].startswith(f"recipients refused: {to}: 451")
    assert msg.attributes["attempts"] == str(max_attempts)
    assert msg.attributes["job_id"] == job.id and json.loads(msg.data)["event"]["id"] == ev.id


def test_permanent_smtp_refusal_is_dead_lettered_at_once(
    stack, store, publisher, subscriber, dead_letters, aid
):
    to = f"ops+smtp550-{aid}@example.com"
    put_jobs(stack, store, email_job(f"{aid}-550", aid, [to]))
    publish(stack, publisher, new_event(aid, "work", "w-1", "failed"))
    [msg] = pull(subscriber, dead_letters, 1, timeout=60)
    assert msg.attributes["reason"].startswith(f"recipients refused: {to}: 550")
    assert msg.attributes["attempts"] == "1"
