"""Webhook delivery throughput and latency. Prints figures; nothing is asserted.

1. In-process: the webhook function's `process` (parse, cache, accounting writes, sandboxed render,
   signing, guarded POST) against a local receiver vs a plain keep-alive requests.Session loop posting
   the same bodies; and the sandboxed render vs the in-process render.
2. End to end through the emulators (ingest -> deliveries topic -> webhook function -> receiver) vs
   the emulator's push ceiling to a no-op endpoint, same run; p50/p99 publish->receipt latency at half
   the measured end-to-end rate.

    .venv/bin/python bench/bench_webhook.py
"""

from __future__ import annotations

import base64
import json
import statistics
import time
import uuid

import requests

from sysevents.events import new_event
from sysevents.jobs import job_from_dict
from sysevents.local.receiver import Receiver
from sysevents.local.stack import LocalStack
from sysevents.templates import SAMPLE_EVENT, render

N_INPROC = 300
N_E2E = 400
TEMPLATE = '{"text": "%s %s: %s" % [event.data.subject_type, event.data.subject_id, event.data.verb]}'


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s"


def main() -> None:
    with LocalStack(bigquery=False, functions=("ingest", "webhook")) as stack, stack.environment():
        from google.cloud import firestore, pubsub_v1

        from sysevents.deliveries import Delivery
        from sysevents.delivery.envelope import Envelope
        from sysevents.pubsub import Publisher
        from sysevents.runtime import Runtime
        from sysevents.sinks.webhook.sink import WebhookSink
        from sysevents.store import JobStore
        from sysevents.templates.sandbox import Sandbox

        rt = Runtime()
        store = JobStore(firestore.Client(project=stack.project))
        receiver = Receiver().start()
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

        # 1. in-process
        envelope = Envelope(rt, WebhookSink(rt))
        events = [new_event(aid, "work", f"w{i}", "failed") for i in range(N_INPROC)]
        pushes = [
            json.dumps(
                {
                    "message": {
                        "data": base64.b64encode(Delivery.of(e, job).to_json()).decode(),
                        "messageId": str(i),
                    }
                }
            ).encode()
            for i, e in enumerate(events)
        ]
        envelope.push(pushes[0])
        t = time.perf_counter()
        for p in pushes:
            envelope.push(p)
        fn_s = time.perf_counter() - t
        bodies = [render(TEMPLATE, e.to_cloudevent()) for e in events]
        session = requests.Session()
        t = time.perf_counter()
        for b in bodies:
            session.post(receiver.url("/plain"), data=b, headers={"Content-Type": "application/json"}).close()
        plain_s = time.perf_counter() - t
        print(
            f"webhook envelope: {rate(N_INPROC, fn_s)}; plain Session loop: {rate(N_INPROC, plain_s)}; "
            f"ratio {plain_s / fn_s:.2f}"
        )
        sb = Sandbox(workers=1)
        sb.render(TEMPLATE, SAMPLE_EVENT)
        t = time.perf_counter()
        for _ in range(2000):
            sb.render(TEMPLATE, SAMPLE_EVENT)
        sand = (time.perf_counter() - t) / 2000
        t = time.perf_counter()
        for _ in range(2000):
            render(TEMPLATE, SAMPLE_EVENT)
        inproc = (time.perf_counter() - t) / 2000
        sb.close()
        print(
            f"render: sandboxed {sand * 1e6:.0f} us vs in-process {inproc * 1e6:.0f} us "
            f"(+{(sand - inproc) * 1e6:.0f} us per render)"
        )

        # 2. end to end vs the emulator's no-op push ceiling
        publisher = Publisher(stack.project)
        sub = pubsub_v1.SubscriberClient()
        noop_topic = f"bench-noop-{uuid.uuid4().hex[:6]}"
        publisher.client.create_topic(name=publisher.path(noop_topic))
        sub.create_subscription(
            request={
                "name": sub.subscription_path(stack.project, noop_topic),
                "topic": publisher.path(noop_topic),
                "push_config": {"push_endpoint": receiver.url("/noop")},
            }
        )
        payload = new_event(aid, "report", "r", "failed").to_json()
        t = time.perf_counter()
        publisher.publish_all([(noop_topic, payload, {})] * N_E2E)
        receiver.wait_for("/noop", N_E2E, timeout=300)
        noop_s = time.perf_counter() - t
        evs = [new_event(aid, "work", f"e{i}", "failed") for i in range(N_E2E)]
        t = time.perf_counter()
        publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in evs])
        receiver.wait_for("/hook", N_INPROC + 1 + N_E2E, timeout=300)
        e2e_s = time.perf_counter() - t
        print(
            f"end to end: {rate(N_E2E, e2e_s)}; emulator no-op push ceiling: {rate(N_E2E, noop_s)}; "
            f"ratio {noop_s / e2e_s:.2f}"
        )

        # latency at half the end-to-end rate
        sent: dict[str, float] = {}
        got: dict[str, float] = {}
        receiver._on_receive = lambda r: got.setdefault(json.loads(r.body)["text"], time.time())
        interval = 2 * e2e_s / N_E2E
        n = 200
        for i in range(n):
            e = new_event(aid, "work", f"lat{i}", "failed")
            sent[f"work lat{i}: failed"] = time.time()
            publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {})])
            time.sleep(max(0.0, interval - 0.002))
        deadline = time.monotonic() + 60
        while len(got) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        lat = sorted((got[k] - sent[k]) * 1000 for k in sent if k in got)
        print(
            f"publish->receipt at {1 / interval:,.0f} events/s: p50 {statistics.median(lat):.0f} ms, "
            f"p99 {lat[int(len(lat) * 0.99) - 1]:.0f} ms ({len(lat)}/{n} received)"
        )
        receiver.stop()


if __name__ == "__main__":
    main()
