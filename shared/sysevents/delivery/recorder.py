"""The crash guard's recorder: what Pub/Sub itself dead-lettered joins the job's dead-letter list.

A sink decides every outcome and acknowledges (sysevents.delivery.envelope), so Pub/Sub's own
dead-lettering only fires when the sink function never answered a message: it crashed on it (out of
memory, a native crash), or ran past its timeout, `max_delivery_attempts` times. Pub/Sub then moves the
message to the sink's dead-letter topic with `CloudPubSubDeadLetterSource*` attributes and no reason.

The sink's dead-letter topic feeds its function's `/dead-letters` route (topology.json), which runs this:
- a message the sink dead-lettered itself (it has a `reason`, no `CloudPubSubDeadLetterSource*`
  attributes) is already in its job's list: acknowledged;
- a message Pub/Sub dead-lettered is listed in its job's dead-letter list with the reason, counted as
  dead-lettered (so the job's stats reconcile: it is no longer pending), and its subject's ordering key is
  freed if it was the key's head. From the list it can be replayed like any other dead letter.
- a message that is no delivery, or whose job is gone or re-created, is nobody's to list: acknowledged
  and logged; the dead-letter topic's hold subscription keeps it for operators.

Cost: one push per dead letter; two Firestore writes per Pub/Sub-dead-lettered message.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sysevents.delivery.envelope import refusal
from sysevents.delivery.message import BadDelivery, Delivery
from sysevents.delivery.sink import ATTEMPT_ATTR, SLOT_ATTR, WAITED_ATTR, Attempt, Sink
from sysevents.transport.pubsub import BadPushRequest, parse_push

if TYPE_CHECKING:
    from sysevents.runtime import Runtime

log = logging.getLogger("sysevents.delivery")

SOURCE_COUNT_ATTR = "CloudPubSubDeadLetterSourceDeliveryCount"
SOURCE_SUBSCRIPTION_ATTR = "CloudPubSubDeadLetterSourceSubscription"


def crash_reason(sink: str, attributes: dict[str, str]) -> str:
    count = attributes.get(SOURCE_COUNT_ATTR, "?")
    return (
        f"the {sink} function never answered this delivery: {count} deliveries by Pub/Sub, each ending "
        "in a crash or a timeout, before Pub/Sub dead-lettered it"
    )


def record(rt: Runtime, sink: Sink, body: bytes) -> tuple[str, int]:
    """Handle one push from the sink's dead-letter topic."""
    try:
        msg = parse_push(body)
    except BadPushRequest as err:
        log.error("%s: dead-letter recorder: %s", sink.name, err)
        return str(err), 400
    attrs = dict(msg.attributes)
    if SOURCE_COUNT_ATTR not in attrs:
        return "listed already: the sink dead-lettered it itself", 200
    reason = crash_reason(sink.name, attrs)
    try:
        delivery = Delivery.from_json(msg.data)
    except BadDelivery as err:
        log.error(
            "%s: dead-letter recorder: message %s is no delivery (%s); %s",
            sink.name,
            msg.message_id,
            err,
            reason,
        )
        return f"not a delivery: {err}", 200
    job = rt.job_for(delivery.job_aid, delivery.job_id, delivery.job_version)
    refused = refusal(sink.workflows, delivery, job)
    if job is None or (refused and not refused[1]):
        why = refused[0] if refused else "no job"
        log.error(
            "%s: dead-letter recorder: delivery %s is nobody's to list (%s); %s",
            sink.name,
            delivery.id,
            why,
            reason,
        )
        return f"not listed: {why}", 200
    attempt = Attempt.of(msg)
    kept = {k: v for k, v in attrs.items() if k not in (ATTEMPT_ATTR, WAITED_ATTR, SLOT_ATTR)}
    kept.update({"reason": reason, "attempts": str(attempt.number), "webhook_id": delivery.id})
    rt.accounting.dead_letter(job, delivery.id, msg.data, kept)
    rt.accounting.record(
        job,
        event_id=delivery.record_id,
        delivery_id=delivery.id,
        attempt=attempt.number,
        outcome="dead_lettered",
        first_seen=attempt.first,
        error=reason,
        delayed=-int(attempt.released),
        key=attempt.key,
    )
    key = job.parked_key(delivery.event) if delivery.notice is None else ""
    if key and attempt.head:
        rt.key_queues.advance(job, key, sink.topic, delivery.id)
    log.error(
        "%s: job %s/%s: delivery %s of event %s dead-lettered by Pub/Sub: %s",
        sink.name, job.aid, job.id, delivery.id, delivery.event.id, reason,
    )  # fmt: skip
    return "listed in the job's dead letters", 200
