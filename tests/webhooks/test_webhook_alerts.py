"""Alerts on webhook channels through the real pipeline (emulators, ingest, the webhook function, the Cloud
Tasks emulator for group timers, local receivers): Slack digests instead of one post per event, PagerDuty
triggers and resolves with one dedup key per group, Teams resolutions, signed generic digests.

The test stack runs at SYSEVENTS_TIME_SCALE 1/3000: a group_wait of 30000 s is 10 s here.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from helpers import TIME_SCALE, wait_until, webhook_job
from helpers import publish_events as publish
from helpers import put_jobs as put

from sysevents.delivery.accounting import DeliveryLog
from sysevents.events.model import new_event

pytestmark = pytest.mark.integration
WAIT = 30_000  # group_wait: 10 s at the test stack's scale, room for a burst to be accepted
HEADLINE = re.compile(r"^(\d+) (\w+) (\w+) in account (\S+): (.*)$")


def test_a_slack_burst_becomes_one_digest_per_group(stack, store, publisher, receiver, firestore_client, aid):
    job = webhook_job(f"{aid}-slack", aid, receiver.url("/slack"), channel="slack",
                    grouping={"by": ["subject_type"], "group_wait": WAIT, "group_interval": WAIT, "repeat_interval": 10 * WAIT})  # fmt: skip
    put(stack, store, job)
    works = [new_event(aid, "work", f"w-{i}", "failed") for i in range(30)]
    segments = [new_event(aid, "segment", f"s-{i}", "failed") for i in range(10)]
    publish(stack, publisher, *works, *segments)
    posts = wait_until(lambda: len(got := receiver.at("/slack")) >= 2 and got, timeout=90)
    time.sleep(1.5 * WAIT * TIME_SCALE)  # a straggler would get its own digest one group_interval later
    posts = receiver.at("/slack")
    counted: dict[str, int] = {}
    for p in posts:
        headline = p.json()["text"].splitlines()[0]
        m = HEADLINE.match(headline)
        assert m, headline
        assert (m[3], m[4]) == ("failed", aid)
        counted[m[2]] = counted.get(m[2], 0) + int(m[1])
    assert counted == {"works": 30, "segments": 10}  # every event in exactly one digest
    assert len(posts) <= 4  # digests, not 40 posts (2, unless a straggler missed its group's first)
    first = next(p.json()["text"] for p in posts if "works" in p.json()["text"].splitlines()[0])
    assert re.match(
        r"^\d+ works failed in account \S+: w-\d+, w-\d+, w-\d+ and \d+ more$", first.splitlines()[0]
    )
    assert len({p.headers["webhook-id"] for p in posts}) == len(posts)  # each digest its own id
    stats = wait_until(
        lambda: (s := DeliveryLog(firestore_client).stats(job))["pending"] == 0 and s, timeout=30
    )
    assert stats["accepted"] == 40 and stats["dead_lettered"] == 0
    assert (
        stats["received"]
        == stats["delivered"] + stats["accepted"] + stats["filtered"] + stats["dead_lettered"]
    )


def test_pagerduty_triggers_once_per_group_and_resolves_when_every_subject_completed(
    stack, store, publisher, receiver, aid
):
    job = webhook_job(f"{aid}-pd", aid, receiver.url("/pd"), channel="pagerduty", routing_key="rk-test-123",
                    resolve_on=["completed"],
                    grouping={"by": ["subject_type"], "group_wait": 3000, "group_interval": 3000})  # fmt: skip
    put(stack, store, job)
    publish(
        stack, publisher, new_event(aid, "work", "w-1", "failed"), new_event(aid, "work", "w-2", "failed")
    )
    [trigger] = receiver.wait_for("/pd", 1, timeout=60)
    doc = trigger.json()
    assert (doc["event_action"], doc["routing_key"]) == ("trigger", "rk-test-123")
    assert doc["payload"]["summary"].startswith(f"2 works failed in account {aid}: w-1, w-2")
    assert doc["payload"]["severity"] == "error" and doc["dedup_key"].startswith("sysevents-")
    publish(stack, publisher, new_event(aid, "work", "w-1", "completed"))
    time.sleep(2)
    assert len(receiver.at("/pd")) == 1  # w-2 still fails: the incident stays open
    publish(stack, publisher, new_event(aid, "work", "w-2", "completed"))
    resolve = receiver.wait_for("/pd", 2, timeout=60)[1].json()
    assert resolve == {"routing_key": "rk-test-123", "event_action": "resolve", "dedup_key": doc["dedup_key"]}


def test_teams_gets_each_alert_and_its_resolution(stack, store, publisher, receiver, aid):
    job = webhook_job(
        f"{aid}-teams", aid, receiver.url("/teams"), channel="teams", resolve_on=["synccomplete"]
    )
    put(stack, store, job)
    publish(stack, publisher, new_event(aid, "work", "w-7", "failed", notes="disk full"))
    [alert] = receiver.wait_for("/teams", 1, timeout=60)
    card = alert.json()["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["body"][0]["text"] == f"Work w-7 failed in account {aid}: disk full"
    publish(stack, publisher, new_event(aid, "work", "w-7", "synccomplete"))
    resolved = receiver.wait_for("/teams", 2, timeout=60)[1].json()["attachments"][0]["content"]
    assert resolved["body"][0]["text"].startswith(f"Resolved: work w-7 synccomplete in account {aid}")


def test_a_generic_digest_is_signed_and_rendered_with_the_jobs_digest_template(
    stack, store, publisher, receiver, aid
):
    from standardwebhooks import Webhook

    secret = "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw=="
    template = "{n: digest.count, ids: [i.event.data.subject_id for i in digest.items], acct: digest.account}"
    job = webhook_job(f"{aid}-gen", aid, receiver.url("/gen"), signing_secrets=[secret], digest_template=template,
                    grouping={"by": ["verb"], "group_wait": 3000, "group_interval": 3000})  # fmt: skip
    put(stack, store, job)
    publish(stack, publisher, *(new_event(aid, "work", f"g-{i}", "failed") for i in range(3)))
    got = wait_until(lambda: sum(json.loads(p.body)["n"] for p in receiver.at("/gen")) >= 3 and receiver.at("/gen"),
                     timeout=60)  # fmt: skip
    assert sorted(i for p in got for i in json.loads(p.body)["ids"]) == ["g-0", "g-1", "g-2"]
    assert {json.loads(p.body)["acct"] for p in got} == {aid}
    for p in got:  # verified as a receiver would
        Webhook(secret).verify(p.body.decode(), {k.lower(): v for k, v in p.headers.items()})
