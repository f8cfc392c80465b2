"""Redrive: events ingest gave up on (its subscription's dead-letter topic), published again.

While what ingest needs is down, Pub/Sub retries: ingest answers 503 when Pub/Sub does not take its
deliveries, and fails (500) when its job cache cannot reach Firestore; after `max_delivery_attempts`
(about 40 minutes of an outage) Pub/Sub moves the event to `system-events-dead-letter`, whose hold
subscription keeps it 7 days. Once the outage is over, `redrive`
pulls them from there and publishes each to the ingest topic again, with its attributes (its trace too)
and a `redriven` count, and acknowledges it only once Pub/Sub has taken the copy: nothing is lost if it
stops half way, and what it had not acknowledged comes back on the next run.

An event with an `id` keeps it, so sinks and receivers see the same event; a flat event without one was
given its first message's id by the audit archive, and gets the redriven message's id from ingest (set
`id` in producers: docs/events.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.api_core.exceptions import DeadlineExceeded
from google.cloud import pubsub_v1

from sysevents.topology import Topology
from sysevents.transport.pubsub import Publisher

HOLD_SUFFIX = "-hold"
REDRIVEN_ATTR = "redriven"
"""Message attribute: how many times the event was published again from the dead letters."""
_PUBSUB_ATTRS = ("CloudPubSubDeadLetterSourceDeliveryCount", "CloudPubSubDeadLetterSourceSubscription",
                 "CloudPubSubDeadLetterSourceSubscriptionProject",
                 "CloudPubSubDeadLetterSourceTopicPublishTime")  # fmt: skip
"""Attributes Pub/Sub adds when it dead-letters a message (about the dead-lettering, not the event)."""


@dataclass
class Redriven:
    published: int = 0
    message_ids: list[str] = field(default_factory=list)


def hold_subscription(topology: Topology) -> str:
    """The subscription that keeps what ingest dead-lettered."""
    ingest = next(
        s for s in topology.subscriptions.values() if s.topic == topology.ingest_topic and s.push_function
    )
    if not ingest.dead_letter_topic:
        raise ValueError(f"subscription {ingest.name} has no dead-letter topic")
    return ingest.dead_letter_topic + HOLD_SUFFIX


def redrive(
    project: str,
    topology: Topology,
    *,
    limit: int = 1000,
    batch: int = 100,
    wait: float = 5.0,
    subscriber: pubsub_v1.SubscriberClient | None = None,
    publisher: Publisher | None = None,
) -> Redriven:
    """Publish up to `limit` dead-lettered events to the ingest topic again; returns what it published."""
    subscriber = subscriber or pubsub_v1.SubscriberClient()
    publisher = publisher or Publisher(project)
    path = subscriber.subscription_path(project, hold_subscription(topology))
    done = Redriven()
    while done.published < limit:
        try:
            resp = subscriber.pull(
                request={"subscription": path, "max_messages": min(batch, limit - done.published)},
                timeout=wait,
            )
        except DeadlineExceeded:  # nothing came within `wait`: nothing (more) is held
            break
        received = list(resp.received_messages)
        if not received:
            break
        copies = []
        for r in received:
            attrs = {k: v for k, v in r.message.attributes.items() if k not in _PUBSUB_ATTRS}
            times = attrs.get(REDRIVEN_ATTR, "0")
            attrs[REDRIVEN_ATTR] = str((int(times) if times.isdigit() and len(times) < 6 else 0) + 1)
            copies.append((topology.ingest_topic, bytes(r.message.data), attrs, r.message.ordering_key or ""))
        ids = publisher.publish_all(copies)  # raises if Pub/Sub did not take them: nothing acknowledged
        subscriber.acknowledge(request={"subscription": path, "ack_ids": [r.ack_id for r in received]})
        done.published += len(received)
        done.message_ids += ids
    return done
