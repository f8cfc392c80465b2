"""The sink interface: one subclass per sink package, run by the envelope (sysevents.delivery.envelope).

A sink names its topology sink, says which workflows it delivers (from the workflow registry), and
implements `deliver(delivery, job, attempt) -> Outcome`: everything before (parsing, the job lookup, the
state policy) and after (acknowledging, retrying, dead-lettering, accounting, the log line) is the
envelope's, the same for every sink. Hooks let a sink react to what the envelope settled (`settled`,
`dead_lettered`), add routes to its function (`routes`: /flush, /tick) and take part in backfills.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from sysevents.delivery.attempt import Attempt
from sysevents.delivery.outcome import Outcome
from sysevents.jobs.model import Job, Workflow
from sysevents.jobs.registry import workflows_of
from sysevents.transport.pubsub import PushMessage

if TYPE_CHECKING:
    from sysevents.delivery.message import Delivery
    from sysevents.runtime import Runtime


class Sink:
    name: ClassVar[str]  # the topology sink (topology.json `sinks`), or the function for job-less sinks
    function: ClassVar[str]  # the function it runs in
    per_job: ClassVar[bool] = True  # False: messages are bare events, not deliveries to a job (audit)

    def __init__(self, rt: Runtime):
        self.rt = rt

    @property
    def workflows(self) -> frozenset[Workflow]:
        return frozenset(workflows_of(self.name))

    @property
    def topic(self) -> str:
        """Where the sink's messages arrive (released waits are published back to it)."""
        return self.rt.topology.sinks[self.name].topic

    @property
    def timer_topic(self) -> str:
        """Where its notices (alert timers) are released: their own topic, else the sink's."""
        return self.rt.topology.sinks[self.name].timer_topic or self.topic

    def release_topic(self, job: Job) -> str:
        """Where the job's waits and retries are released: the sink's topic, unless the sink keeps a lane of
        its own for the job (the webhook sink's slow lane)."""
        return self.topic

    @property
    def dead_letter_topic(self) -> str:
        return self.rt.topology.sinks[self.name].dead_letter_topic

    def deliver(self, delivery: Delivery, job: Job, attempt: Attempt) -> Outcome:
        raise NotImplementedError

    def notice(self, delivery: Delivery, job: Job, attempt: Attempt) -> Outcome:
        """A notice for the job (`delivery.notice`: an alert group's timer) instead of an event to deliver."""
        return Outcome.permanent(f"the {self.name} sink takes no {delivery.notice['kind']} notices")

    def deliver_event(self, message: PushMessage, attempt: Attempt) -> Outcome:
        """Job-less sinks (`per_job = False`): handle the message itself."""
        raise NotImplementedError

    # -- hooks ---------------------------------------------------------------------------------------------
    def settled(self, delivery: Delivery, job: Job, attempt: Attempt, outcome: Outcome) -> None:
        """After the envelope recorded the outcome (auto-disable, holds). Errors are logged, not raised."""

    def dead_lettered(self, delivery: Delivery, job: Job, reason: str) -> None:
        """After the delivery was dead-lettered (e.g. the email sink marks its outbox entry dead)."""

    def routes(self) -> dict[str, Callable[[Any], Any]]:
        """Extra POST routes of the sink's function: path -> handler(request) (e.g. /tick)."""
        return {}

    def backfill(self, job: Job, **kw: Any) -> Any:
        """The sink's part of a backfill of `job` (sysevents.backfill.engine.Backfill), if it has one."""
        raise ValueError(f"job {job.id}: the {self.name} sink has no backfill")
