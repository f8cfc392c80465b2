"""Content filters end to end: ingest delivers only what a job's CEL filter selects; an event missing the
filtered field is not delivered and not quarantined either (no match is not an error)."""

import json
import time

import pytest
import requests
from helpers import pull, put_jobs, wait_until, webhook_job

from sysevents.events.model import new_event

pytestmark = pytest.mark.integration
QUIET_SECONDS = 2.0


def test_a_filtered_job_gets_only_the_events_its_filter_selects(
    stack, store, publisher, subscriber, fresh_subscription, receiver, aid
):
    quarantine = fresh_subscription(stack.topology.quarantine_topic)
    put_jobs(
        stack,
        store,
        webhook_job(
            f"{aid}-perm",
            aid,
            receiver.url("/perm"),
            system_event_type="failed",
            filter='event.data.notes.contains("permission")',
            exclude=['event.data.actor == "sync-bot"'],
        ),
    )
    passes = new_event(aid, "work", "w1", "failed", notes="no permission to write", actor="ana")
    others = [
        new_event(aid, "work", "w1", "failed", notes="disk full"),  # the filter is false
        new_event(aid, "work", "w1", "failed", actor="ana"),  # no notes: no match, not an error
        new_event(aid, "work", "w1", "failed", notes="permission denied", actor="sync-bot"),  # excluded
        new_event(aid, "work", "w1", "failed", notes=["permission"]),  # a list, not a string
    ]
    publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in [*others, passes]])
    receiver.wait_for("/perm", 1, timeout=60)
    time.sleep(QUIET_SECONDS)
    assert [json.loads(r.body)["id"] for r in receiver.at("/perm")] == [passes.id]
    mine = {e.id for e in others} | {passes.id}
    quarantined = [
        m for m in pull(subscriber, quarantine, 1, timeout=2) if any(i.encode() in m.data for i in mine)
    ]
    assert quarantined == []

    # The preview over the audit log counts what the pipeline just did, with the same job.

    def previewed():
        r = requests.post(
            f"{stack.function_urls['admin']}/accounts/{aid}/jobs/preview",
            headers={"X-API-Key": stack.operator_key},
            json={"job_id": f"{aid}-perm"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return r.json() if r.json()["scanned"] == len(mine) else None

    found = wait_until(previewed, timeout=60)
    assert found["matched"] == 1 and [e["id"] for e in found["sample"]] == [passes.id]
    assert found["truncated"] is False and found["first_match"] == found["last_match"]
