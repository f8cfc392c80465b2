"""Deliveries that outlast the receiver: a burst into a rate-limited receiver, and recovery after an outage.
Prints a table and a last line of JSON; nothing is asserted.

1. Burst: N `work failed` events at once for the seed's Slack job, into a Slack-like receiver that takes
   1 request per second and answers 429 with Retry-After: 1 above that. The job's rate limit is 1/s. The
   physical minimum is N/R seconds; drain_ratio = (N/R) / measured drain time (1.0 is the receiver's own
   limit). Requests per delivered event count the 429s too.
2. No configured limit: the same burst into receivers that enforce their own limit (1/s, 5/s with a
   burst of 5, 30/minute; 429 with Retry-After), jobs created with no `rate_limit`, all at once. Per
   receiver: delivered, dead-lettered, requests per event, the drain after the first 20 deliveries against
   the receiver's limit (drain_ratio: 1.0 is the limit), and the job's learned rate every few seconds.
3. A slow receiver (5 s per request, NO_LIMIT_SLOW deliveries) beside a fast job's burst of 100: the fast
   job's p99 (publish to arrival) against its solo run.
4. Outage: the receiver is down (connection refused) while M events are published, for OUTAGE_HOURS of
   production time at the stack's SYSEVENTS_TIME_SCALE; recovery_s is the time from the receiver coming
   back to the last event delivered (it waits for each delivery's next scheduled attempt), and the same
   in production hours.

    .venv/bin/python bench/bench_delays.py [N]
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import datetime

import requests

from sysevents.events.model import new_event
from sysevents.local.demo import SLACK_TEMPLATE
from sysevents.local.processes import free_port
from sysevents.local.receiver import Receiver, Reply, TokenBucket
from sysevents.local.stack import LocalStack

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
RATE = 1.0
M = 50
TIME_SCALE = 1 / 600
OUTAGE_HOURS = 1.0
AID = "bench-delays"
NO_LIMIT = [("1/s", 1.0, 1), ("5/s", 5.0, 5), ("30/min", 0.5, 1)]  # (name, requests/s, burst)
NO_LIMIT_SLOW = 16


class SlackLike:
    """At most one request per second (a token bucket of one); 429 + Retry-After: 1 above that."""

    def __init__(self):
        self.last = 0.0
        self.lock = threading.Lock()

    def __call__(self, request):
        with self.lock:
            now = time.monotonic()
            if now - self.last < 1.0 / RATE:
                return Reply(429, {"Retry-After": "1"})
            self.last = now
            return None


def create_job(stack, key: str, doc: dict) -> dict:
    api = stack.function_urls["admin"].rstrip("/")
    r = requests.post(f"{api}/accounts/{AID}/jobs", headers={"X-API-Key": key}, json=doc, timeout=60)
    r.raise_for_status()
    stack.wait_for_job_caches(datetime.fromisoformat(r.json()["updated_at"]))
    return r.json()


def account(stack) -> str:
    api = stack.function_urls["admin"].rstrip("/")
    op = {"X-API-Key": stack.operator_key}
    requests.post(f"{api}/accounts", json={"aid": AID}, headers=op, timeout=30).raise_for_status()
    r = requests.post(f"{api}/accounts/{AID}/keys", json={"name": "bench"}, headers=op, timeout=30)
    r.raise_for_status()
    return r.json()["key"]


def burst(stack, key: str) -> dict:
    from sysevents.transport.pubsub import Publisher

    receiver = Receiver().start()
    receiver.script = SlackLike()
    try:
        create_job(stack, key, {
            "workflow": "webhook_system_events", "name": "bench slack",
            "config": {"system_event_type": "failed", "system_event_sources": {"work": []},
                       "webhook_url": receiver.url("/slack"), "json_template": SLACK_TEMPLATE,
                       "rate_limit": {"per_second": RATE}},
        })  # fmt: skip
        events = [new_event(AID, "work", f"w{i}", "failed", notes=f"n{i}") for i in range(N)]
        started = time.monotonic()
        Publisher(stack.project).publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in events])
        deadline = started + 10 * N / RATE + 60
        while len(receiver.at("/slack")) < N and time.monotonic() < deadline:
            time.sleep(0.1)
        drained = time.monotonic() - started
        delivered = len({r.body for r in receiver.at("/slack")})
        return {"events": N, "delivered": delivered, "requests": len(receiver.requests), "drain_s": drained}
    finally:
        receiver.stop()


def no_limit(stack, key: str) -> dict:
    """Bursts of N into receivers enforcing their own limits, with no rate_limit on the jobs (section 2)."""
    from sysevents.delivery.accounting import DeliveryLog
    from sysevents.runtime import Runtime
    from sysevents.transport.pubsub import Publisher

    receivers = {name: Receiver().start() for name, _, _ in NO_LIMIT}
    buckets = {name: TokenBucket(rate, burst) for name, rate, burst in NO_LIMIT}
    rt = Runtime()
    try:
        jobs, events = {}, []
        for name, _, _ in NO_LIMIT:
            receivers[name].script = buckets[name]
            ids = [f"{name.replace('/', 'per')}-{i}" for i in range(N)]
            made = create_job(stack, key, {
                "workflow": "webhook_system_events", "name": f"bench {name}",
                "config": {"system_event_type": "failed", "system_event_sources": {"segment": ids},
                           "webhook_url": receivers[name].url("/hook")},
            })  # fmt: skip
            jobs[name] = rt.jobs.find(AID, made["id"])
            events += [new_event(AID, "segment", i, "failed") for i in ids]
        started = time.monotonic()
        Publisher(stack.project).publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in events])
        dlog, learned = DeliveryLog(rt.firestore), {name: [] for name in jobs}
        deadline = started + 3 * N / min(r for _, r, _ in NO_LIMIT) + 120
        while time.monotonic() < deadline:
            done = {name: len(receivers[name].at("/hook")) >= N for name in jobs}
            for name, job in jobs.items():
                pace = dlog.stats(job)["learned_pace"]
                learned[name].append((round(time.monotonic() - started), pace and pace["per_second"]))
            if all(done.values()):
                break
            time.sleep(5)
        out = {}
        for name, rate, _ in NO_LIMIT:
            accepted = sorted(buckets[name].accepted)
            after = accepted[20:]
            drain = (len(after) - 1) / (after[-1] - after[0]) / rate if len(after) > 1 else 0.0
            stats = dlog.stats(jobs[name])
            out[name] = {"delivered": len({r.body for r in receivers[name].at("/hook")}),
                         "dead_lettered": stats["dead_lettered"], "failed_attempts": stats["failed_attempts"],
                         "requests": len(receivers[name].requests), "drain_ratio": round(drain, 3),
                         "learned": learned[name]}  # fmt: skip
        return out
    finally:
        rt.close()
        for r in receivers.values():
            r.stop()


def slow_beside_fast(stack, key: str) -> dict:
    """The fast job's p99 (publish to arrival) alone, then beside a slow receiver's backlog (section 3)."""
    from sysevents.transport.pubsub import Publisher

    fast, slow = Receiver().start(), Receiver().start()
    slow.script = lambda request: Reply(200, delay=5.0)
    try:
        create_job(stack, key, {"workflow": "webhook_system_events", "name": "bench fast",
                                "config": {"system_event_type": "failed", "system_event_sources": {"journey": []},
                                           "webhook_url": fast.url("/fast")}})  # fmt: skip
        create_job(stack, key, {"workflow": "webhook_system_events", "name": "bench slow",
                                "config": {"system_event_type": "failed", "system_event_sources": {"campaign": []},
                                           "webhook_url": slow.url("/slow")}})  # fmt: skip
        publisher = Publisher(stack.project)

        def fast_burst(tag: str) -> float:
            events = [new_event(AID, "journey", f"{tag}{i}", "failed") for i in range(100)]
            sent = time.time()
            publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in events])
            deadline = time.monotonic() + 120
            while len([r for r in fast.at("/fast") if tag.encode() in r.body]) < 100:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            lat = sorted(r.at - sent for r in fast.at("/fast") if tag.encode() in r.body)
            return lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("inf")

        solo = fast_burst("solo-")
        publisher.publish_all(
            [(stack.topology.ingest_topic, new_event(AID, "campaign", "warm", "failed").to_json(), {})]
        )
        while not slow.at("/slow"):
            time.sleep(0.1)
        time.sleep(5.5)  # its first answer: the job is known slow
        backlog = [new_event(AID, "campaign", f"c{i}", "failed") for i in range(NO_LIMIT_SLOW)]
        publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in backlog])
        time.sleep(1.0)
        beside = fast_burst("beside-")
        return {"solo_p99_s": round(solo, 3), "beside_p99_s": round(beside, 3)}
    finally:
        fast.stop()
        slow.stop()


def outage(stack, key: str) -> dict:
    from sysevents.transport.pubsub import Publisher

    port = free_port()
    create_job(stack, key, {
        "workflow": "webhook_system_events", "name": "bench outage",
        "config": {"system_event_type": "failed", "system_event_sources": {"report": []},
                   "webhook_url": f"http://127.0.0.1:{port}/down"},
    })  # fmt: skip
    events = [new_event(AID, "report", f"r{i}", "failed") for i in range(M)]
    Publisher(stack.project).publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in events])
    time.sleep(OUTAGE_HOURS * 3600 * TIME_SCALE)
    receiver = Receiver(port=port).start()
    back = time.monotonic()
    try:
        deadline = back + 600
        while len({r.json()["id"] for r in receiver.at("/down")}) < M and time.monotonic() < deadline:
            time.sleep(0.05)
        recovered = time.monotonic() - back
        return {
            "events": M,
            "delivered": len({r.json()["id"] for r in receiver.at("/down")}),
            "recovery_s": recovered,
        }
    finally:
        receiver.stop()


def main() -> None:
    with (
        LocalStack(bigquery=False, functions=("ingest", "webhook", "admin"), time_scale=TIME_SCALE) as stack,
        stack.environment(),
    ):
        key = account(stack)
        b = burst(stack, key)
        nl = no_limit(stack, key)
        sf = slow_beside_fast(stack, key)
        o = outage(stack, key)
    minimum = N / RATE
    figures = {
        "drain_ratio": round(minimum / b["drain_s"], 3),
        "requests_per_event": round(b["requests"] / max(b["delivered"], 1), 3),
        "recovery_s": round(o["recovery_s"], 2),
        "drain_ratio_min": min(v["drain_ratio"] for v in nl.values()),
        "requests_per_event_max": max(round(v["requests"] / max(v["delivered"], 1), 3) for v in nl.values()),
        "dead_lettered": sum(v["dead_lettered"] for v in nl.values()),
        "failed_attempts": sum(v["failed_attempts"] for v in nl.values()),
        "slow_beside_fast_p99_ratio": round(sf["beside_p99_s"] / sf["solo_p99_s"], 2),
    }
    rows = [
        ("burst into a 1 request/s receiver", f"{b['delivered']}/{b['events']} delivered"),
        (
            "drain time vs the minimum N/R",
            f"{b['drain_s']:.1f} s vs {minimum:.0f} s (ratio {figures['drain_ratio']})",
        ),
        ("requests per delivered event", f"{figures['requests_per_event']} ({b['requests']} requests)"),
        *(
            (
                f"no rate_limit, receiver {name}: delivered / dead-lettered",
                f"{v['delivered']}/{N} / {v['dead_lettered']} ({v['failed_attempts']} failed attempts)",
            )
            for name, v in nl.items()
        ),
        *(
            (
                f"no rate_limit, receiver {name}: drain after 20 / requests per event",
                f"{v['drain_ratio']} of its limit / {v['requests'] / max(v['delivered'], 1):.2f}",
            )
            for name, v in nl.items()
        ),
        *(
            (
                f"no rate_limit, receiver {name}: learned rate (s, req/s)",
                " ".join(f"{t}:{r}" for t, r in v["learned"][::3]),
            )
            for name, v in nl.items()
        ),
        (
            "fast job's p99: alone / beside a 5 s receiver",
            f"{sf['solo_p99_s']:.2f} s / {sf['beside_p99_s']:.2f} s (ratio {figures['slow_beside_fast_p99_ratio']})",
        ),
        (
            f"receiver down {OUTAGE_HOURS:g} h (scaled 1/{1 / TIME_SCALE:.0f})",
            f"{o['delivered']}/{o['events']} delivered",
        ),
        (
            "recovery after it came back",
            f"{o['recovery_s']:.2f} s ({o['recovery_s'] / TIME_SCALE / 60:.0f} min in production time)",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
