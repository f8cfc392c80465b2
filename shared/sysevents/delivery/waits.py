"""How long a delivery waits before it is tried again, decided here once: its job's retry schedule, or what
its receiver asked for (Retry-After).

- `retry_after_seconds` reads a Retry-After header (delta-seconds or an HTTP date), clipped to what the
  deployment honours (`webhook_max_retry_after`): the HTTP sender's only use of it.
- `retry_wait`: the wait before the next attempt of a failed delivery (the envelope's only use of it): the
  receiver's Retry-After, else the job's schedule (scaled by SYSEVENTS_TIME_SCALE, jittered by RETRY_JITTER).
  A Retry-After is the receiver's real time: never scaled.
- `pushback_until`: when a delivery its receiver answered "slow down" goes again (a push-back is a wait,
  not an attempt: the webhook sink gives it a slot of the job's learned pace, sysevents.delivery.ratelimit);
  MAX_PUSHBACKS bounds how often one delivery may be told so (no delivery circulates for ever).
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from sysevents.config import scaled
from sysevents.delivery.outcome import Outcome
from sysevents.jobs.model import RETRY_JITTER


def retry_after_seconds(value: str | None, limit: float, now: float | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), clipped to [0, limit]; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = (
            float(value)
            if value.isdigit()
            else (parsedate_to_datetime(value).timestamp() - (now if now is not None else time.time()))
        )
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, min(seconds, limit))


def retry_delay(
    schedule: tuple[float, ...], attempt: int, scale: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based), jittered by up to RETRY_JITTER."""
    base = scaled(schedule[attempt - 1], scale).total_seconds()
    return base * (1 + (rng or random).uniform(-RETRY_JITTER, RETRY_JITTER))


def retry_wait(outcome: Outcome, schedule: tuple[float, ...], attempt: int, scale: float) -> float:
    """Seconds before the next attempt after failed attempt `attempt`: the receiver's Retry-After, else the
    job's schedule."""
    return outcome.retry_after or retry_delay(schedule, attempt, scale)


MAX_PUSHBACKS = 100
"""A delivery its receiver answered "slow down" this many times is dead-lettered (replayable)."""


def pushback_until(outcome: Outcome) -> datetime:
    """When a pushed-back delivery goes again: its slot, else after the receiver's Retry-After (or a second)."""
    if outcome.not_before is not None:
        return outcome.not_before
    return datetime.now(UTC) + timedelta(seconds=1.0 if outcome.retry_after is None else outcome.retry_after)


def too_many_pushbacks(reason: str) -> str:
    return f'{reason}: the receiver answered "slow down" to this delivery {MAX_PUSHBACKS} times (replay sends it)'
