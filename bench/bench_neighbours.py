"""Noisy neighbours: account B's steady stream, alone and beside each of account A's floods.
Prints a table and a last line of JSON; nothing is asserted.

B streams B_EVENTS events at B_RATE per second to its own fast receiver (a webhook job with no template).
Its latency is publish to arrival at the receiver; p50 and p99 alone, then beside each flood of A's, as
ratios to B alone in the same run (goal: p99 ratio <= 1.5, nothing lost):

1. slow templates: A_JOBS webhook jobs whose Jsonnet template takes about 0.3 s, A_EVENTS events;
2. job edits: A's job renamed as fast as the admin API answers (each edit is a job write and a
   lifecycle event to A's other jobs);
3. 503 receiver: A_JOBS jobs whose receiver answers 503 with Retry-After: 1 to everything;
4. slow receiver: A_JOBS jobs whose receiver takes 1 s per request (what the per-account share of an
   instance's threads is for);
5. audit searches: A searches its audit log from SEARCHERS threads without pause (429s counted);
6. all at once.

Lost: B's events that never arrived, plus A's deliveries that its slow-template and slow-receiver jobs
never received (they all succeed eventually), plus A's deliveries dead-lettered in the floods that end
(the 503 receiver's are not counted: its jobs are deleted when the phase ends).

    .venv/bin/python bench/bench_neighbours.py [B_EVENTS]
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from datetime import datetime

import requests
from report import last_line, table

from sysevents.events.model import new_event
from sysevents.local.receiver import Receiver, Reply
from sysevents.local.stack import LocalStack
from sysevents.transport.pubsub import Publisher

B_EVENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 100
B_RATE = 10.0
A_JOBS = 5
A_EVENTS = 40
SEARCHERS = 3
SLOW_TEMPLATE = '{"s": event.data.subject_id, "n": std.foldl(function(a, b) a + b, std.range(1, 250000), 0)}'
A, B = "bench-noisy", "bench-quiet"
TIME_SCALE = 1 / 600


class Bench:
    def __init__(self, stack: LocalStack):
        self.stack = stack
        self.api = stack.function_urls["admin"].rstrip("/")
        self.publisher = Publisher(stack.project)
        self.keys = {aid: self.account(aid) for aid in (A, B)}
        self.dead_lettered = 0
        self.a_missing = 0

    def account(self, aid: str) -> str:
        op = {"X-API-Key": self.stack.operator_key}
        requests.post(f"{self.api}/accounts", json={"aid": aid}, headers=op, timeout=30).raise_for_status()
        r = requests.post(f"{self.api}/accounts/{aid}/keys", json={"name": "bench"}, headers=op, timeout=30)
        r.raise_for_status()
        return r.json()["key"]

    def call(self, method: str, aid: str, path: str, **kw) -> requests.Response:
        headers = {"X-API-Key": self.keys[aid], **kw.pop("headers", {})}
        return requests.request(method, f"{self.api}/accounts/{aid}{path}", headers=headers, timeout=60, **kw)

    def job(self, aid: str, name: str, source: str, url: str, template: str | None = None) -> dict:
        config = {"system_event_type": "failed", "system_event_sources": {source: []}, "webhook_url": url}
        if template:
            config["json_template"] = template
        r = self.call("POST", aid, "/jobs", json={"workflow": "webhook_system_events", "name": name,
                                                  "config": config})  # fmt: skip
        r.raise_for_status()
        self.stack.wait_for_job_caches(datetime.fromisoformat(r.json()["updated_at"]))
        return r.json()

    def publish(self, aid: str, source: str, ids: list[str]) -> float:
        events = [new_event(aid, source, i, "failed") for i in ids]
        sent = time.time()
        self.publisher.publish_all([(self.stack.topology.ingest_topic, e.to_json(), {}) for e in events])
        return sent

    def b_stream(self, receiver: Receiver, tag: str) -> tuple[list[float], int]:
        """B's events at B_RATE/s; their latencies (publish to arrival) and how many never arrived."""
        sent = {}
        for i in range(B_EVENTS):
            sid = f"{tag}-{i}"
            sent[sid] = self.publish(B, "journey", [sid])
            time.sleep(1 / B_RATE)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and len(self.arrived(receiver, tag)) < B_EVENTS:
            time.sleep(0.1)
        arrived = self.arrived(receiver, tag)
        return sorted(arrived[s] - sent[s] for s in arrived), B_EVENTS - len(arrived)

    @staticmethod
    def arrived(receiver: Receiver, tag: str) -> dict[str, float]:
        first: dict[str, float] = {}
        for r in receiver.at("/b"):
            sid = r.json()["data"]["subject_id"]
            if sid.startswith(tag + "-"):
                first.setdefault(sid, r.at)
        return first

    def stats(self, aid: str, job_id: str) -> dict:
        return self.call("GET", aid, f"/jobs/{job_id}/stats").json()

    def delete(self, aid: str, job: dict) -> None:
        self.call("DELETE", aid, f"/jobs/{job['id']}", headers={"If-Match": str(job["version"])})


@contextmanager
def jobs_flood(bench: Bench, name: str, reply, template: str | None = None, drains: bool = True):
    """A_JOBS jobs of A's to one receiver, A_EVENTS events for them published at once."""
    receiver = Receiver().start()
    receiver.script = reply
    jobs = [bench.job(A, f"{name} {n}", name, receiver.url(f"/a{n}"), template) for n in range(A_JOBS)]
    bench.publish(A, name, [f"{name}-{i}" for i in range(A_EVENTS)])
    try:
        yield
    finally:
        if drains:  # every one of A's deliveries arrives in the end: any missing is lost
            want = A_JOBS * A_EVENTS
            deadline = time.monotonic() + 600
            while len({(r.path, r.body) for r in receiver.received}) < want and time.monotonic() < deadline:
                time.sleep(0.2)
            bench.a_missing += want - len({(r.path, r.body) for r in receiver.received})
            bench.dead_lettered += sum(bench.stats(A, j["id"]).get("dead_lettered", 0) for j in jobs)
        for j in jobs:
            bench.delete(A, j)
        receiver.stop()


@contextmanager
def looping(work, threads: int = 1):
    """`work()` run in a loop by `threads` threads until the block ends."""
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            work()

    pool = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in pool:
            t.join(60)


def edits(bench: Bench, counts: dict):
    job = bench.job(A, "edited", "report", "http://127.0.0.1:9/edited")
    state = {"version": job["version"]}

    def edit():
        r = bench.call("PATCH", A, f"/jobs/{job['id']}", json={"name": f"edited {time.time()}"},
                       headers={"If-Match": str(state["version"])})  # fmt: skip
        if r.ok:
            state["version"] = r.json()["version"]
            counts["edits"] = counts.get("edits", 0) + 1

    return looping(edit)


def searches(bench: Bench, counts: dict):
    def search():
        r = bench.call("GET", A, "/audit", params={"page_size": 10})
        counts[r.status_code] = counts.get(r.status_code, 0) + 1
        if r.status_code == 429:
            time.sleep(0.05)  # a client that does not honour Retry-After: keeps asking

    return looping(search, SEARCHERS)


def floods(bench: Bench, counts: dict):
    slow_template = lambda: jobs_flood(bench, "campaign", None, SLOW_TEMPLATE)  # noqa: E731
    busy = lambda: jobs_flood(bench, "segment", lambda r: Reply(503, {"Retry-After": "1"}), drains=False)  # noqa: E731
    slow_receiver = lambda: jobs_flood(bench, "user", lambda r: Reply(200, delay=1.0))  # noqa: E731
    return {
        "slow templates": [slow_template],
        "job edits": [lambda: edits(bench, counts)],
        "503 receiver": [busy],
        "slow receiver": [slow_receiver],
        "audit searches": [lambda: searches(bench, counts)],
        "all at once": [slow_template, lambda: edits(bench, counts), busy, slow_receiver,
                        lambda: searches(bench, counts)],
    }  # fmt: skip


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("inf")


def main() -> None:
    with (
        LocalStack(functions=("ingest", "webhook", "admin", "audit"), time_scale=TIME_SCALE) as stack,
        stack.environment(),
    ):
        bench = Bench(stack)
        b_receiver = Receiver().start()
        bench.job(B, "steady", "journey", b_receiver.url("/b"))
        bench.publish(A, "data", ["w"])  # an audit table to search
        bench.b_stream(b_receiver, "warm")
        results, lost_b, counts = {}, 0, {}
        alone, missing = bench.b_stream(b_receiver, "alone")
        lost_b += missing
        for name, parts in floods(bench, counts).items():
            with ExitStack() as floods_on:
                for part in parts:
                    floods_on.enter_context(part())
                time.sleep(1.0)  # the flood under way
                latencies, missing = bench.b_stream(b_receiver, name.replace(" ", "_"))
            lost_b += missing
            results[name] = latencies
        b_receiver.stop()
    p50, p99 = pct(alone, 0.5), pct(alone, 0.99)
    rows = [("B alone", f"{p50:.3f}", f"{p99:.3f}", "1.00", "1.00")]
    ratios = {}
    for name, lat in results.items():
        ratios[name] = pct(lat, 0.99) / p99
        rows.append((f"B beside A's {name}", f"{pct(lat, 0.5):.3f}", f"{pct(lat, 0.99):.3f}",
                     f"{pct(lat, 0.5) / p50:.2f}", f"{ratios[name]:.2f}"))  # fmt: skip
    table(("B's deliveries (publish to arrival)", "p50 s", "p99 s", "p50 ratio", "p99 ratio"), rows)
    print(f"A's searches: {counts.get(200, 0)} answered, {counts.get(429, 0)} refused with 429; "
          f"A's job edits: {counts.get('edits', 0)}")  # fmt: skip
    last_line({
        "p99_ratio_max": round(max(ratios.values()), 2),
        "lost": lost_b + bench.a_missing + bench.dead_lettered,
        "lost_b": lost_b,
        "lost_a": bench.a_missing,
        "dead_lettered_a": bench.dead_lettered,
        "b_p99_alone_s": round(p99, 3),
        **{f"p99_ratio_{k.replace(' ', '_')}": round(v, 2) for k, v in ratios.items()},
        "searches_429": counts.get(429, 0),
        "searches_200": counts.get(200, 0),
    })  # fmt: skip


if __name__ == "__main__":
    main()
