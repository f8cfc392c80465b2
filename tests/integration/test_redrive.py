"""Redrive: what ingest dead-lettered during an outage goes through the pipeline again, once Pub/Sub has
taken each copy, with the event's id and trace; `sysevents redrive` does it."""

import pytest
from click.testing import CliRunner
from helpers import put_jobs, webhook_job

from sysevents.cli import main
from sysevents.events.model import new_event
from sysevents.transport.redrive import hold_subscription

pytestmark = pytest.mark.integration


def test_events_ingest_dead_lettered_are_delivered_once_redriven(
    stack, store, publisher, receiver, aid, monkeypatch
):
    job = webhook_job(f"{aid}-redrive", aid, receiver.url("/redriven"))
    put_jobs(stack, store, job)
    events = [new_event(aid, "work", f"w-{i}", "failed") for i in range(3)]
    dead_letter_topic = stack.topology.subscriptions["system-events-ingest"].dead_letter_topic
    # what Pub/Sub moves there after ingest answered 503 max_delivery_attempts times (its own attributes too)
    publisher.publish_all(
        [(dead_letter_topic, e.to_json(), {"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01",
                                            "CloudPubSubDeadLetterSourceDeliveryCount": "10"}) for e in events]
    )  # fmt: skip
    assert receiver.wait_for("/redriven", 1, timeout=2) == []  # nothing reaches the job from there alone
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", stack.project)
    result = CliRunner().invoke(main, ["redrive"])
    assert result.exit_code == 0, result.output
    assert f"published 3 event(s) from {hold_subscription(stack.topology)}" in result.output
    got = receiver.wait_for("/redriven", 3, timeout=60)
    assert sorted(r.json()["id"] for r in got) == sorted(e.id for e in events)
    again = CliRunner().invoke(main, ["redrive"])  # acknowledged: nothing is published twice
    assert "published 0 event(s)" in again.output
