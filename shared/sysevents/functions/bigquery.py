"""BigQuery sink: stream one (event, export job) delivery into the job's table, micro-batched.

POST /tick advances due backfills a slice at a time (sysevents.bigquery.ticks).

Each push request is answered 2xx only once its row is stored (or dead-lettered with its reason); a
failed insert answers 503 so Pub/Sub redelivers. The hand-over rules of backfill-then-continuous jobs
are in sysevents.bigquery.export (`streaming_decision`).
"""

from __future__ import annotations

import json
import logging
import threading

from ..bigquery.export import Decision, Runs, streaming_decision, target_of, watermark_of
from ..bigquery.schema import row_of_event
from ..bigquery.ticks import tick
from ..bigquery.writer import InsertFailed, TableMissing, TableWriter
from ..deliveries import BadDelivery, Delivery
from ..jobs import JobState, Workflow
from ..pubsub import BadPushRequest, PushMessage, parse_push
from ..runtime import Runtime, health, runtime
from ..webhook import WebhookSender
from .audit import writer

log = logging.getLogger("sysevents.bigquery")
SINK = "bigquery"

_runs: Runs | None = None
_sender: WebhookSender | None = None
_lock = threading.Lock()


def runs(rt: Runtime) -> Runs:
    global _runs
    if _runs is None:
        with _lock:
            if _runs is None:
                _runs = Runs(rt.firestore, rt.settings.exports_collection)
    return _runs


def _dead_letter(rt: Runtime, msg: PushMessage, reason: str) -> tuple[str, int]:
    sink = rt.topology.sinks[SINK]
    rt.publisher.dead_letter(
        sink.dead_letter_topic, msg.data, msg.attributes, reason, msg.delivery_attempt, msg.message_id
    )
    log.warning("bigquery: dead-lettered message %s: %s", msg.message_id, reason)
    return f"dead-lettered: {reason}", 200


def process(rt: Runtime, w: TableWriter, r: Runs, body: bytes) -> tuple[str, int]:
    try:
        msg = parse_push(body)
    except BadPushRequest as err:
        log.error("bigquery: %s", err)
        return str(err), 400
    try:
        delivery = Delivery.from_json(msg.data)
    except BadDelivery as err:
        return _dead_letter(rt, msg, str(err))
    job = rt.job_for(delivery.job_id, delivery.job_version)
    if job is None:
        return _dead_letter(rt, msg, f"job {delivery.job_id} no longer exists")
    if job.workflow is not Workflow.BIGQUERY:
        return _dead_letter(rt, msg, f"job {job.id} is a {job.workflow.value} job")
    if job.state is not JobState.ACTIVE:
        return _dead_letter(rt, msg, f"job {job.id} is {job.state.value}")
    event = delivery.event
    max_attempts = rt.topology.sink_subscription(SINK).max_delivery_attempts or 1
    last_attempt = msg.delivery_attempt >= max_attempts
    try:
        decision = streaming_decision(
            job, event, handover_seconds=rt.settings.export_handover_seconds, backfill_done=r.is_done
        )
        if decision is Decision.SKIP:
            return f"not streamed: job {job.id} is exported by its backfill", 200
        if decision is Decision.HOLD:
            # Before the watermark while the backfill runs: parked for the backfill to finish with (acked,
            # so it neither slows this subscription down nor runs out of attempts) -- unless the backfill
            # finished in the meantime.
            wm = watermark_of(job, rt.settings.export_handover_seconds)
            if not r.park_unless_done(job, wm, event, msg.publish_time):
                log.info("bigquery: event %s parked until job %s's backfill finishes", event.id, job.id)
                return "parked: event before the watermark, the backfill is still running", 200
            decision = Decision.WRITE_IF_ABSENT
        target = target_of(job, rt.settings.project)
        if (decision is Decision.WRITE_IF_ABSENT or msg.delivery_attempt > 1) and w.contains(
            target, event.id, event.time
        ):
            return "already stored", 200
        [result] = w.write(
            target,
            [(event.id, row_of_event(event, published_at=msg.publish_time))],
            create_if_missing=job.config.create_if_missing,  # type: ignore[attr-defined]
        )
    except TableMissing as err:
        return _dead_letter(rt, msg, str(err))
    except InsertFailed as err:
        if last_attempt:
            return _dead_letter(rt, msg, str(err))
        log.warning("bigquery: attempt %d for event %s failed: %s", msg.delivery_attempt, event.id, err)
        return f"retry: {err}", 503
    if not result.stored:
        return _dead_letter(rt, msg, result.reason or "refused")
    return "stored", 200


def sender(rt: Runtime) -> WebhookSender:
    """This instance's sender for webhook batch exports (guarded session, sandboxed templates)."""
    global _sender
    if _sender is None:
        with _lock:
            if _sender is None:
                _sender = WebhookSender(rt.settings)
    return _sender


def handle(request):
    """HTTP entry point: Pub/Sub pushes of deliveries on POST /; POST /tick advances due backfills (one-time
    and backfill-then-continuous exports, webhook batch exports; Cloud Scheduler calls it)."""
    rt = runtime()
    if request.method != "POST":
        return health(rt, "bigquery")
    if request.path.rstrip("/").endswith("/tick"):
        report = tick(rt, writer=writer(rt), sender=sender(rt))
        return json.dumps(report), 200, {"Content-Type": "application/json"}
    return process(rt, writer(rt), runs(rt), request.get_data())
