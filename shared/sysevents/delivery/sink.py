"""The sink interface: one subclass per sink package, run by the envelope (sysevents.delivery.envelope).

A sink names its topology sink, says which workflows it delivers (from the workflow registry), and
implements `deliver(delivery, job, attempt) -> Outcome`: everything before (parsing, the job lookup, the
state policy) and after (acknowledging, retrying, dead-lettering, accounting, the log line) is the
envelope's, the same for every sink. Hooks let a sink react to what the envelope settled (`settled`,
`dead_lettered`), add routes to its function (`routes`: /flush, /tick) and take part in backfills.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from sysevents.delivery.outcome import Outcome
from sysevents.jobs.model import Job, Workflow, workflows_of
from sysevents.transport.pubsub import PushMessage

if TYPE_CHECKING:
    from sysevents.delivery.message import Delivery
    from sysevents.runtime import Runtime


ATTEMPT_ATTR = "attempt"
"""Message attribute: the attempt number the released message is for (absent: 1)."""
WAITED_ATTR = "waited"
"""Message attribute: released after a wait that was not an attempt (a hold, a rate-limit slot)."""
SLOT_ATTR = "slot"
"""Message attribute: the release is at its rate-limit slot: send without reserving another."""
HEAD_ATTR = "head"
"""Message attribute: the delivery is its ordering key's head (sysevents.delivery.ordering)."""
SETTLE_ATTR = "settle"
"""Message attribute: the key a message is settled under: for ingest's fan-out, fixed by the (job, event)
(`first_settle_key`: a fan-out published again after a partial failure counts once); for a released message,
derived from the one it was released from; absent, the Pub/Sub message id. Accounting records each key once
(sysevents.delivery.accounting)."""


def first_settle_key(job: Job, event_id: str) -> str:
    """The settle key of the delivery ingest publishes for `event_id` to `job` (this generation of it)."""
    return "fan_" + hashlib.sha256(f"{job.key}\x1f{event_id}".encode()).hexdigest()[:32]


def unparked_key(key: str) -> str:
    """The settle key of a parked delivery published again as its ordering key's head."""
    return hashlib.sha256(f"{key}\x1funparked".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Attempt:
    """Which attempt of a delivery this is (it travels with the message), and the push message."""

    number: int  # 1 for the first attempt
    message: PushMessage
    waited: bool = False  # released after a wait that was not an attempt
    slot: bool = False  # released at a rate-limit slot reserved for it
    head: bool = False  # its ordering key's head (sysevents.delivery.ordering): it goes ahead
    kind: str = "attempt"  # what the *next* release is for: "attempt" or "wait" (names its task)
    key: str = ""  # what its settling is recorded under: the same for a redelivery of this message

    @classmethod
    def of(cls, message: PushMessage) -> Attempt:
        raw = message.attributes.get(ATTEMPT_ATTR, "1")
        number = int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 4 else 1
        return cls(
            number=max(number, 1),
            message=message,
            waited=message.attributes.get(WAITED_ATTR) == "1",
            slot=message.attributes.get(SLOT_ATTR) == "1",
            head=message.attributes.get(HEAD_ATTR) == "1",
            key=message.attributes.get(SETTLE_ATTR) or message.message_id,
        )

    @property
    def first(self) -> bool:
        """The sink sees this delivery for the first time (it counts as received now)."""
        return self.number == 1 and not self.waited

    @property
    def released(self) -> bool:
        """This message was released from the delay queue (it was counted as delayed)."""
        return self.number > 1 or self.waited

    @property
    def attributes(self) -> dict[str, str]:
        return self.message.attributes

    def next(self) -> Attempt:
        return Attempt(
            self.number + 1, self.message, kind="attempt", key=self._then("attempt", self.number + 1)
        )

    def later(self, *, slot: bool = False) -> Attempt:
        kind = "slot" if slot else "wait"
        return Attempt(
            self.number, self.message, waited=True, slot=slot, kind=kind, key=self._then(kind, self.number)
        )

    def _then(self, kind: str, number: int) -> str:
        """The key of the release this attempt puts away: fixed by this one's key, so settling the same
        message twice (a redelivery) puts away a release with the same key."""
        if not self.key:
            return ""
        return hashlib.sha256(f"{self.key}\x1f{kind}\x1f{number}".encode()).hexdigest()[:32]

    def as_head(self) -> Attempt:
        return replace(self, head=True)

    def attributes_for_release(self) -> dict[str, str]:
        attrs = {ATTEMPT_ATTR: str(self.number)}
        if self.waited:
            attrs[WAITED_ATTR] = "1"
        if self.slot:
            attrs[SLOT_ATTR] = "1"
        if self.head:
            attrs[HEAD_ATTR] = "1"
        if self.key:
            attrs[SETTLE_ATTR] = self.key
        return attrs


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
