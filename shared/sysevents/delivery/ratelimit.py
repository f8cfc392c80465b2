"""Per-job delivery rate limits, enforced across instances: GCRA slots kept in Firestore.

Each job with a rate (`per_second`, `burst`) has one document, `job_state/{job key}/limits/rate`, holding
its theoretical arrival time (TAT, the generic cell rate algorithm). A delivery *reserves* a slot: the
earliest time at which sending it keeps the job within `per_second` on average and `burst` at once; the
TAT moves one interval on. A slot in the future means the delivery waits for it in the delay queue and is
sent when released, without reserving again; so a burst of N deliveries becomes N sends spaced by the
interval, across every instance, with one transaction per delivery (concurrent reservations of one
instance share one transaction). `push_back` moves the TAT past a receiver's Retry-After.

Slots are exact; the delay queue's releases are not (tens to a couple of hundred milliseconds late, each by
its own amount), so two deliveries released one interval apart can reach the receiver closer than that,
and a receiver that enforces its limit strictly (Slack) answers 429. `Pacer` closes that gap inside one
instance: a delivery that comes within an interval of the job's previous send from this instance waits
out the difference (at most `MAX_PACE` seconds) before it is sent. Across instances the slots alone hold,
and a 429's Retry-After holds the job.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from google.cloud import firestore

from sysevents.jobs.model import Job
from sysevents.transport.coalesce import Coalescer


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int = 1

    @property
    def interval(self) -> float:
        return 1.0 / self.per_second


class RateLimiter:
    def __init__(self, client: firestore.Client, collection: str = "job_state"):
        self.client = client
        self.collection = client.collection(collection)
        self._batches: Coalescer[str, tuple[Job, Rate], float] = Coalescer(
            self._reserve, max_size=100, max_wait=0.005, idle=0.002
        )
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def _ref(self, job: Job):
        return self.collection.document(job.key).collection("limits").document("rate")

    def reserve(self, job: Job, rate: Rate) -> float:
        """The time (epoch seconds) at which this delivery may be sent; now or later."""
        [at] = self._batches.submit(job.key, [(job, rate)])
        return at

    def _reserve(self, key: str, items: list[tuple[Job, Rate]]) -> list[float]:
        with self._key_lock(key):  # one instance never contends with itself on a job's limiter document
            return self._reserve_now(items)

    def _key_lock(self, key: str) -> threading.Lock:
        with self._locks_lock:
            lock = self._locks.get(key)
            if lock is None:
                if len(self._locks) >= 10_000:
                    self._locks.clear()
                lock = self._locks[key] = threading.Lock()
            return lock

    def _reserve_now(self, items: list[tuple[Job, Rate]]) -> list[float]:
        job, rate = items[-1]
        ref = self._ref(job)

        @firestore.transactional
        def tx(t: firestore.Transaction) -> list[float]:
            snap = ref.get(transaction=t)
            now = time.time()
            tat = max(float((snap.to_dict() or {}).get("tat") or 0.0), now)
            tau = (rate.burst - 1) * rate.interval
            slots = []
            for _ in items:
                slots.append(max(now, tat - tau))
                tat += rate.interval
            t.set(ref, {"tat": tat, "per_second": rate.per_second, "burst": rate.burst})
            return slots

        return tx(self.client.transaction(max_attempts=50))

    def push_back(self, job: Job, until: float) -> None:
        """No slot before `until` (epoch seconds): a receiver asked for time."""
        ref = self._ref(job)

        @firestore.transactional
        def tx(t: firestore.Transaction) -> None:
            snap = ref.get(transaction=t)
            if float((snap.to_dict() or {}).get("tat") or 0.0) < until:
                t.set(ref, {"tat": until}, merge=True)

        tx(self.client.transaction(max_attempts=50))


MAX_PACE = 0.5
"""Seconds a delivery may wait in-process for its job's interval (more than that is the delay queue's)."""
PACE_MARGIN = 1.02
"""Paced sends are spaced by the interval plus 2 %: the receiver's clock sees the request a little later."""


class Pacer:
    """Per-job spacing of sends within one instance (see the module docstring)."""

    def __init__(self, sleep=time.sleep, clock=time.monotonic, max_keys: int = 10_000):
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        self._sleep = sleep
        self._clock = clock
        self._max_keys = max_keys

    def pace(self, key: str, rate: Rate) -> float | None:
        """Wait, if needed, until this job's previous send from here is an interval old, and claim the send;
        returns the wait. None: the wait would exceed MAX_PACE (nothing claimed; put the delivery away for
        `later(key, rate)` seconds instead). Jobs with a burst above 1 may send that many at once: not paced."""
        if rate.burst > 1:
            return 0.0
        spacing = rate.interval * PACE_MARGIN
        with self._lock:
            now = self._clock()
            last = self._last.get(key)
            wait = 0.0 if last is None else max(0.0, last + spacing - now)
            if wait > MAX_PACE:
                return None
            if len(self._last) >= self._max_keys and key not in self._last:
                self._last.clear()  # bounded: forgetting only loosens the spacing for a moment
            self._last[key] = now + wait
        if wait > 0:
            self._sleep(wait)
        return wait

    def later(self, key: str, rate: Rate) -> float:
        """Seconds until this job's next send from here may go (0 when it may go now)."""
        with self._lock:
            last = self._last.get(key)
            return 0.0 if last is None else max(0.0, last + rate.interval * PACE_MARGIN - self._clock())
