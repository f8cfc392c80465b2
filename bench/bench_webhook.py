"""Webhook delivery throughput, latency and Firestore calls, against the real emulators. Figures only;
nothing is asserted.

1. In process: the webhook function's delivery path (`Envelope.push`: parse, job cache, sandboxed render,
   signing, guarded POST, accounting in Firestore) against a local receiver, from THREADS request threads
   as a functions-framework instance runs it (and from one thread), vs a plain keep-alive
   requests.Session loop posting the same bodies to the same receiver from as many threads.
2. Through the emulators, same run: end to end (publish to system-events -> ingest -> deliveries-webhook
   -> webhook function -> receiver) vs the Pub/Sub emulator's ceilings for the same two hops: a one-hop
   no-op (a push endpoint that only answers) and a two-hop no-op chain (a push endpoint that only
   republishes to a second topic, whose push endpoint only answers).
3. Publish -> receipt latency at LATENCY_RATE events/s.
4. Firestore calls per delivered event, counted for real: the functions run with SYSEVENTS_METER, which
   counts every call their Firestore client makes at the library boundary (sysevents.obs.metering).

    .venv/bin/python bench/bench_webhook.py
"""

from __future__ import annotations

import base64
import json
import logging
import os
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import last_line, table  # noqa: E402

from sysevents.events.model import new_event  # noqa: E402
from sysevents.jobs.model import job_from_dict  # noqa: E402
from sysevents.local.receiver import QuietHTTPServer, Receiver  # noqa: E402
from sysevents.local.stack import LocalStack  # noqa: E402
from sysevents.templates import render  # noqa: E402

THREADS = 8  # a local functions-framework instance: gunicorn, 1 worker x 8 threads
N_INPROC = 400
N_HOPS = 600
LATENCY_RATE = 20.0  # events/s
N_LATENCY = 200
TEMPLATE = '{"text": "%s %s: %s" % [event.data.subject_type, event.data.subject_id, event.data.verb]}'
GOALS = {"e2e / two-hop ceiling": 0.7, "process / session": 0.3, "Firestore calls per delivery": 1.0}


def pooled(fn, items, threads: int) -> float:
    """Seconds to run fn over items from `threads` threads."""
    started = time.perf_counter()
    if threads == 1:
        for item in items:
            fn(item)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(fn, items))
    return time.perf_counter() - started


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live descendants, from /proc."""
    total, todo = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total


def cpu(stack) -> dict[str, float]:
    """CPU seconds so far of each process of the stack (a function with its workers), and of this one."""
    out = {p.name: _tree_cpu(p.pid) for p in stack.processes if p.pid}
    t = os.times()
    out["bench (publisher, receiver, relay)"] = t.user + t.system
    return out


def meters(stack, names) -> dict[str, dict[str, float]]:
    out = {}
    for name in names:
        with urllib.request.urlopen(stack.function_urls[name], timeout=10) as resp:  # noqa: S310 - local
            out[name] = json.loads(resp.read()).get("meter") or {}
    return out


def spent(before: dict, after: dict, key: str) -> float:
    return sum(after[f].get(key, 0) - before[f].get(key, 0) for f in after)


class Relay:
    """A push endpoint that only republishes each message to `topic` (and answers once Pub/Sub has it),
    with no batching delay: the fastest republish the emulator allows."""

    def __init__(self, publisher, topic: str):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                msg = body["message"]
                publisher.publish_all(
                    [(topic, base64.b64decode(msg.get("data", "")), msg.get("attributes") or {})]
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/relay"
        threading.Thread(target=outer.server.serve_forever, name="relay", daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def push_topic(stack, publisher, subscriber, endpoint: str) -> str:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    publisher.client.create_topic(name=publisher.path(topic))
    subscriber.create_subscription(
        request={
            "name": subscriber.subscription_path(stack.project, topic),
            "topic": publisher.path(topic),
            "push_config": {"push_endpoint": endpoint},
        }
    )
    return topic


def through(publisher, receiver: Receiver, messages: list, path: str) -> float:
    """Seconds from publishing `messages` until `path` has received that many more."""
    before = len(receiver.at(path))
    started = time.perf_counter()
    publisher.publish_all(messages)
    got = receiver.wait_for(path, before + len(messages), timeout=600)
    if len(got) < before + len(messages):
        raise RuntimeError(f"{path}: {len(got) - before} of {len(messages)} arrived")
    return time.perf_counter() - started


def main() -> None:
    arrivals: dict[str, float] = {}

    def on_receive(r) -> None:
        if r.path == "/hook":
            arrivals.setdefault(r.json()["text"], time.time())

    receiver = Receiver(on_receive=on_receive).start()
    env = {"SYSEVENTS_METER": "true"}
    with (
        LocalStack(bigquery=False, functions=("ingest", "webhook"), extra_env=env) as stack,
        stack.environment(),
    ):
        from google.cloud import firestore, pubsub_v1

        from sysevents.delivery.envelope import Envelope
        from sysevents.delivery.message import Delivery
        from sysevents.jobs.store import JobStore
        from sysevents.runtime import Runtime
        from sysevents.sinks.webhook.sink import WebhookSink
        from sysevents.transport.pubsub import Publisher

        rt = Runtime()
        logging.getLogger("sysevents").setLevel(logging.WARNING)  # no line per in-process delivery
        store = JobStore(firestore.Client(project=stack.project))
        aid = f"bench-{uuid.uuid4().hex[:8]}"
        secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
        job = store.put(
            job_from_dict(
                {
                    "workflow": "webhook_system_events",
                    "config": {
                        "webhook_url": receiver.url("/hook"),
                        "system_event_type": "failed",
                        "json_template": TEMPLATE,
                        "signing_secrets": [secret],
                    },
                },
                job_id=f"{aid}-job",
                aid=aid,
            )
        )
        stack.wait_for_job_caches(since=store.last_write_time)
        deadline = time.monotonic() + 30
        while rt.cache.get(aid, job.id) is None and time.monotonic() < deadline:
            time.sleep(0.05)

        # 1. in process
        envelope = Envelope(rt, WebhookSink(rt))

        def pushes(n: int, tag: str) -> list[bytes]:
            out = []
            for _ in range(n):
                d = Delivery.of(new_event(aid, "work", f"{tag}-{uuid.uuid4().hex[:8]}", "failed"), job)
                message = {"data": base64.b64encode(d.to_json()).decode(), "messageId": uuid.uuid4().hex}
                out.append(json.dumps({"message": message}).encode())
            return out

        pooled(envelope.push, pushes(2 * THREADS, "warm"), THREADS)
        inproc: dict[int, float] = {}
        plain: dict[int, float] = {}
        fs_calls: dict[int, float] = {}
        bodies = [
            render(TEMPLATE, new_event(aid, "work", f"p{i}", "failed").to_cloudevent())
            for i in range(N_INPROC)
        ]
        local = threading.local()

        def post_plain(body: bytes) -> None:
            if not hasattr(local, "session"):
                local.session = requests.Session()
            local.session.post(
                receiver.url("/plain"), data=body, headers={"Content-Type": "application/json"}
            ).close()

        for threads in (1, THREADS):
            batch = pushes(N_INPROC, f"t{threads}")
            before = rt.meter.snapshot()
            inproc[threads] = N_INPROC / pooled(envelope.push, batch, threads)
            fs_calls[threads] = (
                rt.meter.snapshot().get("firestore.calls", 0) - before.get("firestore.calls", 0)
            ) / N_INPROC
            plain[threads] = N_INPROC / pooled(post_plain, bodies, threads)

        # 2. through the emulators
        publisher = Publisher(stack.project)
        subscriber = pubsub_v1.SubscriberClient()
        one_hop = push_topic(stack, publisher, subscriber, receiver.url("/noop"))
        second = push_topic(stack, publisher, subscriber, receiver.url("/noop2"))
        fastest = pubsub_v1.PublisherClient(batch_settings=pubsub_v1.types.BatchSettings(max_latency=0))
        relay = Relay(Publisher(stack.project, fastest), second)
        first = push_topic(stack, publisher, subscriber, relay.url)
        payload = new_event(aid, "report", "r", "failed").to_json()
        # warm every path up
        through(publisher, receiver, [(one_hop, payload, {})] * 20, "/noop")
        through(publisher, receiver, [(first, payload, {})] * 20, "/noop2")
        warm = [new_event(aid, "work", f"warm{i}", "failed") for i in range(20)]
        through(publisher, receiver, [(stack.topology.ingest_topic, e.to_json(), {}) for e in warm], "/hook")

        one_hop_s = through(publisher, receiver, [(one_hop, payload, {})] * N_HOPS, "/noop")
        cpu_two = cpu(stack)
        two_hop_s = through(publisher, receiver, [(first, payload, {})] * N_HOPS, "/noop2")
        cpu_two = {k: v - cpu_two.get(k, 0.0) for k, v in cpu(stack).items()}
        functions = ("ingest", "webhook")
        before = meters(stack, functions)
        events = [new_event(aid, "work", f"e{i}", "failed") for i in range(N_HOPS)]
        cpu_e2e = cpu(stack)
        e2e_s = through(
            publisher, receiver, [(stack.topology.ingest_topic, e.to_json(), {}) for e in events], "/hook"
        )
        cpu_e2e = {k: v - cpu_e2e.get(k, 0.0) for k, v in cpu(stack).items()}
        time.sleep(1.0)  # let the last deliveries' accounting commit before reading the meters
        after = meters(stack, functions)
        relay.stop()

        # 3. latency at a steady rate
        sent: dict[str, float] = {}
        interval = 1 / LATENCY_RATE
        start = time.monotonic()
        for i in range(N_LATENCY):
            e = new_event(aid, "work", f"lat{i}", "failed")
            sent[f"work lat{i}: failed"] = time.time()
            publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {})])
            time.sleep(max(0.0, start + (i + 1) * interval - time.monotonic()))
        deadline = time.monotonic() + 60
        while sum(k in arrivals for k in sent) < N_LATENCY and time.monotonic() < deadline:
            time.sleep(0.1)
        lat = sorted((arrivals[k] - sent[k]) * 1000 for k in sent if k in arrivals)
    receiver.stop()

    per = {k: spent(before, after, f"firestore.{k}") / N_HOPS for k in ("calls", "reads", "writes")}
    figures = {
        "process_per_s": round(inproc[THREADS], 1),
        "session_per_s": round(plain[THREADS], 1),
        "e2e_per_s": round(N_HOPS / e2e_s, 1),
        "ceiling_per_s": round(N_HOPS / two_hop_s, 1),
        "one_hop_per_s": round(N_HOPS / one_hop_s, 1),
        "p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)], 1),
        "firestore_ops_per_delivery": round(per["calls"], 3),
    }
    rows = [
        (f"in process, {THREADS} threads: webhook envelope", f"{inproc[THREADS]:,.0f}/s"),
        (f"in process, {THREADS} threads: plain Session loop", f"{plain[THREADS]:,.0f}/s"),
        ("in process, 1 thread: webhook envelope", f"{inproc[1]:,.0f}/s"),
        ("in process, 1 thread: plain Session loop", f"{plain[1]:,.0f}/s"),
        (
            f"Firestore calls per delivery in process ({THREADS} / 1 threads)",
            f"{fs_calls[THREADS]:.3f} / {fs_calls[1]:.3f}",
        ),
        ("end to end (ingest -> webhook -> receiver)", f"{N_HOPS / e2e_s:,.0f}/s"),
        ("two-hop no-op chain (the ceiling)", f"{N_HOPS / two_hop_s:,.0f}/s"),
        ("one-hop no-op", f"{N_HOPS / one_hop_s:,.0f}/s"),
        (
            f"publish -> receipt at {LATENCY_RATE:g} events/s",
            f"p50 {statistics.median(lat):.0f} ms, p99 {figures['p99_ms']:.0f} ms ({len(lat)}/{N_LATENCY})",
        ),
        (
            "Firestore per delivered event, end to end: calls (reads, writes)",
            f"{per['calls']:.3f} ({per['reads']:.3f}, {per['writes']:.3f})",
        ),
    ]
    table(("figure", "value"), rows)
    print(
        f"\nCPU ms per event by process ({os.cpu_count()} cores; the wall time per event is "
        f"{1000 * e2e_s / N_HOPS:.1f} ms end to end, {1000 * two_hop_s / N_HOPS:.1f} ms two-hop no-op):"
    )
    table(
        ("process", "end to end", "two-hop no-op"),
        [(k, f"{1000 * v / N_HOPS:.2f}", f"{1000 * cpu_two.get(k, 0.0) / N_HOPS:.2f}")
         for k, v in sorted(cpu_e2e.items(), key=lambda kv: -kv[1]) if v > 0.001]
        + [("total", f"{1000 * sum(cpu_e2e.values()) / N_HOPS:.2f}",
            f"{1000 * sum(cpu_two.values()) / N_HOPS:.2f}")],
    )  # fmt: skip
    figures["cpu_ms_per_event"] = round(1000 * sum(cpu_e2e.values()) / N_HOPS, 2)
    ratios = {
        "e2e / two-hop ceiling": figures["e2e_per_s"] / figures["ceiling_per_s"],
        "process / session": figures["process_per_s"] / figures["session_per_s"],
        "Firestore calls per delivery": per["calls"],
    }
    print()
    table(
        ("goal (printed, not asserted)", "measured", "goal", "met"),
        [
            (name, f"{value:.2f}", f"{'<=' if 'Firestore' in name else '>='} {GOALS[name]:g}",
             "yes" if (value <= GOALS[name] if "Firestore" in name else value >= GOALS[name]) else "no")
            for name, value in ratios.items()
        ],
    )  # fmt: skip
    last_line(figures)


if __name__ == "__main__":
    main()
