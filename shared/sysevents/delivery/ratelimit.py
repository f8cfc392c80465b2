"""Per-job delivery rate limits, enforced across instances: GCRA slots kept in Firestore.

Each job with a rate (`per_second`, `burst`) has one document, `job_state/{job key}/limits/rate`, holding
its theoretical arrival time (TAT, the generic cell rate algorithm). A delivery *reserves* a slot: the
earliest time at which sending it keeps the job within `per_second` on average and `burst` at once; the
TAT moves one interval on. A slot in the future means the delivery waits for it in the delay queue and is
sent when released, without reserving again; so a burst of N deliveries becomes N sends spaced by the
interval, across every instance, with one transaction per delivery (concurrent reservations of one
instance share one transaction). `push_back` moves the TAT past a receiver's Retry-After.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from google.cloud import firestore

from ..coalesce import Coalescer
from ..jobs import Job


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

    def _ref(self, job: Job):
        return self.collection.document(job.key).collection("limits").document("rate")

    def reserve(self, job: Job, rate: Rate) -> float:
        """The time (epoch seconds) at which this delivery may be sent; now or later."""
        [at] = self._batches.submit(job.key, [(job, rate)])
        return at

    def _reserve(self, key: str, items: list[tuple[Job, Rate]]) -> list[float]:
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
