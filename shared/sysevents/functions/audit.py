"""Audit: archive every valid event in the BigQuery audit table (its own push subscription on system-events).

One row per event, insertId = event id. Invalid events are acked without a row (ingest quarantines them
with the reason). A row BigQuery (or our validation) refuses goes to the audit dead-letter topic with
the reason; a failed insert is retried by Pub/Sub (503) and dead-lettered after the last attempt.
Redeliveries check the table first, so a lost acknowledgement does not archive an event twice.
"""

from __future__ import annotations

import logging
import threading

from ..bigquery.schema import TableRef, row_of_event
from ..bigquery.writer import InsertFailed, TableMissing, TableWriter
from ..events import InvalidEvent, event_from_bytes
from ..pubsub import BadPushRequest, PushMessage, parse_push
from ..runtime import Runtime, runtime

log = logging.getLogger("sysevents.audit")
SUBSCRIPTION = "system-events-audit"

_writer: TableWriter | None = None
_lock = threading.Lock()


def audit_table(rt: Runtime) -> TableRef:
    return TableRef(rt.settings.project, rt.settings.audit_dataset, rt.settings.audit_table)


def writer(rt: Runtime) -> TableWriter:
    """This instance's writer: one micro-batcher shared by all request threads."""
    global _writer
    if _writer is None:
        with _lock:
            if _writer is None:
                s = rt.settings
                _writer = TableWriter(
                    rt.bigquery,
                    max_rows=s.bigquery_batch_rows,
                    max_wait=s.bigquery_batch_wait_ms / 1000,
                    timeout=s.bigquery_timeout,
                    location=s.bigquery_location,
                )
    return _writer


def _dead_letter(rt: Runtime, msg: PushMessage, reason: str) -> tuple[str, int]:
    topic = rt.topology.subscriptions[SUBSCRIPTION].dead_letter_topic
    assert topic is not None
    rt.publisher.dead_letter(topic, msg.data, msg.attributes, reason, msg.delivery_attempt, msg.message_id)
    log.warning("audit: dead-lettered message %s: %s", msg.message_id, reason)
    return f"dead-lettered: {reason}", 200


def process(rt: Runtime, w: TableWriter, body: bytes) -> tuple[str, int]:
    try:
        msg = parse_push(body)
    except BadPushRequest as err:
        log.error("audit: %s", err)
        return str(err), 400
    try:
        event = event_from_bytes(
            msg.data, fallback_id=msg.message_id or None, max_bytes=rt.settings.max_event_bytes
        )
    except InvalidEvent as err:
        return f"not archived (invalid event; ingest quarantines it): {err.reason}", 200
    table = audit_table(rt)
    max_attempts = rt.topology.subscriptions[SUBSCRIPTION].max_delivery_attempts or 1
    try:
        if msg.delivery_attempt > 1 and w.contains(table, event.id, event.time):
            return "already archived", 200
        [result] = w.write(
            table, [(event.id, row_of_event(event, published_at=msg.publish_time))], create_if_missing=True
        )
    except (InsertFailed, TableMissing) as err:
        if msg.delivery_attempt >= max_attempts:
            return _dead_letter(rt, msg, str(err))
        log.warning(
            "audit: attempt %d for event %s failed, will retry: %s", msg.delivery_attempt, event.id, err
        )
        return f"retry: {err}", 503
    if not result.stored:
        return _dead_letter(rt, msg, result.reason or "refused")
    return "archived", 200


def handle(request):
    """HTTP entry point for the push subscription on the system-events topic."""
    if request.method != "POST":
        return {"function": "audit"}, 200
    rt = runtime()
    return process(rt, writer(rt), request.get_data())
