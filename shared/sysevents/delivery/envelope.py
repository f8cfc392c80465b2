"""The envelope every push sink runs through: one delivery, from the push request to the acknowledgement.

Stages, over one context (the Runtime) and one sink:
1. parse the push body (not a push: 400);
2. read the delivery (malformed: dead-lettered with the reason);
3. look the job up (by account and id: the instance's job cache, or Firestore when it is behind);
4. the state policy (`refusal`): a delivery whose job is gone, belongs to another account, was re-created
   since (another generation) or changed workflow is *filtered*: acknowledged, counted and logged with
   the reason, never sent; one for a paused job (a retry coming back after it was paused, by a person or by
   auto-disable) is dead-lettered to the job's list unsent, so that `resume` with replay delivers it;
5. `sink.deliver(delivery, job, attempt)` returns an Outcome (delivered, accepted, filtered, retry -- with
   an optional Retry-After --, wait until a time, or permanent); an exception is a retry with its type
   and message;
6. settle: the outcome is recorded (attempt log and counters, sysevents.delivery.accounting); a retry is
   put on the durable delay queue (sysevents.transport.delays) for the job's retry schedule, a wait for its time;
   a permanent outcome, or a failure with no retry left, is dead-lettered -- to the sink's dead-letter
   topic *and* the job's dead-letter list, from where it can be replayed. The message is acknowledged in
   every case: the sink decides every outcome, and nothing waits by being nacked. Only when the delay
   queue cannot take a wait does the request answer 503 (Pub/Sub then redelivers it). One log line per
   outcome.

The attempt number travels with the delivery (message attribute `attempt`): no read per attempt.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sysevents.delivery.message import BadDelivery, Delivery
from sysevents.delivery.ordering import HEAD, HEAD_ATTR, PARKED
from sysevents.delivery.outcome import Kind, Outcome
from sysevents.delivery.sink import ATTEMPT_ATTR, SLOT_ATTR, WAITED_ATTR, Attempt, Sink
from sysevents.jobs.model import DEFAULT_RETRY_SCHEDULE, RETRY_JITTER, Job, JobState
from sysevents.obs import logs
from sysevents.transport.delays import DelayFailed, Release, task_id
from sysevents.transport.pubsub import PushMessage, handle_push

if TYPE_CHECKING:
    from sysevents.runtime import Runtime

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


def retry_delay(
    schedule: tuple[float, ...], attempt: int, scale: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based), jittered by up to RETRY_JITTER."""
    base = schedule[attempt - 1] * scale
    return base * (1 + (rng or random).uniform(-RETRY_JITTER, RETRY_JITTER))


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
    clean = {k: v for k, v in attributes.items() if k not in (ATTEMPT_ATTR, WAITED_ATTR, SLOT_ATTR)}
    attrs = rt.publisher.dead_letter(topic, data, {**clean, **extra}, reason, attempts, source_message_id)
    if job is not None and delivery is not None:
        rt.accounting.dead_letter(job, delivery.id, data, attrs)
    return attrs


class Envelope:
    def __init__(self, rt: Runtime, sink: Sink):
        self.rt = rt
        self.sink = sink

    def push(self, body: bytes) -> tuple[str, int]:
        return handle_push(self.sink.name, self.rt.settings.project, body, self._push)

    def _push(self, msg: PushMessage) -> tuple[str, int]:
        attempt = Attempt.of(msg)
        try:
            delivery = Delivery.from_json(msg.data)
        except BadDelivery as err:
            return self._dead_letter(msg, None, None, str(err), attempt.number)
        job = self._job(delivery)
        refused = refusal(self.sink.workflows, delivery, job)
        if refused:
            why, counted = refused
            if counted and job is not None and job.state is JobState.PAUSED:
                # kept: dead-lettered to the job's list, so `resume` with replay delivers it
                outcome = Outcome.permanent(f"{why}: kept in its dead letters (resume with replay sends it)")
                return self.settle(msg, delivery, job, attempt, outcome.but(attempted=False), by_sink=False)
            owner = job if counted else None
            return self.settle(msg, delivery, owner, attempt, Outcome.filtered(why), by_sink=False)
        assert job is not None
        if delivery.notice is not None:  # work for the sink about the job (an alert timer), not an event
            try:
                outcome = self.sink.notice(delivery, job, attempt)
            except Exception as err:
                log.exception("%s: notice %s of job %s failed", self.sink.name, delivery.id, job.id)
                outcome = Outcome.retry(
                    f"sink error: {type(err).__name__}: {err}"[:1000], counts_against_receiver=False
                )
            return self.settle(msg, delivery, job, attempt, outcome)
        key = job.ordering_key(delivery.event)
        if key and not attempt.head and not attempt.released:
            admitted = self.rt.key_queues.admit(job, key, msg, delivery.id)
            if admitted == PARKED:
                return self.settle(
                    msg,
                    delivery,
                    job,
                    attempt,
                    Outcome.parked_behind("waiting behind an earlier delivery of its subject"),
                )
            if admitted == HEAD:  # its own key waits for it (its retry was never put away): it goes ahead
                attempt = attempt.as_head()
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

    def settle(
        self,
        msg: PushMessage,
        delivery: Delivery,
        job: Job | None,
        attempt: Attempt,
        outcome: Outcome,
        by_sink: bool = True,
    ) -> tuple[str, int]:
        """Record the outcome, then put the retry or wait away, or dead-letter; acknowledge."""
        schedule = job.config.retry_schedule if job is not None else DEFAULT_RETRY_SCHEDULE
        release: tuple[datetime, Attempt] | None = None
        if outcome.kind is Kind.RETRY and outcome.attempted:
            if attempt.number > len(schedule):  # no retry left: the last attempt failed
                outcome = outcome.but(kind=Kind.PERMANENT)
            else:
                wait = outcome.retry_after or retry_delay(
                    schedule, attempt.number, self.rt.settings.time_scale
                )
                release = (datetime.now(UTC) + timedelta(seconds=wait), attempt.next())
        elif outcome.kind is Kind.RETRY and not outcome.parked:  # a wait, not an attempt (hold, rate slot)
            until = outcome.not_before or datetime.now(UTC)
            release = (until, attempt.later(slot=outcome.slot))
        key = job.ordering_key(delivery.event) if job is not None and delivery.notice is None else ""
        if release is not None:
            try:
                if key:  # an ordered delivery waits: its subject's later deliveries wait behind it
                    self.rt.key_queues.block(job, key, delivery.id)
                then = release[1].as_head() if key or attempt.head else release[1]  # a head stays the head
                self._put_away(msg, delivery, release[0], then, key)
            except DelayFailed as err:
                log.error("%s: %s", self.sink.name, err)
                return f"retry later: {err}", 503  # nothing recorded: Pub/Sub redelivers this message
        name = "dead_lettered" if outcome.kind is Kind.PERMANENT else outcome.kind.value
        if outcome.kind is Kind.RETRY and not outcome.attempted:
            name = "waiting"
        if job is not None:
            self.rt.accounting.record(
                job,
                event_id=delivery.record_id,
                delivery_id=delivery.id,
                attempt=attempt.number,
                outcome=name,
                first_seen=attempt.first,
                status=outcome.status,
                latency_ms=outcome.latency_ms,
                error=outcome.reason,
                log_attempt=outcome.attempted,
                delayed=(release is not None or outcome.parked) - attempt.released,
                key=attempt.key,  # a repeat of this settling (a redelivered message) counts once
                then=release[1].key if release is not None else None,
            )
            if by_sink:
                try:
                    self.sink.settled(delivery, job, attempt, outcome)
                except Exception:  # the delivery's own outcome must not depend on this bookkeeping
                    log.exception("%s: after-delivery step failed for job %s", self.sink.name, job.id)
        if attempt.head and release is None and not outcome.parked:  # the head ended: the next one's turn
            # (under its key even if the job is no longer ordered, so what was parked behind it goes on)
            head_key = key or (job.parked_key(delivery.event) if job and delivery.notice is None else "")
            if head_key:
                self.rt.key_queues.advance(job, head_key, self.sink.topic, delivery.id)
        if outcome.kind is Kind.PERMANENT:
            return self._dead_letter(msg, delivery, job, outcome.reason, attempt.number)
        when = f" (next at {release[0].isoformat(timespec='milliseconds')})" if release else ""
        delay = (release[0] - datetime.now(UTC)).total_seconds() if release else None
        self._log(delivery, job, attempt.number, name, outcome.reason + when, outcome, delay_s=delay)
        if release is not None:
            return f"{name}: {outcome.reason}{when}", 200
        return f"{name}: {outcome.reason}" if outcome.kind is not Kind.DELIVERED else "delivered", 200

    def _put_away(
        self, msg: PushMessage, delivery: Delivery, at: datetime, then: Attempt, key: str = ""
    ) -> None:
        """Republish this message at `at`, as attempt `then` (the delay queue: sysevents.transport.delays)."""
        attrs = {
            k: v
            for k, v in msg.attributes.items()
            if k not in (ATTEMPT_ATTR, WAITED_ATTR, SLOT_ATTR, HEAD_ATTR)
        }
        attrs.update(then.attributes_for_release())
        topic = self.sink.timer_topic if delivery.notice is not None else self.sink.topic
        # Named after the release's own key (fixed by the settling that puts it away), so a redelivered
        # message puts the same task again, which the queue takes once.
        parts = (then.key,) if then.key else (delivery.id, str(then.number), then.kind, at.isoformat())
        name = task_id(topic, *parts)
        self.rt.delays.put(Release(topic, msg.data, attrs, key), at, name)

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

    def _log(
        self,
        delivery: Delivery | None,
        job: Job | None,
        attempt: int,
        outcome: str,
        reason: str,
        result: Outcome | None = None,
        message_id: str | None = None,
        delay_s: float | None = None,
    ) -> None:
        """The one structured line of this delivery's outcome (the line the delivery metrics count)."""
        logs.outcome(
            log,
            sink=self.sink.name,
            outcome=outcome,
            aid=job.aid if job is not None else (delivery.job_aid if delivery is not None else None),
            job_id=job.id if job is not None else (delivery.job_id if delivery is not None else None),
            event_id=delivery.event.id if delivery is not None else None,
            attempt=attempt,
            reason=reason if delivery is not None else f"message {message_id}: {reason}",
            status=result.status if result is not None else None,
            latency_ms=result.latency_ms if result is not None else None,
            workflow=job.workflow.value if job is not None else None,
            delay_s=round(delay_s, 3) if delay_s is not None else None,
        )
