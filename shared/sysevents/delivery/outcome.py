"""What delivering one (event, job) came to: the value every sink's `deliver` returns to the envelope
(`Outcome`), and what the envelope settled it as (`Settled`: the one name accounting, logs and status use)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class Kind(StrEnum):
    DELIVERED = "delivered"  # the destination has it
    ACCEPTED = "accepted"  # taken into the sink's own durable state, sent later (a digest, a backfill)
    FILTERED = "filtered"  # skipped on purpose: the job's state or policy (paused, deleted, silenced, ...)
    RETRY = "retry"  # transient: try again later (optionally not before `retry_after` seconds); with
    # attempted=False a wait, not an attempt: the same attempt at `not_before` (a rate-limit slot); with
    # pushback the destination said "slow down": a wait too, though it was sent
    PERMANENT = "permanent"  # will never succeed as is: dead-letter now


class Settled(StrEnum):
    """How the envelope settled a delivery: the name of the outcome in its accounting, its log line and the
    delivery metrics. Four end it (`ends`); `retry` puts its next attempt on the delay queue; `waiting`
    puts the same attempt there (a rate-limit slot, a receiver's "slow down") or parks it behind its ordering key's head."""

    DELIVERED = "delivered"
    ACCEPTED = "accepted"
    FILTERED = "filtered"
    RETRY = "retry"
    DEAD_LETTERED = "dead_lettered"
    WAITING = "waiting"

    @property
    def ends(self) -> bool:
        """Nothing more happens to the delivery: it is counted as this outcome."""
        return self in (Settled.DELIVERED, Settled.ACCEPTED, Settled.FILTERED, Settled.DEAD_LETTERED)


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    reason: str = ""
    status: int | None = None  # HTTP status (or SMTP code) of the destination's answer, when it answered
    latency_ms: float | None = None
    retry_after: float | None = None  # seconds the destination asked us to wait (bounded), if it did
    counts_against_receiver: bool = True  # False for our own errors (template): no auto-disable streak
    attempted: bool = True  # False when nothing was sent (held, filtered): no attempt record
    not_before: datetime | None = None  # a wait: when to try (the same attempt) again
    slot: bool = False  # a wait for a rate-limit slot reserved for this delivery
    parked: bool = False  # a wait behind its ordering key's head (sysevents.delivery.ordering)
    pushback: bool = False  # the destination said "slow down" (429, or 503 with Retry-After): a wait, sent

    @classmethod
    def delivered(cls, reason: str = "delivered", **kw) -> Outcome:
        return cls(Kind.DELIVERED, reason, **kw)

    @classmethod
    def accepted(cls, reason: str, **kw) -> Outcome:
        return cls(Kind.ACCEPTED, reason, attempted=False, **kw)

    @classmethod
    def filtered(cls, reason: str, **kw) -> Outcome:
        return cls(Kind.FILTERED, reason, attempted=False, **kw)

    @classmethod
    def retry(cls, reason: str, **kw) -> Outcome:
        return cls(Kind.RETRY, reason, **kw)

    @classmethod
    def wait(cls, until: datetime, reason: str, *, slot: bool = False) -> Outcome:
        """Not now, and not a failure: the same attempt at `until` (a rate-limit slot, an in-flight cap)."""
        return cls(
            Kind.RETRY, reason, attempted=False, not_before=until, slot=slot, counts_against_receiver=False
        )

    @classmethod
    def pushed_back(cls, reason: str, *, retry_after: float | None = None, **kw) -> Outcome:
        """The destination answered "slow down" (429, or 503 with a Retry-After): not a failure and not an
        attempt -- it spends no retry and no auto-disable streak --, but it was sent (the attempt log lists
        it). The same attempt goes again later: at `not_before` when the sink reserved a slot for it, else
        after `retry_after` (or a second)."""
        return cls(Kind.RETRY, reason, retry_after=retry_after, pushback=True, counts_against_receiver=False,
                   **kw)  # fmt: skip

    @classmethod
    def parked_behind(cls, reason: str) -> Outcome:
        """Waiting behind an earlier delivery of its ordering key; released when that one ends."""
        return cls(Kind.RETRY, reason, attempted=False, parked=True, counts_against_receiver=False)

    @classmethod
    def permanent(cls, reason: str, **kw) -> Outcome:
        return cls(Kind.PERMANENT, reason, **kw)

    @property
    def done(self) -> bool:
        """Nothing more will happen to the delivery (delivered, accepted or filtered)."""
        return self.kind in (Kind.DELIVERED, Kind.ACCEPTED, Kind.FILTERED)

    def but(self, **changes) -> Outcome:
        return replace(self, **changes)
