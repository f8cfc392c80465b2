"""A webhook job's pace: whether a send may go now, and what its receiver's answer does to the next ones.

`gate` runs before every POST of the job (deliveries and alert notifications alike): a wait when the job
is held for its receiver's Retry-After (sysevents.delivery.waits), or when its rate limit (`rate_limit`,
or Slack's 1 per second for Slack webhook URLs) puts the send later -- a slot reserved across instances
(sysevents.delivery.ratelimit), waited for in the delay queue, then spaced within this instance.
`after` runs once the envelope recorded an attempt: a Retry-After holds the whole job, on every instance.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sysevents.delivery import waits
from sysevents.delivery.attempt import Attempt
from sysevents.delivery.outcome import Outcome
from sysevents.delivery.ratelimit import Pacer, Rate
from sysevents.jobs.model import Job

if TYPE_CHECKING:
    from sysevents.runtime import Runtime

SLOT_SLACK = 0.005
"""A slot this close is now."""


class Pacing:
    def __init__(self, rt: Runtime):
        self.rt = rt
        self._pacer = Pacer()

    def gate(self, job: Job, attempt: Attempt) -> Outcome | None:
        """Before a POST: a wait when the job is held (Retry-After) or its rate limit puts it later."""
        held = waits.held(job, datetime.now(UTC))
        if held is not None:
            return held
        rate = job.config.delivery_rate()
        if rate is None:
            return None
        if not attempt.slot:
            at = self.rt.limiter.reserve(job, Rate(rate.per_second, rate.burst))
            if at > time.time() + SLOT_SLACK:
                when = datetime.fromtimestamp(at, UTC)
                return Outcome.wait(when, f"rate limit {rate.per_second:g}/s: sent at its slot", slot=True)
        if self._pacer.pace(job.key, Rate(rate.per_second, rate.burst)) is None:
            # sent too soon after this instance's previous send of the job: to the delay queue, keeping its slot
            later = datetime.now(UTC) + timedelta(seconds=self._pacer.later(job.key, Rate(rate.per_second)))
            return Outcome.wait(
                later, f"rate limit {rate.per_second:g}/s: spaced after the previous send", slot=True
            )
        return None

    def after(self, job: Job, outcome: Outcome) -> None:
        """After an attempt: a receiver that asked for time holds the whole job (and its rate-limit slots)."""
        limited = job.config.delivery_rate() is not None
        waits.hold(self.rt.jobs, self.rt.limiter if limited else None, job, outcome)
