"""Email sink: silences, mute windows, grouping into digests, rate limits, then SMTP, once per (event, job).

`deliver` hands the event to the alert engine (sysevents.alerts.engine): dropped by a silence or mute
window (filtered), taken into a group or the rate limit's held-back digest (accepted), or emailed now
(delivered, retried or permanent, from the SMTP answer). The envelope does the rest.

Routes: POST / takes Pub/Sub pushes of deliveries; POST /flush sends due digests and retries failed ones
(Cloud Scheduler calls it every minute in production; the local stack every second). Each push also
flushes due digests, at most every FLUSH_EVERY seconds per instance.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta

from ...alerts.engine import AlertState, Decision
from ...deliveries import Delivery
from ...delivery.outcome import Outcome
from ...delivery.sink import Attempt, Sink
from ...jobs import Job, JobState
from ...templates import TemplateError
from .config import SINK, EmailConfig
from .mailer import Outcome as Mail

log = logging.getLogger("sysevents.email")
FLUSH_EVERY = 5.0


class EmailSink(Sink):
    name = SINK
    function = "email"

    def __init__(self, rt):
        super().__init__(rt)
        self._last_flush = 0.0

    @property
    def state(self) -> AlertState:
        return self.rt.alert_state

    def deliver(self, delivery: Delivery, job: Job, attempt: Attempt) -> Outcome:
        now = datetime.now(UTC)
        try:
            accepted = self.state.accept(job, delivery.event, now)
        except TemplateError as err:
            return Outcome.permanent(f"template error: {err}", counts_against_receiver=False)
        finally:
            self._maybe_flush()
        if accepted.decision is not Decision.EMAIL:
            if accepted.group_due and accepted.group_id:
                self._flush_one(job, accepted.group_id, now)
            if accepted.decision is Decision.DROPPED:
                return Outcome.filtered(accepted.reason)
            return Outcome.accepted(accepted.reason)
        assert accepted.outbox_id
        sent = self.state.deliver(accepted.outbox_id, job, now)
        result = sent.result
        if result.outcome is Mail.SENT:
            return Outcome.delivered(result.reason)
        if sent.busy:  # another instance holds the lease: look again when it ends
            return Outcome.wait(now + timedelta(seconds=self.rt.settings.smtp_timeout + 5), result.reason)
        if result.outcome is Mail.PERMANENT:
            return Outcome.permanent(result.reason)
        return Outcome.retry(result.reason)

    def dead_lettered(self, delivery: Delivery, job: Job, reason: str) -> None:
        self.state.mark_dead(self.state.single_outbox_id(job, delivery.event.id), reason)

    # -- digests -----------------------------------------------------------------------------------------------
    def routes(self):
        return {"/flush": lambda request: self.flush()}

    def _job_of_key(self, key: str) -> Job | None:
        aid, job_id, generation = key.split(":", 2)
        job = self.rt.cache.get(aid, job_id) or self.rt.jobs.get(aid, job_id)
        return job if job is not None and job.generation == generation else None

    def _flush_one(self, job: Job, group_id: str, now: datetime) -> None:
        """Flush a group that became due with this event; a failure is left to the next /flush."""
        try:
            flushed = self.state.flush_group(job, group_id, now)
            if flushed.outbox_id and flushed.dead_reason:
                self._dead_letter_digest(flushed.outbox_id, flushed.dead_reason, 0)
            elif flushed.outbox_id:
                sent = self.state.deliver(flushed.outbox_id, job, now)
                if sent.result.outcome is Mail.PERMANENT:
                    self._dead_letter_digest(flushed.outbox_id, sent.result.reason, sent.attempts)
        except Exception:  # the event is accepted (its pending record is stored): /flush sends its digest
            log.exception("email: flushing group %s of job %s failed", group_id, job.id)

    def _dead_letter_digest(self, oid: str, reason: str, attempts: int) -> None:
        entry = self.state.mark_dead(oid, reason)
        if entry is None:
            return
        doc = {
            k: entry.get(k)
            for k in (
                "job_id",
                "aid",
                "job_key",
                "kind",
                "subject",
                "body",
                "message_id",
                "event_ids",
                "group_id",
            )
        }
        attrs = {
            "job_id": str(entry.get("job_id")),
            "aid": str(entry.get("aid")),
            "outbox_id": oid,
            "kind": "digest",
        }
        data = json.dumps(doc, ensure_ascii=False, default=str).encode()
        self.rt.publisher.dead_letter(self.dead_letter_topic, data, attrs, reason, attempts)
        log.warning("email: dead-lettered digest %s after %d attempt(s): %s", oid, attempts, reason)

    def flush(self, now: datetime | None = None) -> dict[str, int]:
        """Send due digests, retry failed ones, dead-letter those out of attempts."""
        now = now or datetime.now(UTC)
        report = self.state.flush_due(self._job_of_key, now, on_dead=self._dead_letter_digest)
        if any(report[k] for k in ("digests", "sent", "failed", "dead_lettered", "errors")):
            log.info("email: flush %s", report)
        return report

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush < FLUSH_EVERY:
            return
        self._last_flush = time.monotonic()
        try:
            self.flush()
        except Exception:  # a flush problem must not fail the delivery that triggered it; /flush retries
            log.exception("email: opportunistic flush failed")


__all__ = ["EmailConfig", "EmailSink", "JobState"]
