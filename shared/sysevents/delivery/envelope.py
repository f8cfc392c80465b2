"""The envelope every push sink runs through: one delivery, from the push request to the acknowledgement.

Stages, over one context (the Runtime) and one sink:
1. parse the push body (not a push: 400);
2. read the delivery (malformed: dead-lettered with the reason);
3. look the job up (by account and id: the instance's job cache, or Firestore when it is behind);
4. the state policy (`refusal`): a delivery whose job is gone, belongs to another account, was re-created
   since (another generation) or changed workflow is *filtered*: acknowledged, counted and logged with
   the reason, never sent; one for a paused job (a retry coming back after it was paused, by a person or by
   auto-disable) is dead-lettered to the job's list unsent, so that `resume` with replay delivers it;
5. `sink.deliver(delivery, job, attempt)`, when the job's account is within its share of this instance's
   threads (else a wait: sysevents.shares.instance), returns an Outcome (delivered, accepted, filtered, retry -- with
   an optional Retry-After --, wait until a time, or permanent); an exception is a retry with its type
   and message, except a busy template sandbox (SandboxBusy): a wait;
6. settle, itself in four stages: **decide** what the outcome comes to (a retry with no attempt left is
   a dead letter; a retry waits for the job's retry schedule or the receiver's Retry-After:
   sysevents.delivery.waits; a wait for its time), **put away** the retry or wait on the durable delay
   queue (sysevents.transport.delays; in the account's next window with room when its window of tasks due
   is full: sysevents.shares.tasks), **record** it (attempt log and counters,
   sysevents.delivery.accounting; then the sink's `settled` hook), **hand over**: the ordering key's next
   delivery when a head ended, the dead letter -- to the sink's dead-letter topic *and* the job's
   dead-letter list, from where it can be replayed --, one log line, the answer. The message is
   acknowledged in every case: the sink decides every outcome, and nothing waits by being nacked. Only when
   the delay queue cannot take a wait does the request answer 503 (Pub/Sub then redelivers it).

Job-less sinks (`Sink.per_job` False: the audit archive) take the same path with no job: the message is
the event, `sink.deliver_event` decides, retries follow the default schedule (released to the sink's own
topic, keeping the event's first publication), and nothing is recorded in Firestore.

The attempt number travels with the delivery (message attribute `attempt`): no read per attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sysevents.delivery import waits
from sysevents.delivery.attempt import Attempt, release_state
from sysevents.delivery.ledger import JobLedger, refusal
from sysevents.delivery.message import BadDelivery, Delivery
from sysevents.delivery.ordering import HEAD, PARKED
from sysevents.delivery.outcome import Kind, Outcome, Settled
from sysevents.delivery.sink import Sink
from sysevents.jobs.model import DEFAULT_RETRY_SCHEDULE, Job, JobState
from sysevents.obs import logs
from sysevents.templates.sandbox import SandboxBusy
from sysevents.transport.delays import DelayFailed, Release, task_id
from sysevents.transport.pubsub import PushMessage, first_publish_attributes, handle_push

if TYPE_CHECKING:
    from sysevents.runtime import Runtime

log = logging.getLogger("sysevents.delivery")


@dataclass(frozen=True)
class Settling:
    """One message being settled: what it is (a delivery to a job, or a job-less sink's event: both None)
    and what the sink's outcome came to."""

    msg: PushMessage
    attempt: Attempt
    delivery: Delivery | None
    job: Job | None
    outcome: Outcome
    settled: Settled
    release: tuple[datetime, Attempt] | None = None  # the retry or wait put away: when, as which attempt
    key: str = ""  # the ordering key it waits under, or heads

    @property
    def counted(self) -> bool:
        return self.job is not None and self.delivery is not None


class Envelope:
    """One sink's envelope; `clock` gives the time it settles by (the current time unless given, as for the
    alert engine's `Notifier`)."""

    def __init__(self, rt: Runtime, sink: Sink, clock: Callable[[], datetime] | None = None):
        self.rt = rt
        self.sink = sink
        self.clock = clock or (lambda: datetime.now(UTC))
        self.ledger = JobLedger(rt, sink) if sink.per_job else None

    def push(self, body: bytes) -> tuple[str, int]:
        return handle_push(self.sink.name, self.rt.settings.project, body, self._push)

    def _push(self, msg: PushMessage) -> tuple[str, int]:
        attempt = Attempt.of(msg)
        if not self.sink.per_job:  # the message is the event itself (the audit archive)
            outcome = self._call(lambda: self.sink.deliver_event(msg, attempt), f"message {msg.message_id}")
            return self.settle(msg, None, None, attempt, outcome, by_sink=False)
        try:
            delivery = Delivery.from_json(msg.data)
        except BadDelivery as err:
            return self._dead_letter(msg, None, None, str(err), attempt.number)
        assert self.ledger is not None
        job = self.ledger.job(delivery)
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
            what = f"notice {delivery.id} of job {job.id}"
            outcome = self._call(lambda: self.sink.notice(delivery, job, attempt), what, receiver=False)
            return self.settle(msg, delivery, job, attempt, outcome)
        key = job.ordering_key(delivery.event)
        if key and not attempt.head and not attempt.released:
            admitted = self.ledger.admit(job, key, msg, delivery)
            if admitted == PARKED:
                outcome = Outcome.parked_behind("waiting behind an earlier delivery of its subject")
                return self.settle(msg, delivery, job, attempt, outcome)
            if admitted == HEAD:  # its own key waits for it (its retry was never put away): it goes ahead
                attempt = attempt.as_head()
        what = f"delivering event {delivery.event.id} to job {job.id}"
        outcome = self._within_share(job, lambda: self.sink.deliver(delivery, job, attempt), what)
        return self.settle(msg, delivery, job, attempt, outcome)

    def _within_share(self, job: Job, run: Callable[[], Outcome], what: str) -> Outcome:
        """The delivery runs if its account is within its share of this instance's threads
        (sysevents.shares.instance); else it waits on the delay queue and the thread serves another."""
        shares = self.rt.shares.deliveries
        wait = shares.take(job.aid)
        if wait is not None:
            until = self.clock() + timedelta(seconds=wait)
            why = f"account {job.aid} has {shares.share} deliveries in progress on this instance (its share)"
            return Outcome.wait(until, why)
        started = time.monotonic()
        try:
            return self._call(run, what, receiver=False)
        finally:
            shares.done(job.aid, time.monotonic() - started)

    def _call(self, run: Callable[[], Outcome], what: str, *, receiver: bool = True) -> Outcome:
        """The sink's outcome; its own bug or an unexpected failure is a retry (then a dead letter), which
        counts against the receiver only for job-less sinks (they have no receiver to disable). A busy
        template sandbox (every worker taken, or the account's renders at their cap) is a wait: the same
        attempt a little later, never a spent attempt nor a lost delivery."""
        try:
            return run()
        except SandboxBusy as err:
            until = self.clock() + timedelta(seconds=err.retry_after)
            return Outcome.wait(until, f"template sandbox busy: {err}")
        except Exception as err:
            log.exception("%s: %s failed", self.sink.name, what)
            return Outcome.retry(
                f"sink error: {type(err).__name__}: {err}"[:1000], counts_against_receiver=receiver
            )

    # -- settling: decide, put away, record, hand over --------------------------------------------------------
    def settle(
        self,
        msg: PushMessage,
        delivery: Delivery | None,
        job: Job | None,
        attempt: Attempt,
        outcome: Outcome,
        by_sink: bool = True,
    ) -> tuple[str, int]:
        """Record the outcome, then put the retry or wait away, or dead-letter; acknowledge."""
        s = self._decide(msg, delivery, job, attempt, outcome)
        if s.release is not None:
            try:
                self._put_away(s)
            except DelayFailed as err:
                log.error("%s: %s", self.sink.name, err)
                return f"retry later: {err}", 503  # nothing recorded: Pub/Sub redelivers this message
        if s.counted:
            self._record(s, by_sink)
        return self._hand_over(s)

    def _decide(
        self, msg: PushMessage, delivery: Delivery | None, job: Job | None, attempt: Attempt, outcome: Outcome
    ) -> Settling:
        """What the outcome comes to: its name, and the release it waits for (none when it ended)."""
        schedule = job.config.retry_schedule if job is not None else DEFAULT_RETRY_SCHEDULE
        release: tuple[datetime, Attempt] | None = None
        if outcome.pushback:  # "slow down": a wait, bounded by MAX_PUSHBACKS and the sink's time budget
            if attempt.pushbacks + 1 >= waits.MAX_PUSHBACKS:
                outcome = outcome.but(kind=Kind.PERMANENT, reason=waits.too_many_pushbacks(outcome.reason))
            else:
                release = (
                    waits.pushback_until(outcome),
                    attempt.later(slot=outcome.slot, pushback=True, now=time.time()),
                )
        elif outcome.kind is Kind.RETRY and outcome.attempted:
            if attempt.number > len(schedule):  # no retry left: the last attempt failed
                outcome = outcome.but(kind=Kind.PERMANENT)
            else:
                wait = waits.retry_wait(outcome, schedule, attempt.number, self.rt.settings.time_scale)
                release = (self.clock() + timedelta(seconds=wait), attempt.next())
        elif outcome.kind is Kind.RETRY and not outcome.parked:  # a wait, not an attempt (a rate-limit slot)
            release = (outcome.not_before or self.clock(), attempt.later(slot=outcome.slot))
        if outcome.kind is Kind.PERMANENT:
            settled = Settled.DEAD_LETTERED
        elif outcome.kind is Kind.RETRY:
            settled = Settled.RETRY if outcome.attempted and not outcome.pushback else Settled.WAITING
        else:
            settled = Settled(outcome.kind.value)
        key = (
            job.ordering_key(delivery.event)
            if job is not None and delivery and delivery.notice is None
            else ""
        )
        if release is not None and (key or attempt.head):  # a head stays the head
            release = (release[0], release[1].as_head())
        return Settling(msg, attempt, delivery, job, outcome, settled, release, key)

    def _put_away(self, s: Settling) -> None:
        """Republish the message at its release time as its next attempt (the delay queue)."""
        assert s.release is not None
        at, then = s.release
        if s.key:  # an ordered delivery waits: its subject's later deliveries wait behind it
            assert self.ledger is not None and s.job is not None and s.delivery is not None
            self.ledger.block(s.job, s.key, s.delivery)
        attrs = release_state(s.msg.attributes)
        attrs.update(then.attributes_for_release())
        if s.delivery is None:  # a job-less sink's event: the retry is a new message of the same event
            attrs.update(first_publish_attributes(s.msg))
        notice = s.delivery is not None and s.delivery.notice is not None
        if notice:
            topic = self.sink.timer_topic
        else:
            topic = self.sink.release_topic(s.job) if s.job is not None else self.sink.topic
        # Named after the release's own key (fixed by the settling that puts it away), so a redelivered
        # message puts the same task again, which the queue takes once.
        name = (
            task_id(topic, then.key)
            if then.key
            else task_id(topic, s.msg.message_id, str(then.number), then.kind)
        )
        if s.job is not None:  # the account's tasks due per window (sysevents.shares.tasks): maybe later
            at = self.rt.shares.tasks.admit(s.job.aid, at)
        self.rt.delays.put(Release(topic, s.msg.data, attrs, s.key), at, name)

    def _record(self, s: Settling, by_sink: bool) -> None:
        """The settling in the job's accounting (returns once durable), then the sink's `settled` hook."""
        assert self.ledger is not None and s.job is not None and s.delivery is not None
        outcome = s.outcome
        delayed = (s.release is not None or outcome.parked) - s.attempt.released
        then = s.release[1].key if s.release is not None else None
        self.ledger.record(s.job, s.delivery, s.attempt, outcome, s.settled, delayed=delayed, then=then)
        if by_sink:
            try:
                self.sink.settled(s.delivery, s.job, s.attempt, outcome)
            except Exception:  # the delivery's own outcome must not depend on this bookkeeping
                log.exception("%s: after-delivery step failed for job %s", self.sink.name, s.job.id)

    def _hand_over(self, s: Settling) -> tuple[str, int]:
        """The ordering key's next delivery when its head ended, the dead letter, the log line, the answer."""
        job, delivery, attempt, outcome = s.job, s.delivery, s.attempt, s.outcome
        if attempt.head and s.release is None and not outcome.parked and delivery is not None:
            # the head ended: the next one's turn (under its key even if the job is no longer ordered, so
            # what was parked behind it goes on)
            head_key = s.key or (job.parked_key(delivery.event) if job and delivery.notice is None else "")
            if head_key and self.ledger is not None:
                self.ledger.advance(job, head_key, delivery)
        if s.settled is Settled.DEAD_LETTERED:
            return self._dead_letter(s.msg, delivery, job, outcome.reason, attempt.number)
        when = f" (next at {s.release[0].isoformat(timespec='milliseconds')})" if s.release else ""
        delay = (s.release[0] - self.clock()).total_seconds() if s.release else None
        self._log(
            s.msg, delivery, job, attempt.number, s.settled, outcome.reason + when, outcome, delay_s=delay
        )
        if s.release is not None:
            return f"{s.settled}: {outcome.reason}{when}", 200
        return f"{s.settled}: {outcome.reason}" if s.settled is not Settled.DELIVERED else "delivered", 200

    def _dead_letter(
        self, msg: PushMessage, delivery: Delivery | None, job: Job | None, reason: str, attempts: int
    ) -> tuple[str, int]:
        extra = {"webhook_id": delivery.id} if delivery is not None else {}
        attrs = self.rt.publisher.dead_letter(
            self.sink.dead_letter_topic, msg.data, {**release_state(msg.attributes), **extra}, reason, attempts,
            msg.message_id,
        )  # fmt: skip
        if job is not None and delivery is not None and self.ledger is not None:
            self.ledger.listed(job, delivery, msg.data, attrs)
            try:
                self.sink.dead_lettered(delivery, job, reason)
            except Exception:
                log.exception("%s: dead-letter step failed for job %s", self.sink.name, job.id)
        self._log(msg, delivery, job, attempts, Settled.DEAD_LETTERED, reason)
        return f"dead-lettered: {reason}", 200

    def _log(
        self,
        msg: PushMessage,
        delivery: Delivery | None,
        job: Job | None,
        attempt: int,
        settled: Settled,
        reason: str,
        result: Outcome | None = None,
        delay_s: float | None = None,
    ) -> None:
        """The one structured line of this delivery's outcome (the line the delivery metrics count)."""
        logs.outcome(
            log,
            sink=self.sink.name,
            outcome=settled.value,
            aid=job.aid if job is not None else (delivery.job_aid if delivery is not None else None),
            job_id=job.id if job is not None else (delivery.job_id if delivery is not None else None),
            event_id=delivery.event.id if delivery is not None else None,
            attempt=attempt,
            reason=reason if delivery is not None else f"message {msg.message_id}: {reason}",
            status=result.status if result is not None else None,
            latency_ms=result.latency_ms if result is not None else None,
            workflow=job.workflow.value if job is not None else None,
            delay_s=round(delay_s, 3) if delay_s is not None else None,
        )
