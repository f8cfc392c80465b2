"""Producer binding through the real ingest (in process, against the emulators): an event signed by a
producer bound to its account is delivered; one for another account is quarantined with the reason, and
the audit archive admits the same events."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from helpers import pull, webhook_job

from sysevents import ingest
from sysevents.config import Settings
from sysevents.delivery.attempt import Attempt
from sysevents.delivery.outcome import Kind
from sysevents.events.model import new_event
from sysevents.events.producers import signed
from sysevents.jobs import origin
from sysevents.jobs.secrets import generate_key
from sysevents.runtime import Runtime
from sysevents.sinks.audit.sink import AuditSink
from sysevents.transport.pubsub import parse_push
from sysevents.transport.quarantine import Quarantine

pytestmark = pytest.mark.integration
KEY = "billing-key-" + "k" * 32


def push(data: bytes, attributes: dict[str, str]) -> bytes:
    msg = {"data": base64.b64encode(data).decode(), "messageId": uuid.uuid4().hex, "attributes": attributes}
    return json.dumps(
        {"subscription": "projects/p/subscriptions/system-events-push", "message": msg}
    ).encode()


def test_a_bound_producers_event_is_delivered_and_one_for_another_account_quarantined(
    stack, store, subscriber, fresh_subscription, firestore_client, aid
):
    other = f"{aid}-other"
    settings = Settings(
        producers={"billing": [aid]},
        producer_keys=json.dumps({"billing": [KEY]}),
        sealing_keys=generate_key(),
        job_cache_max_age_ms=0,
    )
    rt = Runtime(settings)
    try:
        sub = fresh_subscription(stack.topology.sinks["webhook"].topic)
        for account in (aid, other):
            store.put(webhook_job("hook", account))

        mine = new_event(aid, "work", "w1", "failed")
        assert ingest.process(rt, push(*signed(mine, "billing", KEY))) == ("matched 1", 200)

        theirs = new_event(other, "work", "w1", "failed")
        data, attrs = signed(theirs, "billing", KEY)
        text, status = ingest.process(rt, push(data, attrs))
        reason = f"producer 'billing' may not publish for account {other!r} (SYSEVENTS_PRODUCERS)"
        assert (text, status) == (f"quarantined: {reason}", 200)
        text, _ = ingest.process(rt, push(theirs.to_json(), {}))  # unsigned
        assert text.startswith("quarantined: unsigned event")

        # sysevents' own events (sealed) are admitted for any account
        own = new_event(other, "work", "w2", "failed").to_json()
        assert ingest.process(rt, push(own, origin.seal(own, settings.sealing_keys))) == ("matched 1", 200)

        got = pull(subscriber, sub, 2, timeout=20)
        assert sorted(m.attributes["aid"] for m in got) == sorted([aid, other])
        assert {m.attributes["event_id"] for m in got if m.attributes["aid"] == aid} == {mine.id}
        refused = Quarantine(firestore_client).list(aid=other)
        assert sorted(r["reason"] for r in refused)[0] == reason
        assert json.loads(refused[-1]["data"])["data"]["aid"] == other

        # the audit archive refuses what ingest quarantines, and archives the bound producer's event
        audit = AuditSink(rt)
        theirs_msg = parse_push(push(data, attrs))
        outcome = audit.deliver_event(theirs_msg, Attempt.of(theirs_msg))
        assert (outcome.kind, outcome.reason) == (
            Kind.FILTERED,
            f"not archived (ingest quarantines it): {reason}",
        )
        mine_msg = parse_push(push(*signed(mine, "billing", KEY)))
        outcome = audit.deliver_event(mine_msg, Attempt.of(mine_msg))
        assert (outcome.kind, outcome.reason) == (Kind.DELIVERED, "archived")
    finally:
        rt.close()
