"""How long a delivery waits before it is tried again, decided here once: its job's retry schedule, or what
its receiver asked for (Retry-After), and the hold that request puts on the whole job.

- `retry_after_seconds` reads a Retry-After header (delta-seconds or an HTTP date), clipped to what the
  deployment honours (`webhook_max_retry_after`): the HTTP sender's only use of it.
- `retry_wait`: the wait before the next attempt of a failed delivery (the envelope's only use of it): the
  receiver's Retry-After, else the job's schedule (scaled by SYSEVENTS_TIME_SCALE, jittered by RETRY_JITTER).
  A Retry-After is the receiver's real time: never scaled.
- `hold` and `held`: a receiver that asked for time holds its job on every instance (`Job.hold_until`, on
  the job document, which every job cache sees) and pushes its rate-limit slots past it; until then the
  job's deliveries wait in the delay queue without contacting the receiver.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from sysevents.config import scaled
from sysevents.delivery.outcome import Outcome
from sysevents.jobs.model import RETRY_JITTER, Job

if TYPE_CHECKING:
    from sysevents.delivery.ratelimit import RateLimiter
    from sysevents.jobs.store import JobStore


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


def hold(jobs: JobStore, limiter: RateLimiter | None, job: Job, outcome: Outcome) -> None:
    """After an attempt whose receiver asked for time: hold the whole job until then, on every instance,
    and (for a rate-limited job) push its next slots past it."""
    if not outcome.retry_after:
        return
    until = datetime.now(UTC) + timedelta(seconds=outcome.retry_after)
    jobs.hold(job, until)
    if limiter is not None:
        limiter.push_back(job, until.timestamp())


def held(job: Job, now: datetime) -> Outcome | None:
    """A wait when the job is held for its receiver; None when it may send now."""
    if job.hold_until is not None and job.hold_until > now:
        return Outcome.wait(
            job.hold_until, f"held: the receiver asked to wait until {job.hold_until.isoformat()}"
        )
    return None
