"""Receivers that push back, through the real pipeline (Pub/Sub, Firestore and Cloud Tasks emulators, real
HTTP receivers), with what users leave at its default: no `rate_limit` on the job.

A receiver that enforces its own limit answers 429 (with a Retry-After, or without one); that is a wait,
never a failed attempt: every event is delivered, nothing is dead-lettered, and the job learns the pace
(sysevents.delivery.ratelimit). A receiver that answers 429 for ever ends in dead letters after the job's
retry window (the push-back budget), and `replay` sends them once it accepts. A slow receiver holds at most
its job's in-flight cap of the webhook function's threads, so another job's burst goes by.

Receiver time is real time: the bursts here are sized so the test stays short (bench/bench_delays.py plays
bursts of 100 and prints the drain rates against each receiver's limit).
"""

from __future__ import annotations

import pytest
from helpers import TIME_SCALE, pull, wait_until
from helpers import publish_events as publish
from helpers import put_jobs as put
from helpers import webhook_job as webhook

from sysevents.delivery.accounting import DeliveryLog
from sysevents.delivery.replay import replay
from sysevents.events.model import new_event
from sysevents.local.demo import SLACK_TEMPLATE
from sysevents.local.receiver import Receiver, Reply, TokenBucket
from sysevents.runtime import Runtime
from sysevents.sinks.webhook.pacing import default_cap

pytestmark = pytest.mark.integration


def dead_of(subscriber, path, job_id):
    return [m for m in pull(subscriber, path, 1000, timeout=3.0) if m.attributes.get("job_id") == job_id]


CASES = [  # (name, the receiver's limit, events): no rate_limit on any of these jobs
    ("one-per-second", lambda: TokenBucket(1.0), 25),
    ("five-per-second", lambda: TokenBucket(5.0, burst=5), 60),
    ("thirty-per-minute", lambda: TokenBucket(0.5), 12),
    ("no-retry-after", lambda: TokenBucket(2.0, retry_after=False), 20),
]


def test_receivers_that_enforce_their_own_limit_get_every_event_of_a_burst(
    stack, store, publisher, subscriber, dead_letters, aid
):
    receivers = {name: Receiver().start() for name, _, _ in CASES}
    limits = {name: make() for name, make, _ in CASES}
    try:
        jobs, events = {}, []
        for name, _, n in CASES:
            receivers[name].script = limits[name]
            template = {"json_template": SLACK_TEMPLATE} if name == "one-per-second" else {}
            ids = [f"{name}-{i}" for i in range(n)]  # each job takes its own works' events
            jobs[name] = webhook(f"{aid}-{name}", aid, receivers[name].url("/hook"),
                                 system_event_sources={"work": ids}, **template)  # fmt: skip
            events += [new_event(aid, "work", w, "failed", notes=w) for w in ids]
        put(stack, store, *jobs.values())
        publish(stack, publisher, *events)  # one burst, every job's events interleaved
        for name, _, n in CASES:
            got = wait_until(lambda r=receivers[name], n=n: len(r.at("/hook")) >= n and r.at("/hook"), 240)
            assert got and len({r.body for r in got}) == n, (
                f"{name}: {len(receivers[name].at('/hook'))} of {n}"
            )
        dlog = DeliveryLog(store.client)
        for name, _, n in CASES:
            job, receiver, limit = jobs[name], receivers[name], limits[name]
            assert dead_of(subscriber, dead_letters, job.id) == [], name
            assert limit.refused >= 1, f"{name}: the receiver never pushed back: the test proves nothing"
            assert len(receiver.requests) <= 1.5 * n, (
                f"{name}: {len(receiver.requests)} requests for {n} events"
            )
            stats = wait_until(lambda j=job, n=n: (s := dlog.stats(j))["delivered"] == n and s, 30)
            assert stats["failed_attempts"] == 0, (name, stats)  # a "slow down" is not a failed attempt
            assert stats["dead_lettered"] == stats["pending"] == 0, (name, stats)
            assert stats["pushed_back"] >= 1, (name, stats)
            assert stats["consecutive_failures"] == 0, (name, stats)
            assert stats["learned_pace"] is not None and stats["learned_pace"]["per_second"] > 0, (
                name,
                stats,
            )
    finally:
        for r in receivers.values():
            r.stop()


def test_a_receiver_that_pushes_back_for_ever_ends_in_replayable_dead_letters(
    stack, store, publisher, subscriber, dead_letters, aid, receiver
):
    limit = receiver.script = TokenBucket(0.0)  # 429 for ever
    schedule = [3000.0, 3000.0, 3000.0]  # the retry window, scaled: 9,000 s x TIME_SCALE = 3 s of budget
    job = webhook(f"{aid}-forever", aid, receiver.url("/hook"), retry_schedule=schedule)
    put(stack, store, job)
    events = [new_event(aid, "work", f"w{i}", "failed") for i in range(3)]
    publish(stack, publisher, *events)
    dead = [
        m for m in pull(subscriber, dead_letters, 3, timeout=120, aid=aid) if m.attributes["job_id"] == job.id
    ]
    assert len(dead) == 3, f"{len(dead)} of 3 dead-lettered"
    budget = sum(schedule) * TIME_SCALE
    for m in dead:
        reason = m.attributes.get("reason", "")
        assert "push-back budget" in reason and f"{budget:g} s" in reason, reason
    assert limit.refused >= 6  # pushed back over and over within the budget, none counted as an attempt
    dlog = DeliveryLog(store.client)
    stats = wait_until(lambda: (s := dlog.stats(job))["dead_lettered"] == 3 and s, 30)
    assert stats["failed_attempts"] == 0 and stats["consecutive_failures"] == 0, stats
    assert job.id in {j.id for j in store.list(aid) if j.state.value == "active"}  # not auto-disabled

    receiver.script = None  # it accepts again: replay sends each once
    rt = Runtime()
    try:
        ids = replay(rt, store.get(aid, job.id))
    finally:
        rt.close()
    assert len(ids) == 3
    got = wait_until(lambda: len(receiver.at("/hook")) >= 3 and receiver.at("/hook"), 90)
    assert got and sorted(r.json()["id"] for r in got) == sorted(e.id for e in events)


def test_a_slow_receiver_holds_neither_the_threads_nor_the_pushes_of_other_jobs(stack, store, publisher, aid):
    cap = default_cap()  # the webhook function's in-flight cap per job: half its request threads
    seconds = 10.0  # each of the slow receiver's answers takes this long

    def in_flight_at_most(arrivals: list[float]) -> int:
        """Each request takes `seconds`: the requests that arrived within one such window overlapped."""
        arrivals = sorted(arrivals)
        return max((sum(1 for b in arrivals if a <= b < a + seconds - 0.5) for a in arrivals), default=0)

    slow_receiver, fast_receiver = Receiver().start(), Receiver().start()
    try:
        slow_receiver.script = lambda request: Reply(200, delay=seconds)
        slow_job = webhook(f"{aid}-slow", aid, slow_receiver.url("/slow"), system_event_type="updated")
        fast_job = webhook(f"{aid}-fast", aid, fast_receiver.url("/fast"))
        put(stack, store, slow_job, fast_job)
        dlog = DeliveryLog(store.client)
        publish(stack, publisher, new_event(aid, "work", "s-first", "updated"))  # the job shows it is slow
        assert wait_until(lambda: dlog.stats(slow_job)["delivered"] == 1, 60)
        n_slow = 2 * cap  # as many as the function has threads: uncapped, they would take every one
        publish(stack, publisher, *(new_event(aid, "work", f"s{i}", "updated") for i in range(n_slow)))
        assert wait_until(lambda: len(slow_receiver.at("/slow")) >= 2, 60)
        first_answer = min(r.at for r in slow_receiver.at("/slow")[1:]) + seconds
        publish(stack, publisher, *(new_event(aid, "work", f"f{i}", "failed") for i in range(50)))
        fast = wait_until(lambda: len(fast_receiver.at("/fast")) >= 50 and fast_receiver.at("/fast"), 60)
        assert fast and len({r.json()["id"] for r in fast}) == 50
        last_fast = max(r.at for r in fast)
        # the fast burst went by while the slow receiver held its requests: nothing waited for them
        assert last_fast < first_answer, f"the fast burst ended {last_fast - first_answer:.1f} s after"
        got = wait_until(lambda: len(slow_receiver.at("/slow")) >= n_slow + 1, 180)
        assert got, f"{len(slow_receiver.at('/slow'))} of {n_slow + 1} slow deliveries"
        most = in_flight_at_most([r.at for r in slow_receiver.at("/slow")])
        assert most <= cap, f"{most} requests in flight at once; the cap is {cap}"
        stats = wait_until(lambda: (s := dlog.stats(slow_job))["delivered"] == n_slow + 1 and s, 60)
        assert stats and stats["failed_attempts"] == 0, stats  # nothing timed out because of our own queueing
    finally:
        slow_receiver.stop()
        fast_receiver.stop()
