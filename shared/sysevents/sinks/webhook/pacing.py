"""A webhook job's pace: whether a send may go now, and what its receiver's answer does to the next ones.

`gate` runs before every POST of the job (deliveries and alert notifications alike). A job reserves a slot
across instances (sysevents.delivery.ratelimit) when it has a rate limit (`rate_limit`, or Slack's 1 per
second for Slack webhook URLs) or when its receiver pushed back lately (its learned pace); a slot later
than now is waited for in the delay queue, then spaced within this instance. A job with neither costs
nothing here.

`send` bounds the job's requests in flight from this instance (`InFlight`): a slow receiver cannot take
every worker thread. A delivery over the cap is not queued behind the others in a thread: it takes a slot
at the pace the receiver is answering (cap / latency) and waits for it in the delay queue. A job whose
receiver takes SLOW_SECONDS or more per request is sent from the *slow lane*: its deliveries are released
to a topic and push subscription of their own (topology `slow_topic`), so that they hold neither the
sink's subscription (Pub/Sub pushes a subscription's messages a window at a time) nor its threads.

`answer` turns the receiver's "slow down" (429, or 503 with a Retry-After: sysevents.sinks.webhook.sender)
into a wait: the job's pace drops, the refused delivery gets a slot after the Retry-After, and it spends no
attempt and no auto-disable streak. The bound is in time (`budget`): once the receiver has taken nothing
of the job for the job's whole retry window (scaled like it) since this delivery was first refused, the
delivery is dead-lettered, saying so, and `replay` sends it later.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sysevents.config import scaled
from sysevents.delivery.attempt import Attempt
from sysevents.delivery.outcome import Kind, Outcome
from sysevents.delivery.ratelimit import Pacer, Rate
from sysevents.jobs.model import Job

if TYPE_CHECKING:
    from sysevents.runtime import Runtime

SLOT_SLACK = 0.005
"""A slot this close is now."""
SLOW_SECONDS = 2.0
"""A job whose receiver takes this long per request (lately, on average) is sent from the slow lane."""


def default_cap() -> int:
    """Requests in flight per job and instance: half the instance's request threads (functions-framework's
    THREADS, which Cloud Run's concurrency matches), at least one."""
    threads = os.environ.get("THREADS", "")
    n = int(threads) if threads.isdigit() else (os.cpu_count() or 1) * 4
    return max(1, n // 2)


class InFlight:
    """Per job, this instance's requests in flight and their cap, lowered (halved) by a timeout and raised
    (by one) by each answer in time, up to `ceiling`; and the job's recent latency (moving average)."""

    def __init__(self, ceiling: int | None = None, max_keys: int = 10_000):
        self.ceiling = ceiling or default_cap()
        self._lock = threading.Lock()
        self._busy: dict[str, int] = {}
        self._cap: dict[str, int] = {}
        self._latency: dict[str, float] = {}
        self._max_keys = max_keys

    def cap(self, key: str) -> int:
        return self._cap.get(key, self.ceiling)

    def latency(self, key: str) -> float:
        """Seconds a request of the job has taken lately (0 when unknown)."""
        return self._latency.get(key, 0.0)

    def take(self, key: str) -> bool:
        with self._lock:
            if self._busy.get(key, 0) >= self.cap(key):
                return False
            if len(self._busy) >= self._max_keys and key not in self._busy:
                for k in [k for k, n in self._busy.items() if n == 0]:
                    del self._busy[k]
                    self._cap.pop(k, None)
                    self._latency.pop(k, None)
            self._busy[key] = self._busy.get(key, 0) + 1
            return True

    def done(self, key: str, outcome: Outcome | None) -> None:
        with self._lock:
            self._busy[key] = max(0, self._busy.get(key, 1) - 1)
            if outcome is None or outcome.latency_ms is None:
                return
            seconds = outcome.latency_ms / 1000
            old = self._latency.get(key)
            self._latency[key] = seconds if old is None else 0.7 * old + 0.3 * seconds
            if outcome.reason.startswith("timed out"):
                self._cap[key] = max(1, self.cap(key) // 2)
            elif self.cap(key) < self.ceiling:
                self._cap[key] = self.cap(key) + 1


class Pacing:
    def __init__(self, rt: Runtime, in_flight: InFlight | None = None, *, slow_topic: str | None = None):
        self.rt = rt
        self._pacer = Pacer()
        self.in_flight = in_flight or InFlight()
        self.slow_topic = slow_topic  # the slow lane: its own topic and subscription (topology)
        subs = [s.name for s in rt.topology.subscriptions.values() if slow_topic and s.topic == slow_topic]
        self.slow_subscription = subs[0] if subs else None

    def slow(self, job: Job) -> bool:
        """The job's receiver has lately taken SLOW_SECONDS or more per request (on this instance)."""
        return self.in_flight.latency(job.key) >= SLOW_SECONDS

    def _slow_lane(self, attempt: Attempt) -> bool:
        sub = attempt.message.subscription or ""
        return bool(self.slow_subscription) and sub.rsplit("/", 1)[-1] == self.slow_subscription

    def gate(self, job: Job, attempt: Attempt) -> Outcome | None:
        """Before a POST: a wait when the job's receiver is slow and this is not its lane (it goes there at
        once), or when the job's pace (configured or learned) puts it later."""
        if self.slow_subscription and self.slow(job) and not self._slow_lane(attempt):
            latency = self.in_flight.latency(job.key)
            return Outcome.wait(
                datetime.now(UTC),
                f"slow receiver (about {latency:.1f} s per request): sent from the slow lane",
            )
        configured = _configured(job)
        if configured is None and not self.rt.limiter.paced(job):
            return None
        if attempt.slot:  # released at the slot reserved for it
            rate = self.rt.limiter.rate_of(job, configured)
        else:
            grant = self.rt.limiter.reserve(job, configured)
            rate = grant.rate
            if grant.at > time.time() + SLOT_SLACK:
                return Outcome.wait(
                    _at(grant.at), _why(grant.rate, grant.learned, "sent at its slot"), slot=True
                )
        if self._pacer.pace(job.key, rate) is None:
            # sent too soon after this instance's previous send of the job: to the delay queue, keeping its slot
            later = datetime.now(UTC) + timedelta(seconds=self._pacer.later(job.key, Rate(rate.per_second)))
            return Outcome.wait(
                later, _why(rate, configured is None, "spaced after the previous send"), slot=True
            )
        return None

    def send(self, job: Job, post) -> Outcome:
        """Run `post()` within the job's in-flight cap; over it, a slot at the pace the receiver answers."""
        key = job.key
        if not self.in_flight.take(key):
            cap, latency = self.in_flight.cap(key), max(self.in_flight.latency(key), 0.05)
            refusal = self.rt.limiter.push_back(job, _configured(job), latency / cap)
            reason = f"{cap} requests of this job in flight (each about {latency:.1f} s): sent at its slot"
            return Outcome.wait(_at(refusal.at), reason, slot=True)
        outcome: Outcome | None = None
        try:
            outcome = post()
            return outcome
        finally:
            self.in_flight.done(key, outcome)

    def answer(self, job: Job, attempt: Attempt, outcome: Outcome) -> Outcome:
        """After a POST: a push-back becomes a wait at a slot of the job's (slower) pace, or past the budget a
        dead letter; an accepted delivery of a paced job is noted (the budget counts from it)."""
        if outcome.kind is Kind.DELIVERED:
            self.rt.limiter.accepted(job)
            return outcome
        if not outcome.pushback:
            return outcome
        refusal = self.rt.limiter.push_back(job, _configured(job), outcome.retry_after)
        now = time.time()
        first = attempt.pushed_at or now
        budget = self.budget(job)
        if now - max(first, refusal.last_ok) > budget:
            return outcome.but(
                kind=Kind.PERMANENT,
                pushback=False,
                reason=f'{outcome.reason}: the receiver kept answering "slow down" and took nothing of this '
                f"job for {budget:g} s (the job's retry window): push-back budget spent (replay sends it)",
            )
        return outcome.but(not_before=_at(refusal.at), slot=True,
                           reason=f"{outcome.reason}: paced at {refusal.rate:.3g}/s, sent at its slot")  # fmt: skip

    def budget(self, job: Job) -> float:
        """Seconds a receiver may answer "slow down" while taking nothing, before its refused deliveries are
        dead-lettered: the job's whole retry window (scaled by SYSEVENTS_TIME_SCALE, like it)."""
        return scaled(sum(job.config.retry_schedule), self.rt.settings.time_scale).total_seconds()


def _configured(job: Job) -> Rate | None:
    rate = job.config.delivery_rate()
    return None if rate is None else Rate(rate.per_second, rate.burst)


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _why(rate: Rate, learned: bool, what: str) -> str:
    kind = "learned pace" if learned else "rate limit"
    return f"{kind} {rate.per_second:.3g}/s: {what}"
