"""Deliveries that outlast the receiver: a burst into a rate-limited receiver, and recovery after an outage.
Prints a table and a last line of JSON; nothing is asserted.

1. Burst: N `work failed` events at once for the seed's Slack job, into a Slack-like receiver that takes
   1 request per second and answers 429 with Retry-After: 1 above that. The job's rate limit is 1/s. The
   physical minimum is N/R seconds; drain_ratio = (N/R) / measured drain time (1.0 is the receiver's own
   limit). Requests per delivered event count the 429s too.
2. Outage: the receiver is down (connection refused) while M events are published, for OUTAGE_HOURS of
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
from sysevents.local.receiver import Receiver, Reply
from sysevents.local.stack import LocalStack

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
RATE = 1.0
M = 50
TIME_SCALE = 1 / 600
OUTAGE_HOURS = 1.0
AID = "bench-delays"


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


def create_job(stack, key: str, doc: dict) -> None:
    api = stack.function_urls["admin"].rstrip("/")
    r = requests.post(f"{api}/accounts/{AID}/jobs", headers={"X-API-Key": key}, json=doc, timeout=60)
    r.raise_for_status()
    stack.wait_for_job_caches(datetime.fromisoformat(r.json()["updated_at"]))


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
        o = outage(stack, key)
    minimum = N / RATE
    figures = {
        "drain_ratio": round(minimum / b["drain_s"], 3),
        "requests_per_event": round(b["requests"] / max(b["delivered"], 1), 3),
        "recovery_s": round(o["recovery_s"], 2),
    }
    rows = [
        ("burst into a 1 request/s receiver", f"{b['delivered']}/{b['events']} delivered"),
        (
            "drain time vs the minimum N/R",
            f"{b['drain_s']:.1f} s vs {minimum:.0f} s (ratio {figures['drain_ratio']})",
        ),
        ("requests per delivered event", f"{figures['requests_per_event']} ({b['requests']} requests)"),
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
