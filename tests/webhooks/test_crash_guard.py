"""The crash guard: a delivery its sink never answers ends in the job's dead-letter list, with a reason.

Pub/Sub dead-letters a message itself only when the consumer never acknowledged it, max_delivery_attempts
times. The crashing consumer here is a pull subscription the test never acknowledges (each pull ends like
a function killed mid-request), because the Pub/Sub emulator's *push* loop breaks for good when it
dead-letters (docs/local-stack notes): the dead-lettering itself, the dead-letter topic, its push to the
webhook function's /dead-letters route and the listing are all the real ones.
"""

from __future__ import annotations

import uuid

import pytest
from google.cloud import pubsub_v1
from helpers import put_jobs as put
from helpers import wait_until, webhook_job

from sysevents.delivery.accounting import DeliveryLog
from sysevents.delivery.message import Delivery
from sysevents.delivery.replay import replay
from sysevents.events.model import new_event

pytestmark = pytest.mark.integration
MAX_ATTEMPTS = 5  # Pub/Sub's minimum


def crash_on(stack, subscriber, data: bytes, attrs: dict[str, str]) -> None:
    """Publish to a private topic whose pull subscription dead-letters like the webhook's, then never
    acknowledge: every pull ends as a crash would, until Pub/Sub gives up on it."""
    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(stack.project, f"crash-{uuid.uuid4().hex[:10]}")
    publisher.create_topic(name=topic)
    sub = subscriber.subscription_path(stack.project, f"crash-{uuid.uuid4().hex[:10]}")
    dead = publisher.topic_path(stack.project, stack.topology.sinks["webhook"].dead_letter_topic)
    subscriber.create_subscription(
        request={
            "name": sub,
            "topic": topic,
            "ack_deadline_seconds": 10,
            "dead_letter_policy": {"dead_letter_topic": dead, "max_delivery_attempts": MAX_ATTEMPTS},
        }
    )
    try:
        publisher.publish(topic, data, **attrs).result(timeout=30)
        pulls = 0

        def crash() -> bool:
            """One pull, dropped as a crash would; True once Pub/Sub moved the message on."""
            nonlocal pulls
            got = subscriber.pull(subscription=sub, max_messages=1, timeout=5).received_messages
            if not got:
                return pulls >= MAX_ATTEMPTS  # Pub/Sub moved it to the dead-letter topic
            pulls += 1
            subscriber.modify_ack_deadline(subscription=sub, ack_ids=[got[0].ack_id], ack_deadline_seconds=0)
            return False

        wait_until(crash, timeout=60, every=0)
        assert pulls >= MAX_ATTEMPTS, f"pulled only {pulls} times"
    finally:
        subscriber.delete_subscription(subscription=sub)
        publisher.delete_topic(topic=topic)


def test_a_delivery_the_sink_never_answers_is_listed_with_a_reason_and_replayable(
    stack, store, subscriber, firestore_client, receiver, aid
):
    job = webhook_job("crashes", aid, receiver.url("/crash"))
    put(stack, store, job)
    job = store.get(aid, job.id)
    event = new_event(aid, "work", "w-crash", "failed")
    delivery = Delivery.of(event, job)
    crash_on(stack, subscriber, delivery.to_json(), delivery.attributes())

    dlog = DeliveryLog(firestore_client)
    listed = wait_until(lambda: dlog.dead_letters(job), timeout=60)
    assert [d["webhook_id"] for d in listed] == [delivery.id]
    assert "never answered" in listed[0]["reason"] and "crash or a timeout" in listed[0]["reason"]
    stats = wait_until(lambda: (s := dlog.stats(job))["dead_lettered"] == 1 and s, timeout=30)
    assert (stats["received"], stats["dead_lettered"], stats["pending"]) == (1, 1, 0)
    assert receiver.at("/crash") == []  # the sink never sent it

    from sysevents.runtime import Runtime

    rt = Runtime()
    try:
        assert replay(rt, job) == [delivery.id]
    finally:
        rt.close()
    got = receiver.wait_for("/crash", 1, timeout=60)
    assert got[0].headers["webhook-id"] == delivery.id  # the same delivery, once it no longer crashes
    assert wait_until(lambda: dlog.stats(job)["delivered"] == 1, timeout=30)
    assert dlog.dead_letters(job) == []
