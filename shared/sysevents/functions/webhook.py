"""Webhook sink: deliver one (event, job); retry transient failures; dead-letter the rest with a reason."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from ..deliveries import BadDelivery, Delivery
from ..jobs import JobState
from ..pubsub import BadPushRequest, PushMessage, parse_push
from ..runtime import Runtime, health, runtime
from ..webhook import Outcome, WebhookSender

log = logging.getLogger("sysevents.webhook")
SINK = "webhook"

_sender: WebhookSender | None = None
_lock = threading.Lock()


def _dead_letter(rt: Runtime, msg: PushMessage, reason: str, **attrs: str) -> tuple[str, int]:
    sink = rt.topology.sinks[SINK]
    rt.publisher.publish_all(
        [
            (
                sink.dead_letter_topic,
                msg.data,
                {
                    **msg.attributes,
                    "reason": reason,
                    "attempts": str(msg.delivery_attempt),
                    **attrs,
                    "source_message_id": msg.message_id,
                    "dead_lettered_at": datetime.now(UTC).isoformat(),
                },
            )
        ]
    )
    log.warning(
        "webhook: dead-lettered message %s after %d attempt(s): %s",
        msg.message_id,
        msg.delivery_attempt,
        reason,
    )
    return f"dead-lettered: {reason}", 200


def process(rt: Runtime, sender: WebhookSender, body: bytes) -> tuple[str, int]:
    try:
        msg = parse_push(body)
    except BadPushRequest as err:
        log.error("webhook: %s", err)
        return str(err), 400
    try:
        delivery = Delivery.from_json(msg.data)
    except BadDelivery as err:
        return _dead_letter(rt, msg, str(err))
    job = rt.cache.get(delivery.job_id)
    if job is None:
        return _dead_letter(rt, msg, f"job {delivery.job_id} no longer exists")
    if job.state is not JobState.ACTIVE:
        return _dead_letter(rt, msg, f"job {job.id} is {job.state.value}")
    result = sender.send(job, delivery)
    if result.outcome is Outcome.DELIVERED:
        log.info(
            "webhook: delivered event %s to job %s v%d (HTTP %s, %.0f ms, attempt %d)",
            delivery.event.id,
            job.id,
            job.version,
            result.status,
            result.latency_ms or 0,
            msg.delivery_attempt,
        )
        return "delivered", 200
    if result.outcome is Outcome.PERMANENT:
        return _dead_letter(rt, msg, result.reason, job_version_used=str(job.version))
    failures = rt.attempts.record_failure(
        job.id, delivery.event.id, result.reason, result.status, msg.delivery_attempt
    )
    if failures >= (rt.topology.sink_subscription(SINK).max_delivery_attempts or 1):
        return _dead_letter(rt, msg, result.reason, attempts=str(failures), job_version_used=str(job.version))
    log.info(
        "webhook: attempt %d for event %s to job %s failed, will retry: %s",
        failures,
        delivery.event.id,
        job.id,
        result.reason,
    )
    return f"retry: {result.reason}", 503


def _the_sender(rt: Runtime) -> WebhookSender:
    global _sender
    if _sender is None:
        with _lock:
            if _sender is None:
                _sender = WebhookSender(rt.settings)
    return _sender


def handle(request) -> tuple[str, int]:
    """HTTP entry point for the push subscription on the webhook deliveries topic."""
    if request.method != "POST":
        return health(runtime(), "webhook")
    rt = runtime()
    return process(rt, _the_sender(rt), request.get_data())
