"""Audit: archive every valid event in the BigQuery audit table (its own push subscription on system-events).

A job-less sink: its messages are the events themselves. One row per event, insertId = event id.
Invalid events, and events of a producer not bound to their account (sysevents.events.producers), are
acknowledged without a row (ingest quarantines them with the reason). A row BigQuery
(or our validation) refuses goes to the audit dead-letter topic with the reason; a failed insert is
retried and dead-lettered after the last attempt. Redeliveries check the table first, so a lost
acknowledgement does not archive an event twice.
"""

from __future__ import annotations

from functools import partial

from sysevents.auditlog.schema import audit_table, row_of_event
from sysevents.auditlog.writer import InsertFailed, TableMissing
from sysevents.delivery.attempt import Attempt
from sysevents.delivery.outcome import Outcome
from sysevents.delivery.sink import Sink
from sysevents.events.model import InvalidEvent, event_from_bytes
from sysevents.jobs import origin
from sysevents.transport.pubsub import PushMessage, first_publish

SUBSCRIPTION = "system-events-audit"
RETRY_TOPIC = "system-events-audit-retry"
"""Where a failed archive's next attempt is released (not the ingest topic: ingest would match it again)."""


class AuditSink(Sink):
    name = "audit"
    function = "audit"
    per_job = False

    @property
    def topic(self) -> str:
        return RETRY_TOPIC

    @property
    def dead_letter_topic(self) -> str:
        topic = self.rt.topology.subscriptions[SUBSCRIPTION].dead_letter_topic
        assert topic is not None
        return topic

    def deliver_event(self, message: PushMessage, attempt: Attempt) -> Outcome:
        rt = self.rt
        try:
            first_id, first_time = first_publish(message)
            event = event_from_bytes(
                message.data,
                fallback_id=first_id,
                fallback_time=first_time,
                max_bytes=rt.settings.max_event_bytes,
            )
        except InvalidEvent as err:
            return Outcome.filtered(f"not archived (invalid event; ingest quarantines it): {err.reason}")
        own = partial(origin.trusted, message.data, message.attributes, rt.settings.sealing_keys)
        if why := rt.producers.refusal(message.data, message.attributes, event.aid, own):
            return Outcome.filtered(f"not archived (ingest quarantines it): {why}")
        table = audit_table(rt.settings)
        writer = rt.table_writer
        try:
            if attempt.number > 1 and writer.contains(table, event.id, event.time):
                return Outcome.delivered("already archived")
            [result] = writer.write(
                table,
                [(event.id, row_of_event(event, published_at=message.publish_time))],
                create_if_missing=True,
            )
        except (InsertFailed, TableMissing) as err:
            return Outcome.retry(str(err))
        if not result.stored:
            return Outcome.permanent(result.reason or "refused")
        return Outcome.delivered("archived")
