"""Per-job delivery pace, kept across instances: GCRA slots in Firestore, at a configured rate or at one
learned from the receiver's "slow down" answers.

Each paced job has one document, `job_state/{job key}/limits/rate`, holding its theoretical arrival time
(TAT, the generic cell rate algorithm) and, while its receiver pushes back, the learned pace. A delivery
*reserves* a slot: the earliest time at which sending it keeps the job within its rate on average (and its
`burst` at once); the TAT moves one interval on. A slot in the future means the delivery waits for it in
the delay queue and is sent when released, without reserving again; so a burst of N deliveries becomes N
sends spaced by the interval, across every instance, with one transaction per delivery (concurrent
reservations of one instance share one transaction).

**The learned pace** (AIMD, as TCP's congestion control; `push_back` and `reserve`). A receiver that
answers 429 (or 503 with a Retry-After) starts a *regime*: the job's rate becomes what the receiver was
seen to take -- the deliveries this instance had accepted within the Retry-After window (a second without
one), less a tenth --, capped by the configured `rate_limit`. From then on each push-back (at most one per
Retry-After window) multiplies the rate by BETA, and the rate climbs back by GROWTH per second since, up
to the ceiling (the configured `rate_limit`, else DEFAULT_CEILING). A slot is reserved at the rate in
force when it is reserved: a backlog reserved at once is spaced at that rate, never at a rate guessed for
later. Every push-back also moves the TAT past its Retry-After and gives the refused deliveries the next
slots, so deliveries held behind it are released one interval apart, never all at the hold's end. REGIME
seconds without a push-back end it. Receiver time is real time: nothing here is scaled by
SYSEVENTS_TIME_SCALE. `accepted` notes (at most every OK_EVERY seconds per instance) when the receiver last
took a delivery of a paced job: the push-back budget (sysevents.sinks.webhook.pacing) counts from it.
Reservations and push-backs of one job from one instance take turns (one lock per job) and gather into
one transaction each (no instance contends with itself on the document).

Slots are exact; the delay queue's releases are not (tens to a couple of hundred milliseconds late, each by
its own amount), so two deliveries released one interval apart can reach the receiver closer than that,
and a receiver that enforces its limit strictly (Slack) answers 429. `Pacer` closes that gap inside one
instance: a delivery that comes within an interval of the job's previous send from this instance waits
out the difference (at most `MAX_PACE` seconds) before it is sent. Across instances the slots alone hold,
and a push-back slows every instance down.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.cloud import firestore

from sysevents.jobs.model import Job
from sysevents.transport.coalesce import Coalescer

BETA = 0.8
"""A push-back multiplies the learned rate by this."""
GROWTH = 0.01
"""Each second without a push-back adds this share of the rate set at the last one (additive increase)."""
FIRST_SHARE = 0.9
"""A regime starts at this share of what the receiver was seen to take."""
SEEN = 256
"""Accepted deliveries of each job this instance remembers (their times), to start a regime from."""
DEFAULT_CEILING = 100.0
"""Requests per second a learned rate climbs to at most, for a job with no `rate_limit`."""
MIN_RATE = 1 / 60
"""The learned rate never drops below one request a minute."""
REGIME = 600.0
"""Seconds without a push-back after which a job's learned pace is forgotten."""
OK_EVERY = 5.0
"""Seconds between this instance's notes that the receiver accepted a paced job's delivery."""
DEFAULT_WAIT = 1.0
"""Seconds a push-back without Retry-After asks for."""


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int = 1

    @property
    def interval(self) -> float:
        return 1.0 / self.per_second


@dataclass(frozen=True)
class Grant:
    """A reserved slot (epoch seconds) and the rate it was reserved at; `learned` when that rate is the
    receiver's learned pace (else the configured one)."""

    at: float
    rate: Rate
    learned: bool = False


@dataclass(frozen=True)
class Refusal:
    """What a push-back did: the refused delivery's slot, and when the receiver last accepted (epoch s)."""

    at: float
    last_ok: float
    rate: float


def learned_of(doc: dict[str, Any], now: float) -> dict[str, Any] | None:
    """The learned pace in a limiter document, when a regime is on."""
    if not doc.get("pace_rate") or now - float(doc.get("pace_at") or 0) > REGIME:
        return None
    return doc


class RateLimiter:
    def __init__(self, client: firestore.Client, collection: str = "job_state"):
        self.client = client
        self.collection = client.collection(collection)
        self._batches: Coalescer[str, tuple[Job, Rate | None], Grant] = Coalescer(
            self._reserve, max_size=100, max_wait=0.005, idle=0.002
        )
        self._refusals: Coalescer[str, tuple[Job, Rate | None, float], Refusal] = Coalescer(
            self._push_back, max_size=100, max_wait=0.005, idle=0.002
        )
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._paced: dict[str, float] = {}  # job key -> until when this instance knows its pace is learned
        self._rates: dict[str, float] = {}  # job key -> its learned rate, as this instance last saw it
        self._ok: dict[str, float] = {}  # job key -> when this instance last noted an accepted delivery
        self._seen: dict[str, deque[float]] = {}  # job key -> when its last deliveries were accepted here

    def _ref(self, job: Job):
        return self.collection.document(job.key).collection("limits").document("rate")

    def paced(self, job: Job) -> bool:
        """This instance knows the job's receiver pushed back recently (its deliveries reserve slots)."""
        until = self._paced.get(job.key)
        return until is not None and until > time.time()

    def rate_of(self, job: Job, configured: Rate | None) -> Rate:
        """The job's pace as this instance last saw it: its learned rate, else the configured one."""
        learned = self._rates.get(job.key) if self.paced(job) else None
        if learned is not None:
            return Rate(learned)
        return configured or Rate(1.0 / DEFAULT_WAIT)

    def _mark(self, job: Job, rate: float | None, at: float) -> None:
        if rate is not None:
            if len(self._paced) >= 10_000 and job.key not in self._paced:
                self._paced.clear()  # bounded: forgetting costs one push-back to learn again
                self._rates.clear()
            self._paced[job.key] = at + REGIME
            self._rates[job.key] = rate
        else:
            self._paced.pop(job.key, None)
            self._rates.pop(job.key, None)

    def _key_lock(self, key: str) -> threading.Lock:
        with self._locks_lock:
            lock = self._locks.get(key)
            if lock is None:
                if len(self._locks) >= 10_000:
                    self._locks.clear()
                lock = self._locks[key] = threading.Lock()
            return lock

    # -- slots ------------------------------------------------------------------------------------------------
    def reserve(self, job: Job, rate: Rate | None) -> Grant:
        """The slot at which this delivery may be sent (now or later), at the learned pace while the
        receiver pushes back, else at `rate` (the configured one)."""
        [grant] = self._batches.submit(job.key, [(job, rate)])
        return grant

    def _reserve(self, key: str, items: list[tuple[Job, Rate | None]]) -> list[Grant]:
        with self._key_lock(key):  # one instance never contends with itself on a job's limiter document
            grants = self._reserve_now(items)
        job = items[-1][0]
        last = grants[-1]
        self._mark(job, last.rate.per_second if last.learned else None, time.time())
        return grants

    def _reserve_now(self, items: list[tuple[Job, Rate | None]]) -> list[Grant]:
        job, configured = items[-1]
        ref = self._ref(job)

        @firestore.transactional
        def tx(t: firestore.Transaction) -> list[Grant]:
            doc = ref.get(transaction=t).to_dict() or {}
            now = time.time()
            learned = learned_of(doc, now)
            if learned is None and configured is None:  # the regime ended: not paced any more
                return [Grant(now, Rate(DEFAULT_CEILING))] * len(items)
            tat = max(float(doc.get("tat") or 0.0), now)
            if learned is None:
                assert configured is not None
                rate, tau = configured, (configured.burst - 1) * configured.interval
                change = {"per_second": configured.per_second, "burst": configured.burst}
            else:
                rate, tau, change = Rate(rate_now(learned, now)), 0.0, {}  # a learned pace: no burst
            grants = []
            for _ in items:
                grants.append(Grant(max(now, tat - tau), rate, learned=learned is not None))
                tat += rate.interval
            t.set(ref, {"tat": tat, **change}, merge=True)
            return grants

        return tx(self.client.transaction(max_attempts=50))

    # -- push-backs --------------------------------------------------------------------------------------------
    def push_back(self, job: Job, configured: Rate | None, retry_after: float | None) -> Refusal:
        """The receiver said "slow down" to one delivery: slow the job's pace (see the module docstring)
        and reserve that delivery a slot after the receiver's Retry-After."""
        wait = DEFAULT_WAIT if retry_after is None else retry_after
        [refusal] = self._refusals.submit(job.key, [(job, configured, wait)])
        return refusal

    def _push_back(self, key: str, items: list[tuple[Job, Rate | None, float]]) -> list[Refusal]:
        job, configured, _ = items[-1]
        wait = max(w for _, _, w in items)
        seen = self._seen_rate(job, wait)
        with self._key_lock(key):
            refusals = self._push_back_now(job, configured, wait, seen, len(items))
        self._mark(job, refusals[-1].rate, time.time())
        return refusals

    def _seen_rate(self, job: Job, wait: float) -> float:
        """What the receiver took from this instance lately: its accepted deliveries within the Retry-After
        window (at least a second) per second; one per window when none."""
        window = max(wait, 1.0)
        now = time.monotonic()
        seen = self._seen.get(job.key) or ()
        return max(1, sum(1 for at in seen if now - at <= window)) / window

    def _push_back_now(
        self, job: Job, configured: Rate | None, wait: float, seen: float, n: int
    ) -> list[Refusal]:
        ref = self._ref(job)
        ceiling = configured.per_second if configured is not None else DEFAULT_CEILING

        @firestore.transactional
        def tx(t: firestore.Transaction) -> list[Refusal]:
            doc = ref.get(transaction=t).to_dict() or {}
            now = time.time()
            learned = learned_of(doc, now)
            change: dict[str, Any] = {"pace_at": now, "pace_ceiling": ceiling}
            if learned is None:  # a new regime: start below what the receiver was seen to take
                rate = min(ceiling, max(MIN_RATE, FIRST_SHARE * seen))
                change.update(pace_rate=rate, pace_since=now, pace_decreased_at=now)
            else:
                rate = rate_now(learned, now)
                if now - float(learned.get("pace_decreased_at") or 0) >= max(wait, 1.0 / rate):
                    rate = max(MIN_RATE, rate * BETA)  # one decrease per window: not one per refusal
                    change.update(pace_rate=rate, pace_decreased_at=now)
            at = max(float(doc.get("tat") or 0.0), now + wait)
            slots = [at + i / rate for i in range(n)]
            change["tat"] = at + n / rate
            t.set(ref, change, merge=True)
            return [Refusal(slot, float(doc.get("last_ok") or 0.0), rate) for slot in slots]

        return tx(self.client.transaction(max_attempts=50))

    def accepted(self, job: Job) -> None:
        """The receiver took a delivery of this job: remembered here (a regime starts from it) and, for a
        paced job, noted in its document at most every OK_EVERY s per instance (the push-back budget)."""
        seen = self._seen.get(job.key)
        if seen is None:
            if len(self._seen) >= 10_000:
                self._seen.clear()
            seen = self._seen[job.key] = deque(maxlen=SEEN)
        seen.append(time.monotonic())
        if not self.paced(job):
            return
        now = time.time()
        if now - self._ok.get(job.key, 0.0) < OK_EVERY:
            return
        if len(self._ok) >= 10_000:
            self._ok.clear()
        self._ok[job.key] = now
        self._ref(job).set({"last_ok": now}, merge=True)


def rate_now(learned: dict[str, Any], now: float) -> float:
    """The learned rate in force at `now`: the rate set at the last push-back, grown since (additively)."""
    base = float(learned["pace_rate"])
    since = max(0.0, now - float(learned.get("pace_decreased_at") or now))
    ceiling = float(learned.get("pace_ceiling") or DEFAULT_CEILING)
    return min(ceiling, base * (1 + GROWTH * since))


def pace_of(doc: dict[str, Any], now: float) -> dict[str, Any] | None:
    """A job's learned pace, from its limiter document, for its stats and `sysevents status`: None when its
    receiver has not pushed back in the last REGIME seconds."""
    learned = learned_of(doc, now)
    if learned is None:
        return None
    return {
        "per_second": round(rate_now(learned, now), 3),
        "ceiling": learned.get("pace_ceiling"),
        "since": _iso(learned.get("pace_since")),
        "last_push_back": _iso(learned.get("pace_at")),
    }


def _iso(epoch: Any) -> str | None:
    return datetime.fromtimestamp(float(epoch), UTC).isoformat(timespec="seconds") if epoch else None


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
