"""One attempt of a delivery, as it travels with its message: the attempt number, the waits it came back
from, whether it heads its ordering key, and the key its settling is recorded under.

Message attributes (set when a wait is released from the delay queue, read by `Attempt.of`):
`attempt` (its number; absent: 1), `waited` (released after a wait that was not an attempt: a rate-limit
slot, a receiver's "slow down"), `slot` (released at the rate-limit slot reserved for it), `pushbacks` (how
many times its receiver said "slow down" to it), `head` (its ordering key's head:
sysevents.delivery.ordering) and `settle` (the key its settling is recorded under: see SETTLE_ATTR).
`release_state` strips all but the last; every place that publishes a message again goes through it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sysevents.jobs.model import Job
    from sysevents.transport.pubsub import PushMessage

ATTEMPT_ATTR = "attempt"
"""Message attribute: the attempt number the released message is for (absent: 1)."""
WAITED_ATTR = "waited"
"""Message attribute: released after a wait that was not an attempt (a hold, a rate-limit slot)."""
SLOT_ATTR = "slot"
"""Message attribute: the release is at its rate-limit slot: send without reserving another."""
PUSHBACKS_ATTR = "pushbacks"
"""Message attribute: how many times the receiver answered this delivery "slow down" (absent: 0)."""
PUSHED_AT_ATTR = "pushed_at"
"""Message attribute: when (epoch seconds) the receiver first answered this delivery "slow down"."""
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
    pushbacks: int = 0  # times its receiver said "slow down" to it
    pushed_at: float = 0.0  # when it first did (epoch seconds; 0: never)

    @classmethod
    def of(cls, message: PushMessage) -> Attempt:
        return cls(
            number=max(_count(message.attributes.get(ATTEMPT_ATTR), 1), 1),
            message=message,
            waited=message.attributes.get(WAITED_ATTR) == "1",
            slot=message.attributes.get(SLOT_ATTR) == "1",
            head=message.attributes.get(HEAD_ATTR) == "1",
            key=message.attributes.get(SETTLE_ATTR) or message.message_id,
            pushbacks=_count(message.attributes.get(PUSHBACKS_ATTR), 0),
            pushed_at=_epoch(message.attributes.get(PUSHED_AT_ATTR)),
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
            self.number + 1,
            self.message,
            kind="attempt",
            key=self._then("attempt", self.number + 1),
            pushbacks=self.pushbacks,
            pushed_at=self.pushed_at,
        )

    def later(self, *, slot: bool = False, pushback: bool = False, now: float = 0.0) -> Attempt:
        """The same attempt, after a wait (a `pushback` at `now` counts one more "slow down")."""
        kind = "slot" if slot else "wait"
        pushbacks = self.pushbacks + pushback
        return Attempt(
            self.number,
            self.message,
            waited=True,
            slot=slot,
            kind=kind,
            key=self._then(kind, self.number, f"p{pushbacks}" if pushback else ""),
            pushbacks=pushbacks,
            pushed_at=self.pushed_at or (now if pushback else 0.0),
        )

    def _then(self, kind: str, number: int, extra: str = "") -> str:
        """The key of the release this attempt puts away: fixed by this one's key, so settling the same
        message twice (a redelivery) puts away a release with the same key."""
        if not self.key:
            return ""
        return hashlib.sha256(f"{self.key}\x1f{kind}\x1f{number}{extra}".encode()).hexdigest()[:32]

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
        if self.pushbacks:
            attrs[PUSHBACKS_ATTR] = str(self.pushbacks)
        if self.pushed_at:
            attrs[PUSHED_AT_ATTR] = f"{self.pushed_at:.3f}"
        if self.key:
            attrs[SETTLE_ATTR] = self.key
        return attrs


RELEASE_STATE = (ATTEMPT_ATTR, WAITED_ATTR, SLOT_ATTR, HEAD_ATTR, PUSHBACKS_ATTR, PUSHED_AT_ATTR)
"""The attributes that say where in its life a message is (its settle key stays: it names the settling)."""


def release_state(attributes: Mapping[str, str]) -> dict[str, str]:
    """A message's attributes without its release state: what a message published again (a release, a dead
    letter, a parked delivery let go) starts from, before it says its own."""
    return {k: v for k, v in attributes.items() if k not in RELEASE_STATE}


def _count(raw: str | None, default: int) -> int:
    """A small count from a message attribute (a producer could set anything there)."""
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 4 else default


def _epoch(raw: str | None) -> float:
    try:
        value = float(raw) if raw and len(raw) < 20 else 0.0
    except ValueError:
        return 0.0
    return value if 0 < value < 1e11 else 0.0
