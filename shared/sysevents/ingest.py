"""Ingest: validate each event, quarantine the invalid ones, fan valid ones out to matching jobs.

Every message gets an outcome the code decides: an event that cannot be fully processed (invalid,
or failing anywhere in parsing, validation or matching) is published to the quarantine topic with a
reason and acknowledged, so nothing is retried forever and nothing is dropped silently. Only what ingest
needs being down has Pub/Sub retry it: a failure to publish the deliveries (Pub/Sub unavailable) answers
503, the job cache not reaching Firestore (`JobCacheUnavailable`, a timeout) fails the request (500).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial

from sysevents.delivery.attempt import SETTLE_ATTR, first_settle_key
from sysevents.delivery.message import Delivery
from sysevents.events.model import InvalidEvent, SystemEvent, event_from_bytes
from sysevents.jobs import origin
from sysevents.obs import logs
from sysevents.runtime import Runtime, health, instance
from sysevents.transport.pubsub import PushMessage, first_publish, handle_push

log = logging.getLogger("sysevents.ingest")


def _quarantine(rt: Runtime, msg: PushMessage, reason: str) -> tuple[str, int]:
    rt.publisher.publish_all(
        [
            (
                rt.topology.quarantine_topic,
                msg.data,
                {
                    "reason": reason,
                    "source_message_id": msg.message_id,
                    "source_subscription": msg.subscription or "",
                    "quarantined_at": datetime.now(UTC).isoformat(),
                },
            )
        ]
    )
    try:
        rt.quarantine.record(msg.data, reason, msg.message_id, msg.subscription)
    except Exception:  # the topic has it (with the reason); the index is for reading it back
        log.exception("ingest: could not index quarantined message %s", msg.message_id)
    logs.event(
        log,
        "quarantine",
        f"ingest: quarantined message {msg.message_id}: {reason}",
        level=logging.WARNING,
        message_id=msg.message_id,
        subscription=msg.subscription,
        reason=reason,
    )
    return f"quarantined: {reason}", 200


def _fan_out(rt: Runtime, event: SystemEvent) -> list[tuple[str, bytes, dict[str, str], str]]:
    jobs, held = origin.deliverable(
        event, rt.cache.match(event)
    )  # loop protection: see sysevents.jobs.origin
    for job_id, why in held:
        log.info("ingest: event %s not delivered to job %s: %s", event.id, job_id, why)
    trace = {logs.TRACEPARENT_ATTR: tp} if (tp := logs.current_traceparent()) else {}
    out = []
    for job in jobs:
        d = Delivery.of(event, job)
        attrs = {**d.attributes(), **trace}  # one event, one trace: every delivery carries it on
        # settled under a key fixed by (job, event): published twice (a retried fan-out), it counts once
        attrs[SETTLE_ATTR] = first_settle_key(job, event.id)
        out.append((rt.topology.sinks[job.sink].topic, d.to_json(), attrs, job.ordering_key(event)))
    return out


def process(rt: Runtime, body: bytes) -> tuple[str, int]:
    return handle_push("ingest", rt.settings.project, body, lambda msg: _process(rt, msg))


def _process(rt: Runtime, msg: PushMessage) -> tuple[str, int]:
    producers = rt.producers  # settings that cannot be used fail the request (retried), never the event
    try:
        first_id, first_time = first_publish(msg)
        event = event_from_bytes(
            msg.data, fallback_id=first_id, fallback_time=first_time, max_bytes=rt.settings.max_event_bytes
        )
        own = partial(origin.trusted, msg.data, msg.attributes, rt.settings.sealing_keys)
        if why := producers.refusal(msg.data, msg.attributes, event.aid, own):
            raise InvalidEvent(why)  # a producer not bound to the account (sysevents.events.producers)
        if origin.claimed(event) and not origin.trusted(msg.data, msg.attributes, rt.settings.sealing_keys):
            raise InvalidEvent(
                f"data.{origin.FIELD} is set by sysevents only; a producer's event may not carry it"
            )
        out = _fan_out(rt, event)
    except InvalidEvent as err:
        return _quarantine(rt, msg, err.reason)
    except (TimeoutError, OSError):
        raise  # the job cache or the network, not the event: retried
    except Exception as err:  # anything else about this event: it cannot be processed, ever
        log.exception("ingest: message %s could not be processed", msg.message_id)
        return _quarantine(rt, msg, f"the event could not be processed: {type(err).__name__}: {err}"[:1000])
    try:
        rt.publisher.publish_all(out)
    except Exception as err:  # Pub/Sub did not take them: retried. Deliveries already published repeat with
        # the same delivery ids (one webhook-id: receivers de-duplicate) and settle keys (counted once)
        log.exception("ingest: publishing the deliveries of event %s failed", event.id)
        return f"retry: could not publish deliveries: {type(err).__name__}", 503
    logs.event(
        log,
        "ingest",
        f"ingest: event {event.id} ({event.subject_type.value}/{event.subject_id} {event.verb.value}) "
        f"matched {len(out)} job(s)",
        aid=event.aid,
        event_id=event.id,
        matched=len(out),
    )
    return f"matched {len(out)}", 200


def handle(request) -> tuple[str, int]:
    """HTTP entry point for the push subscription on the system-events topic."""
    rt = instance()
    if request.method != "POST":
        return health(rt, "ingest")
    if rt.meter is None:
        return process(rt, request.get_data())
    with rt.meter.request(request.get_data()):
        return process(rt, request.get_data())
