"""The envelope every push sink runs through: one delivery, from the push request to the acknowledgement.

Stages, over one context (the Runtime) and one sink:
1. parse the push body (not a push: 400);
2. read the delivery (malformed: dead-lettered with the reason);
3. look the job up (by account and id: the instance's cache, or Firestore when it is behind);
4. the state policy (`refusal`): a delivery whose job is gone, belongs to another account, was re-created
   since (another generation), changed workflow, or is paused, is *filtered*: acknowledged, counted and
   logged with the reason, never sent;
5. `sink.deliver(delivery, job, attempt)` returns an Outcome (delivered, accepted, filtered, retry — with
   an optional Retry-After — or permanent); an exception is a retry with its type and message;
6. settle: the outcome is recorded (attempt log and counters, sysevents.delivery.accounting), and the
   request is acknowledged, retried, or dead-lettered — to the sink's dead-letter topic *and* the job's
   dead-letter list, from where it can be replayed. The last attempt is decided here, once for every
   sink: when the delivery has failed `max_delivery_attempts` times. One log line per outcome.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..deliveries import BadDelivery, Delivery
from ..jobs import Job, JobState
from ..pubsub import BadPushRequest, PushMessage, parse_push
from .outcome import Kind, Outcome
from .sink import Attempt, Sink

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("sysevents.delivery")


def refusal(sink_workflows: frozenset, delivery: Delivery, job: Job | None) -> tuple[str, bool] | None:
    """Why a delivery must not be sent to its job, and whether it is still that job's delivery (counted as
    filtered in its accounting); None: send it. The one state policy of every sink. A delivery for a job
    that is gone, re-created since (another generation) or of another account is nobody's to count."""
    if job is None:
        return f"job {delivery.job_id} no longer exists", False
    if job.aid != delivery.job_aid or delivery.event.aid != job.aid:
        return f"the event's account is not job {job.id}'s account", False
    if delivery.generation and delivery.generation != job.generation:
        return f"job {job.id} was deleted and created again since the event matched", False
    if job.workflow not in sink_workflows:
        return f"job {job.id} is now a {job.workflow.value} job", True
    if job.state is not JobState.ACTIVE:
        return f"job {job.id} is {job.state.value}", True
    return None


def dead_letter(
    rt: Runtime,
    topic: str,
    data: bytes,
    attributes: dict[str, str],
    reason: str,
    attempts: int,
    *,
    delivery: Delivery | None = None,
    job: Job | None = None,
    source_message_id: str | None = None,
) -> dict[str, str]:
    """Dead-letter a message: to the sink's dead-letter topic and, when it is a delivery to a known job,
    to the job's dead-letter list, from where it can be replayed. Returns the attributes it carried."""
    extra = {"webhook_id": delivery.id} if delivery is not None else {}
    attrs = rt.publisher.dead_letter(
        topic, data, {**attributes, **extra}, reason, attempts, source_message_id
    )
    if job is not None and delivery is not None:
        rt.accounting.dead_letter(job, delivery.id, data, attrs)
    return attrs


class Envelope:
    def __init__(self, rt: Runtime, sink: Sink):
        self.rt = rt
        self.sink = sink

    def push(self, body: bytes) -> tuple[str, int]:
        try:
            msg = parse_push(body)
        except BadPushRequest as err:
            # Not a Pub/Sub push: nothing to dead-letter. 400 tells the caller.
            log.error("%s: %s", self.sink.name, err)
            return str(err), 400
        if not self.sink.per_job:
            return self._jobless(msg)
        try:
            delivery = Delivery.from_json(msg.data)
        except BadDelivery as err:
            return self._dead_letter(msg, None, None, str(err), msg.delivery_attempt)
        job = self._job(delivery)
        refused = refusal(self.sink.workflows, delivery, job)
        if refused:
            why, counted = refused
            owner = job if counted else None
            return self.settle(
                msg,
                delivery,
                owner,
                self._attempt(msg, delivery, owner),
                Outcome.filtered(why),
                by_sink=False,
            )
        assert job is not None
        attempt = self._attempt(msg, delivery, job)
        try:
            outcome = self.sink.deliver(delivery, job, attempt)
        except Exception as err:  # the sink's own bug or an unexpected failure: retried, then dead-lettered
            log.exception(
                "%s: delivering event %s to job %s failed", self.sink.name, delivery.event.id, job.id
            )
            outcome = Outcome.retry(
                f"sink error: {type(err).__name__}: {err}"[:1000], counts_against_receiver=False
            )
        return self.settle(msg, delivery, job, attempt, outcome)

    # -- stages ----------------------------------------------------------------------------------------------
    def _job(self, delivery: Delivery) -> Job | None:
        return self.rt.job_for(delivery.job_aid, delivery.job_id, delivery.job_version)

    def _attempt(self, msg: PushMessage, delivery: Delivery, job: Job | None) -> Attempt:
        if job is None:
            return Attempt(max(msg.delivery_attempt, 1), msg.delivery_attempt <= 1, msg)
        # A first attempt Pub/Sub reports as such has no failures to look up: production skips the read.
        first_reported = msg.attempt_reported and msg.delivery_attempt == 1
        prior = 0 if first_reported else self.rt.attempts.failures(job.key, delivery.event.id)
        return Attempt(max(prior + 1, msg.delivery_attempt), prior == 0, msg)

    def settle(
        self,
        msg: PushMessage,
        delivery: Delivery,
        job: Job | None,
        attempt: Attempt,
        outcome: Outcome,
        by_sink: bool = True,
    ) -> tuple[str, int]:
        """Record the outcome, then acknowledge, retry or dead-letter."""
        if outcome.kind is Kind.RETRY and not outcome.attempted:
            # Nothing was sent (e.g. the job is held for the receiver's Retry-After): not an attempt.
            self._log(delivery, job, attempt.number, "waiting", outcome.reason)
            return f"waiting: {outcome.reason}", 503
        number = attempt.number
        if outcome.kind is Kind.RETRY and job is not None:
            number = self.rt.attempts.record_failure(
                job.key, delivery.event.id, outcome.reason, outcome.status, attempt.number
            )
            if number >= self.sink.max_attempts:
                outcome = outcome.but(kind=Kind.PERMANENT)
        name = "dead_lettered" if outcome.kind is Kind.PERMANENT else outcome.kind.value
        if job is not None:
            self.rt.accounting.record(
                job,
                event_id=delivery.event.id,
                delivery_id=delivery.id,
                attempt=number,
                outcome=name,
                first_seen=attempt.first,
                status=outcome.status,
                latency_ms=outcome.latency_ms,
                error=outcome.reason,
                log_attempt=outcome.attempted,
            )
            if by_sink:
                try:
                    self.sink.settled(delivery, job, attempt, outcome)
                except Exception:  # the delivery's own outcome must not depend on this bookkeeping
                    log.exception("%s: after-delivery step failed for job %s", self.sink.name, job.id)
        if outcome.kind is Kind.PERMANENT:
            return self._dead_letter(msg, delivery, job, outcome.reason, number)
        self._log(delivery, job, number, name, outcome.reason, outcome)
        if outcome.kind is Kind.RETRY:
            return f"retry: {outcome.reason}", 503
        return f"{name}: {outcome.reason}" if outcome.kind is not Kind.DELIVERED else "delivered", 200

    def _dead_letter(
        self, msg: PushMessage, delivery: Delivery | None, job: Job | None, reason: str, attempts: int
    ) -> tuple[str, int]:
        dead_letter(
            self.rt, self.sink.dead_letter_topic, msg.data, msg.attributes, reason, attempts,
            delivery=delivery, job=job, source_message_id=msg.message_id,
        )  # fmt: skip
        if job is not None and delivery is not None:
            try:
                self.sink.dead_lettered(delivery, job, reason)
            except Exception:
                log.exception("%s: dead-letter step failed for job %s", self.sink.name, job.id)
        self._log(delivery, job, attempts, "dead_lettered", reason, message_id=msg.message_id)
        return f"dead-lettered: {reason}", 200

    def _jobless(self, msg: PushMessage) -> tuple[str, int]:
        attempt = Attempt(max(msg.delivery_attempt, 1), msg.delivery_attempt <= 1, msg)
        try:
            outcome = self.sink.deliver_event(msg, attempt)
        except Exception as err:
            log.exception("%s: message %s failed", self.sink.name, msg.message_id)
            outcome = Outcome.retry(f"sink error: {type(err).__name__}: {err}"[:1000])
        if outcome.kind is Kind.RETRY and attempt.number >= self.sink.max_attempts:
            outcome = outcome.but(kind=Kind.PERMANENT)
        if outcome.kind is Kind.PERMANENT:
            return self._dead_letter(msg, None, None, outcome.reason, attempt.number)
        log.info("%s: message %s %s: %s", self.sink.name, msg.message_id, outcome.kind.value, outcome.reason)
        if outcome.kind is Kind.RETRY:
            return f"retry: {outcome.reason}", 503
        return outcome.reason, 200

    def _log(
        self,
        delivery: Delivery | None,
        job: Job | None,
        attempt: int,
        outcome: str,
        reason: str,
        result: Outcome | None = None,
        message_id: str | None = None,
    ) -> None:
        level = logging.WARNING if outcome == "dead_lettered" else logging.INFO
        what = f"event {delivery.event.id}" if delivery is not None else f"message {message_id}"
        who = f"job {job.aid}/{job.id} v{job.version}" if job is not None else (
            f"job {delivery.job_aid}/{delivery.job_id}" if delivery is not None else "no job"
        )  # fmt: skip
        detail = ""
        if result is not None and result.status is not None:
            detail = f" (status {result.status}, {result.latency_ms or 0:.0f} ms)"
        log.log(
            level,
            "%s: %s %s for %s, attempt %d: %s%s",
            self.sink.name,
            outcome,
            what,
            who,
            attempt,
            reason,
            detail,
        )
