"""Webhook sink: deliver one (event, job); retry transient failures; dead-letter the rest with a reason.

Per push request: the job is looked up in the instance's cache. A deleted or paused job's delivery is
acknowledged as *filtered* (counted, not dead-lettered). A job whose receiver answered with Retry-After
is *held* in this instance until then: its deliveries get 503 (Pub/Sub redelivers with backoff) without
contacting the receiver, because a push subscription cannot delay one message. Otherwise the delivery is
sent (alone or in a batch), logged and counted (sysevents.deliverylog), and ends delivered, retried
(503), or dead-lettered with its reason — to the dead-letter topic and to Firestore, where replay finds it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .. import origin
from ..deliveries import BadDelivery, Delivery
from ..deliverylog import DeliveryLog
from ..events import new_event
from ..jobs import Job, JobState, WebhookConfig
from ..pubsub import BadPushRequest, PushMessage, parse_push
from ..runtime import Runtime, health, runtime
from ..store import JobNotFound
from ..webhook import Outcome, Result, WebhookSender, webhook_id

log = logging.getLogger("sysevents.webhook")
SINK = "webhook"
REPLAY_TEMPLATE_ATTR = "template_version"

_sender: WebhookSender | None = None
_logs: dict[int, DeliveryLog] = {}
_lock = threading.Lock()


class Holds:
    """Jobs whose receiver asked for time (Retry-After): job id -> monotonic time to wait until."""

    def __init__(self):
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def hold(self, job_id: str, seconds: float) -> None:
        with self._lock:
            self._until[job_id] = max(self._until.get(job_id, 0.0), time.monotonic() + seconds)

    def remaining(self, job_id: str) -> float:
        with self._lock:
            until = self._until.get(job_id)
            if until is None:
                return 0.0
            left = until - time.monotonic()
            if left <= 0:
                del self._until[job_id]
            return max(left, 0.0)


HOLDS = Holds()


@dataclass
class _Batch:
    items: list[Delivery] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    result: Result | None = None


class Batcher:
    """Coalesces concurrent push requests for one job into one POST (a JSON array).

    The first request of a batch waits up to `batch_max_wait_ms` (or until `batch_max_size` requests
    joined), sends, and every request of the batch then answers with that one outcome."""

    def __init__(self):
        self._open: dict[str, _Batch] = {}
        self._lock = threading.Lock()

    def send(self, sender: WebhookSender, job: Job, delivery: Delivery, template) -> Result:
        config = job.config
        assert isinstance(config, WebhookConfig)
        with self._lock:
            batch = self._open.get(job.id)
            leader = batch is None
            if leader:
                batch = self._open[job.id] = _Batch()
            batch.items.append(delivery)
            if len(batch.items) >= config.batch_max_size:
                self._open.pop(job.id, None)
                batch.full.set()
        if not leader:
            batch.done.wait()
            assert batch.result is not None
            return batch.result
        batch.full.wait(config.batch_max_wait_ms / 1000)
        with self._lock:
            if self._open.get(job.id) is batch:
                del self._open[job.id]
        try:
            batch.result = sender.send(job, list(batch.items), template=template, batch=True)
        finally:
            if batch.result is None:
                batch.result = Result(Outcome.RETRY, "batch send failed")
            batch.done.set()
        return batch.result


BATCHER = Batcher()


def _dead_letter(
    rt: Runtime,
    dlog: DeliveryLog,
    msg: PushMessage,
    reason: str,
    job_id: str | None,
    attempts: int,
    msg_id: str | None,
) -> tuple[str, int]:
    sink = rt.topology.sinks[SINK]
    extra = {"webhook_id": msg_id} if msg_id else {}
    attrs = rt.publisher.dead_letter(
        sink.dead_letter_topic, msg.data, {**msg.attributes, **extra}, reason, attempts, msg.message_id
    )
    if job_id and msg_id:
        dlog.dead_letter(job_id, msg_id, msg.data, attrs)
    log.warning("webhook: dead-lettered message %s after %d attempt(s): %s", msg.message_id, attempts, reason)
    return f"dead-lettered: {reason}", 200


def _template_for(dlog: DeliveryLog, job: Job, msg: PushMessage):
    """The template to render with: the job's, or a stored older version (replay). ... if unknown."""
    config = job.config
    assert isinstance(config, WebhookConfig)
    wanted = msg.attributes.get(REPLAY_TEMPLATE_ATTR)
    if wanted and wanted.isdigit() and int(wanted) != job.version:
        found, template = dlog.template(job.id, int(wanted))
        return template if found else ...
    dlog.remember_template(job.id, job.version, config.json_template)
    return config.json_template


def _auto_disable(rt: Runtime, dlog: DeliveryLog, job: Job, reason: str, cause) -> None:
    """Pause a job that keeps failing; its `work failed` event counts one hop after `cause` (the event
    whose delivery failed last), so chains of alerts on failures end (sysevents.origin)."""
    config = job.config
    assert isinstance(config, WebhookConfig)
    if not config.auto_disable_failures:
        return
    failures, since = dlog.streak_failure(job.id)
    elapsed = (datetime.now(UTC) - since).total_seconds()
    if failures < config.auto_disable_failures or elapsed < config.auto_disable_seconds:
        return
    why = (
        f"auto-disabled: {failures} consecutive failed deliveries over {elapsed:.0f} s "
        f"(limit {config.auto_disable_failures} over {config.auto_disable_seconds} s); last: {reason}"
    )
    try:
        _, new = rt.jobs.change(
            job.aid,
            job.id,
            lambda j: j.model_copy(update={"state": JobState.PAUSED, "disabled_reason": why[:1000]}),
        )
    except JobNotFound:
        return
    dlog.reset_streak(job.id)
    event = new_event(
        job.aid,
        "work",
        job.id,
        "failed",
        actor="sysevents",
        notes=why,
        change="auto-disabled",
        job_version=new.version,
        workflow=job.workflow.value,
        job_name=job.name,
        **origin.caused_by(job.id, cause),
    )
    rt.publisher.publish_all([(rt.topology.ingest_topic, event.to_json(), {})])
    log.warning("webhook: job %s paused: %s", job.id, why)


def process(
    rt: Runtime, sender: WebhookSender, body: bytes, dlog: DeliveryLog | None = None
) -> tuple[str, int]:
    dlog = dlog or _delivery_log(rt)
    try:
        msg = parse_push(body)
    except BadPushRequest as err:
        log.error("webhook: %s", err)
        return str(err), 400
    try:
        delivery = Delivery.from_json(msg.data)
    except BadDelivery as err:
        return _dead_letter(rt, dlog, msg, str(err), None, msg.delivery_attempt, None)
    event_id, job_id = delivery.event.id, delivery.job_id
    msg_id = webhook_id(job_id, [event_id])
    job = rt.job_for(job_id, delivery.job_version)
    if job is None or job.state is not JobState.ACTIVE:
        why = f"job {job_id} no longer exists" if job is None else f"job {job_id} is {job.state.value}"
        prior = rt.attempts.failures(job_id, event_id)
        dlog.record(
            job_id,
            event_id=event_id,
            webhook_id=msg_id,
            attempt=prior + 1,
            outcome="filtered",
            first_seen=prior == 0,
            error=why,
            log_attempt=False,
        )
        log.info("webhook: filtered event %s for job %s: %s", event_id, job_id, why)
        return f"filtered: {why}", 200
    held = HOLDS.remaining(job.id)
    if held > 0:
        return f"held: receiver asked to wait {held:.0f} s more", 503
    # A first attempt Pub/Sub reports as such has no failures to look up: production skips the read.
    first_reported = msg.attempt_reported and msg.delivery_attempt == 1
    prior = 0 if first_reported else rt.attempts.failures(job.id, event_id)
    attempt = max(prior + 1, msg.delivery_attempt)
    first = prior == 0
    template = _template_for(dlog, job, msg)
    if template is ...:
        reason = f"template version {msg.attributes.get(REPLAY_TEMPLATE_ATTR)} is not known for job {job.id}"
        dlog.record(
            job.id,
            event_id=event_id,
            webhook_id=msg_id,
            attempt=attempt,
            outcome="dead_lettered",
            first_seen=first,
            error=reason,
        )
        return _dead_letter(rt, dlog, msg, reason, job.id, attempt, msg_id)
    config = job.config
    assert isinstance(config, WebhookConfig)
    if config.batch_max_size > 1:
        result = BATCHER.send(sender, job, delivery, template)
    else:
        result = sender.send(job, delivery, template=template)
    if result.outcome is Outcome.DELIVERED:
        dlog.record(
            job.id,
            event_id=event_id,
            webhook_id=msg_id,
            attempt=attempt,
            outcome="delivered",
            first_seen=first,
            status=result.status,
            latency_ms=result.latency_ms,
        )
        log.info(
            "webhook: delivered event %s to job %s v%d (HTTP %s, %.0f ms, attempt %d)",
            event_id,
            job.id,
            job.version,
            result.status,
            result.latency_ms or 0,
            attempt,
        )
        return "delivered", 200
    max_attempts = rt.topology.sink_subscription(SINK).max_delivery_attempts or 1
    if result.outcome is Outcome.RETRY:
        failures = rt.attempts.record_failure(job.id, event_id, result.reason, result.status, attempt)
        attempt = failures
    last = result.outcome is Outcome.PERMANENT or attempt >= max_attempts
    dlog.record(
        job.id,
        event_id=event_id,
        webhook_id=msg_id,
        attempt=attempt,
        outcome="dead_lettered" if last else "retry",
        first_seen=first,
        status=result.status,
        latency_ms=result.latency_ms,
        error=result.reason,
    )
    if result.counts_against_receiver:
        try:
            _auto_disable(rt, dlog, job, result.reason, delivery.event)
        except Exception:  # the delivery's own outcome must not depend on this bookkeeping
            log.exception("webhook: auto-disable check failed for job %s", job.id)
    if result.retry_after:
        HOLDS.hold(job.id, result.retry_after)
    if last:
        return _dead_letter(rt, dlog, msg, result.reason, job.id, attempt, msg_id)
    log.info(
        "webhook: attempt %d for event %s to job %s failed, will retry: %s",
        attempt,
        event_id,
        job.id,
        result.reason,
    )
    return f"retry: {result.reason}", 503


def _delivery_log(rt: Runtime) -> DeliveryLog:
    with _lock:
        if id(rt) not in _logs:
            _logs[id(rt)] = DeliveryLog(rt.firestore, retention_days=rt.settings.webhook_log_retention_days)
        return _logs[id(rt)]


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
