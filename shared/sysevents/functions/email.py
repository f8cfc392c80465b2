"""Email sink: silences, mute windows, grouping into digests, rate limits, then SMTP, once per (event, job).

Routes: POST / takes Pub/Sub pushes of deliveries; POST /flush sends due digests and retries failed ones
(Cloud Scheduler calls it every minute in production; the local stack every second). Each push also
flushes due digests, at most every FLUSH_EVERY seconds per instance.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime

from ..alerts.engine import AlertState, Decision
from ..alerts.mailer import Outcome
from ..deliveries import BadDelivery, Delivery
from ..jobs import EmailConfig, Job, JobState
from ..pubsub import BadPushRequest, PushMessage, parse_push
from ..runtime import Runtime, health, runtime
from ..templates import TemplateError

log = logging.getLogger("sysevents.email")
SINK = "email"
FLUSH_EVERY = 5.0

_state: AlertState | None = None
_lock = threading.Lock()
_last_flush = 0.0


def _dead_letter(rt: Runtime, data: bytes, attrs: dict[str, str], reason: str, attempts: int) -> None:
    sink = rt.topology.sinks[SINK]
    rt.publisher.dead_letter(sink.dead_letter_topic, data, attrs, reason, attempts)
    log.warning(
        "email: dead-lettered %s after %d attempt(s): %s",
        attrs.get("event_id") or attrs.get("outbox_id"),
        attempts,
        reason,
    )


def _push_dead_letter(
    rt: Runtime, msg: PushMessage, reason: str, attempts: int | None = None
) -> tuple[str, int]:
    attrs = {**msg.attributes, "source_message_id": msg.message_id}
    _dead_letter(rt, msg.data, attrs, reason, attempts or msg.delivery_attempt)
    return f"dead-lettered: {reason}", 200


def process(rt: Runtime, state: AlertState, body: bytes, now: datetime | None = None) -> tuple[str, int]:
    now = now or datetime.now(UTC)
    try:
        msg = parse_push(body)
    except BadPushRequest as err:
        log.error("email: %s", err)
        return str(err), 400
    try:
        delivery = Delivery.from_json(msg.data)
    except BadDelivery as err:
        return _push_dead_letter(rt, msg, str(err))
    job = rt.job_for(delivery.job_id, delivery.job_version)
    if job is None:
        return _push_dead_letter(rt, msg, f"job {delivery.job_id} no longer exists")
    if job.state is not JobState.ACTIVE:
        return _push_dead_letter(rt, msg, f"job {job.id} is {job.state.value}")
    if not isinstance(job.config, EmailConfig):
        return _push_dead_letter(rt, msg, f"job {job.id} is not an email job ({job.workflow.value})")
    try:
        accepted = state.accept(job, delivery.event, now)
    except TemplateError as err:
        return _push_dead_letter(rt, msg, f"template error: {err}")
    event_id = delivery.event.id
    if accepted.decision is not Decision.EMAIL:
        log.info("email: event %s for job %s: %s", event_id, job.id, accepted.reason)
        if accepted.group_due and accepted.group_id:
            _flush_one(rt, state, job, accepted.group_id, now)
        return accepted.reason, 200
    assert accepted.outbox_id
    sent = state.deliver(accepted.outbox_id, job, now)
    result = sent.result
    if result.outcome is Outcome.SENT:
        log.info("email: event %s for job %s: %s", event_id, job.id, result.reason)
        return result.reason, 200
    if sent.busy:
        return f"retry: {result.reason}", 503
    max_attempts = rt.topology.sink_subscription(SINK).max_delivery_attempts or 1
    if result.outcome is Outcome.PERMANENT or max(sent.attempts, msg.delivery_attempt) >= max_attempts:
        state.mark_dead(accepted.outbox_id, result.reason)
        return _push_dead_letter(rt, msg, result.reason, max(sent.attempts, msg.delivery_attempt))
    return f"retry: {result.reason}", 503


def _flush_one(rt: Runtime, state: AlertState, job: Job, group_id: str, now: datetime) -> None:
    """Flush a group that became due with this event; a failure is left to the next /flush."""
    try:
        flushed = state.flush_group(job, group_id, now)
        if flushed.outbox_id and flushed.dead_reason:
            _dead_letter_digest(rt, state, flushed.outbox_id, flushed.dead_reason, 0)
        elif flushed.outbox_id:
            sent = state.deliver(flushed.outbox_id, job, now)
            if sent.result.outcome is Outcome.PERMANENT:
                _dead_letter_digest(rt, state, flushed.outbox_id, sent.result.reason, sent.attempts)
    except Exception:  # the event is accepted (its pending record is stored): /flush sends its digest
        log.exception("email: flushing group %s of job %s failed", group_id, job.id)


def _dead_letter_digest(rt: Runtime, state: AlertState, oid: str, reason: str, attempts: int) -> None:
    entry = state.mark_dead(oid, reason)
    if entry is None:
        return
    doc = {
        k: entry.get(k) for k in ("job_id", "kind", "subject", "body", "message_id", "event_ids", "group_id")
    }
    _dead_letter(
        rt,
        json.dumps(doc, ensure_ascii=False).encode(),
        {"job_id": str(entry["job_id"]), "outbox_id": oid, "kind": "digest"},
        reason,
        attempts,
    )


def flush(rt: Runtime, state: AlertState, now: datetime | None = None) -> dict[str, int]:
    """Send due digests, retry failed ones, dead-letter those out of attempts."""
    now = now or datetime.now(UTC)
    report = state.flush_due(
        lambda job_id: rt.cache.get(job_id) or rt.jobs.get(job_id),
        now,
        on_dead=lambda oid, reason, attempts: _dead_letter_digest(rt, state, oid, reason, attempts),
    )
    if any(report[k] for k in ("digests", "sent", "failed", "dead_lettered", "errors")):
        log.info("email: flush %s", report)
    return report


def _the_state(rt: Runtime) -> AlertState:
    global _state
    if _state is None:
        with _lock:
            if _state is None:
                _state = AlertState(rt.firestore, rt.settings)
    return _state


def _maybe_flush(rt: Runtime, state: AlertState) -> None:
    global _last_flush
    if time.monotonic() - _last_flush < FLUSH_EVERY:
        return
    _last_flush = time.monotonic()
    try:
        flush(rt, state)
    except Exception:  # a flush problem must not fail the delivery that triggered it; /flush retries
        log.exception("email: opportunistic flush failed")


def handle(request):
    """HTTP entry point: Pub/Sub pushes on POST /, due digests on POST /flush."""
    rt = runtime()
    if request.method != "POST":
        return health(rt, "email")
    state = _the_state(rt)
    if request.path.rstrip("/").endswith("/flush"):
        return json.dumps(flush(rt, state)), 200, {"Content-Type": "application/json"}
    result = process(rt, state, request.get_data())
    _maybe_flush(rt, state)
    return result
