"""Ingest: validate each event, quarantine the invalid ones, fan valid ones out to matching jobs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from .. import origin
from ..deliveries import Delivery
from ..events import InvalidEvent, event_from_bytes
from ..pubsub import BadPushRequest, parse_push
from ..runtime import Runtime, health, runtime

log = logging.getLogger("sysevents.ingest")


def process(rt: Runtime, body: bytes) -> tuple[str, int]:
    try:
        msg = parse_push(body)
    except BadPushRequest as err:
        # Not a Pub/Sub push: nothing to quarantine. 400 makes Pub/Sub retry, then dead-letter it.
        log.error("ingest: %s", err)
        return str(err), 400
    try:
        event = event_from_bytes(
            msg.data, fallback_id=msg.message_id or None, max_bytes=rt.settings.max_event_bytes
        )
    except InvalidEvent as err:
        rt.publisher.publish_all(
            [
                (
                    rt.topology.quarantine_topic,
                    msg.data,
                    {
                        "reason": err.reason,
                        "source_message_id": msg.message_id,
                        "source_subscription": msg.subscription or "",
                        "quarantined_at": datetime.now(UTC).isoformat(),
                    },
                )
            ]
        )
        log.warning("ingest: quarantined message %s: %s", msg.message_id, err.reason)
        return f"quarantined: {err.reason}", 200
    jobs, held = origin.deliverable(event, rt.cache.match(event))  # loop protection: see sysevents.origin
    for job_id, why in held:
        log.info("ingest: event %s not delivered to job %s: %s", event.id, job_id, why)
    out = []
    for job in jobs:
        d = Delivery.of(event, job)
        # Ordered webhook jobs: one ordering key per (job, subject), so a subject's events arrive in order
        # while other subjects (and jobs) are not held up behind a failing one.
        key = f"{job.id}/{event.subject_id}" if getattr(job.config, "ordered", False) else ""
        out.append((rt.topology.sinks[job.sink].topic, d.to_json(), d.attributes(), key))
    rt.publisher.publish_all(out)
    log.info(
        "ingest: event %s (%s/%s %s) matched %d job(s)",
        event.id,
        event.subject_type,
        event.subject_id,
        event.verb,
        len(jobs),
    )
    return f"matched {len(jobs)}", 200


def handle(request) -> tuple[str, int]:
    """HTTP entry point for the push subscription on the system-events topic."""
    if request.method != "POST":
        return health(runtime(), "ingest")
    return process(runtime(), request.get_data())
