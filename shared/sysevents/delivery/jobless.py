"""The envelope of job-less sinks (the audit archive): the message is an event, not a delivery to a job.

The same rules as the job envelope (sysevents.delivery.envelope) without a job: `sink.deliver_event`
returns an Outcome; a retry waits in the delay queue on the default retry schedule (released to the sink's
own retry topic), the last failure or a permanent one is dead-lettered to the sink's dead-letter topic with
the reason; the message is acknowledged in every case (503 only when the delay queue cannot take a wait).
No per-job state: nothing here touches Firestore.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sysevents.delivery.envelope import retry_delay
from sysevents.delivery.outcome import Kind, Outcome
from sysevents.delivery.sink import ATTEMPT_ATTR, Attempt, Sink
from sysevents.jobs.model import DEFAULT_RETRY_SCHEDULE
from sysevents.transport.delays import DelayFailed, Release, task_id
from sysevents.transport.pubsub import PushMessage, first_publish_attributes, handle_push

if TYPE_CHECKING:
    from sysevents.runtime import Runtime

log = logging.getLogger("sysevents.delivery")


class JoblessEnvelope:
    def __init__(self, rt: Runtime, sink: Sink):
        self.rt = rt
        self.sink = sink

    def push(self, body: bytes) -> tuple[str, int]:
        return handle_push(
            self.sink.name, self.rt.settings.project, body, lambda msg: self._jobless(msg, Attempt.of(msg))
        )

    def _jobless(self, msg: PushMessage, attempt: Attempt) -> tuple[str, int]:
        try:
            outcome = self.sink.deliver_event(msg, attempt)
        except Exception as err:
            log.exception("%s: message %s failed", self.sink.name, msg.message_id)
            outcome = Outcome.retry(f"sink error: {type(err).__name__}: {err}"[:1000])
        if outcome.kind is Kind.RETRY:
            if attempt.number > len(DEFAULT_RETRY_SCHEDULE):
                outcome = outcome.but(kind=Kind.PERMANENT)
            else:
                wait = retry_delay(DEFAULT_RETRY_SCHEDULE, attempt.number, self.rt.settings.time_scale)
                attrs = {k: v for k, v in msg.attributes.items() if k != ATTEMPT_ATTR}
                attrs.update(attempt.next().attributes_for_release())
                attrs.update(first_publish_attributes(msg))  # the retry is a new message: the same event
                at = datetime.now(UTC) + timedelta(seconds=wait)
                name = task_id(self.sink.topic, msg.message_id, str(attempt.number + 1))
                try:
                    self.rt.delays.put(Release(self.sink.topic, msg.data, attrs), at, name)
                except DelayFailed as err:
                    log.error("%s: %s", self.sink.name, err)
                    return f"retry later: {err}", 503
                log.info("%s: message %s failed (attempt %d), next at %s: %s", self.sink.name,
                         msg.message_id, attempt.number, at.isoformat(), outcome.reason)  # fmt: skip
                return f"retry: {outcome.reason}", 200
        if outcome.kind is Kind.PERMANENT:
            return self._dead_letter(msg, outcome.reason, attempt.number)
        log.info("%s: message %s %s: %s", self.sink.name, msg.message_id, outcome.kind.value, outcome.reason)
        return outcome.reason, 200

    def _dead_letter(self, msg: PushMessage, reason: str, attempts: int) -> tuple[str, int]:
        attrs = {k: v for k, v in msg.attributes.items() if k != ATTEMPT_ATTR}
        self.rt.publisher.dead_letter(
            self.sink.dead_letter_topic, msg.data, attrs, reason, attempts, msg.message_id
        )
        log.warning(
            "%s: dead-lettered message %s after %d attempt(s): %s",
            self.sink.name,
            msg.message_id,
            attempts,
            reason,
        )
        return f"dead-lettered: {reason}", 200
