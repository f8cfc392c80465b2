"""A delivery's side of its job: what the envelope (sysevents.delivery.envelope) does for deliveries to a job
-- every sink but the job-less audit archive -- and the crash guard's recorder too.

- the state policy (`refusal`): which deliveries must not be sent to their job any more;
- the job lookup (the instance's job cache, read again when it is behind the delivery's job version);
- ordered jobs: a subject's deliveries wait behind the one that failed (sysevents.delivery.ordering);
- each settling in the job's accounting (sysevents.delivery.accounting) and each dead letter in the job's
  dead-letter list, from where it can be replayed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sysevents.delivery.attempt import Attempt, release_state
from sysevents.delivery.message import Delivery
from sysevents.delivery.outcome import Outcome, Settled
from sysevents.jobs.model import Job, JobState

if TYPE_CHECKING:
    from sysevents.delivery.sink import Sink
    from sysevents.runtime import Runtime
    from sysevents.transport.pubsub import PushMessage


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
        topic, data, {**release_state(attributes), **extra}, reason, attempts, source_message_id
    )
    if job is not None and delivery is not None:
        rt.accounting.dead_letter(job, delivery.id, data, attrs)
    return attrs


class JobLedger:
    """The job side of one sink's envelope."""

    def __init__(self, rt: Runtime, sink: Sink):
        self.rt = rt
        self.sink = sink

    def job(self, delivery: Delivery) -> Job | None:
        return self.rt.job_for(delivery.job_aid, delivery.job_id, delivery.job_version)

    def admit(self, job: Job, key: str, msg: PushMessage, delivery: Delivery) -> str:
        """FREE, HEAD or PARKED: whether an ordered job's delivery may go now (sysevents.delivery.ordering)."""
        return self.rt.key_queues.admit(job, key, msg, delivery.id)

    def block(self, job: Job, key: str, delivery: Delivery) -> None:
        """The delivery waits for a retry: its subject's later deliveries wait behind it."""
        self.rt.key_queues.block(job, key, delivery.id)

    def advance(self, job: Job, key: str, delivery: Delivery) -> None:
        """The head ended: the next parked delivery of its subject goes."""
        self.rt.key_queues.advance(job, key, self.sink.topic, delivery.id)

    def listed(self, job: Job, delivery: Delivery, data: bytes, attributes: dict[str, str]) -> None:
        """A dead letter of the job's, in its list (from where it can be replayed)."""
        self.rt.accounting.dead_letter(job, delivery.id, data, attributes)

    def record(
        self,
        job: Job,
        delivery: Delivery,
        attempt: Attempt,
        outcome: Outcome,
        settled: Settled,
        *,
        delayed: int,
        then: str | None,
    ) -> None:
        """The settling in the job's accounting (returns once durable)."""
        self.rt.accounting.record(
            job,
            event_id=delivery.record_id,
            delivery_id=delivery.id,
            attempt=attempt.number,
            outcome=settled,
            first_seen=attempt.first,
            status=outcome.status,
            latency_ms=outcome.latency_ms,
            error=outcome.reason,
            log_attempt=outcome.attempted,
            delayed=delayed,
            key=attempt.key,  # a repeat of this settling (a redelivered message) counts once
            then=then,
            pushed_back=outcome.pushback,
        )
