"""Webhook sink outcomes through the real pipeline: retried, delivered, or dead-lettered with a reason."""

import json

import pytest
from helpers import publish_events as publish
from helpers import pull, put_jobs, webhook_job

from sysevents.events.model import new_event

pytestmark = pytest.mark.integration


def test_transient_failures_are_retried_until_delivered(stack, store, publisher, receiver, aid):
    receiver.replies["/flaky"].extend([503, 500, 429])
    put_jobs(
        stack, store, webhook_job(f"{aid}-flaky", aid, receiver.url("/flaky"), system_event_type="failed")
    )
    ev = new_event(aid, "work", "w", "failed")
    publish(stack, publisher, ev)
    got = receiver.wait_for("/flaky", 1, timeout=90)
    assert [r.json()["id"] for r in got] == [ev.id]
    assert not receiver.replies["/flaky"]  # all three failures were consumed first


def test_permanent_rejection_is_dead_lettered_at_once_with_reason(
    stack, store, publisher, receiver, subscriber, dead_letters, aid
):
    receiver.replies["/gone"].extend([410] * 20)
    job = webhook_job(f"{aid}-gone", aid, receiver.url("/gone"), system_event_type="failed")
    put_jobs(stack, store, job)
    ev = new_event(aid, "work", "w", "failed")
    publish(stack, publisher, ev)
    [msg] = pull(subscriber, dead_letters, 1, timeout=60)
    assert msg.attributes["reason"] == "HTTP 410 from receiver"
    assert msg.attributes["attempts"] == "1" and msg.attributes["job_id"] == job.id
    assert json.loads(msg.data)["event"]["id"] == ev.id
    assert len(receiver.replies["/gone"]) == 19  # tried once, not again


def test_template_error_is_dead_lettered_with_the_jsonnet_message(
    stack, store, publisher, subscriber, dead_letters, receiver, aid
):
    put_jobs(
        stack,
        store,
        webhook_job(
            f"{aid}-tpl",
            aid,
            receiver.url("/tpl"),
            system_event_type="failed",
            json_template='{"a": error "no " + event.data.subject_id}',
        ),
    )
    publish(stack, publisher, new_event(aid, "work", "w-7", "failed"))
    [msg] = pull(subscriber, dead_letters, 1, timeout=60)
    assert msg.attributes["reason"].startswith("template error: runtime error: no w-7")
    assert receiver.at("/tpl") == []


def test_receiver_that_never_recovers_ends_in_dead_letter_after_max_attempts(
    stack, store, publisher, receiver, subscriber, dead_letters, aid
):
    job = webhook_job(f"{aid}-down", aid, receiver.url("/down"), system_event_type="failed")
    max_attempts = job.config.max_attempts  # 1 + the retry schedule (scaled by SYSEVENTS_TIME_SCALE here)
    receiver.replies["/down"].extend([500] * (max_attempts + 5))
    put_jobs(stack, store, job)
    publish(stack, publisher, new_event(aid, "work", "w", "failed"))
    [msg] = pull(subscriber, dead_letters, 1, timeout=180)
    assert msg.attributes["reason"] == "HTTP 500 from receiver"
    assert msg.attributes["attempts"] == str(max_attempts)
    assert len(receiver.replies["/down"]) == 5  # exactly max_attempts tries, then it stopped


def test_private_destination_is_refused(stack, store, publisher, subscriber, dead_letters, aid):
    # 10.0.0.1 is not allowlisted by the local stack (only 127.0.0.1/32 is); nothing is sent there.
    put_jobs(stack, store, webhook_job(f"{aid}-ssrf", aid, "http://10.0.0.1:9/x", system_event_type="failed"))
    publish(stack, publisher, new_event(aid, "work", "w", "failed"))
    [msg] = pull(subscriber, dead_letters, 1, timeout=60)
    assert msg.attributes["reason"] == "refused destination: destination '10.0.0.1' is not a public address"
