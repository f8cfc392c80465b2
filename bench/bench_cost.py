"""What 1 million events cost: the real calls of a run, counted, at published list prices. Figures only;
nothing is asserted.

Each scenario sends N events (--events, default 300) through the local stack (emulators; the ingest,
webhook, email, bigquery and audit functions under functions-framework, SYSEVENTS_METER on) and counts,
by difference of every function's meter (GET /) before and after, what they did:

- webhook delivered: a webhook job, the receiver answers 200.
- webhook 500 then delivered: the receiver answers 500 to each event's first attempt and 200 to the retry
  (the retry waits on the delay queue; the stack runs at its small time_scale, so it comes quickly).
- email per event: an email alert job without grouping (one email per event).
- email digest: an email alert job grouped by verb (digests; group timers on the delay queue).
- bigquery export: a continuous BigQuery export job (streaming inserts into the job's table).
- no matching job: events of an account without jobs (ingest only).

A scenario's counts are those of ingest + its sink function. The audit function archives every valid
event whatever the jobs are; its counts over all scenarios are one row of their own ("audit archive"),
to add to any scenario for the deployed topology. Counted:

- Firestore reads, writes, deletes: billed units, counted on the functions' Firestore client
  (sysevents.obs.metering).
- Pub/Sub messages and bytes: the producer's publishes (this bench's, measured here), the functions'
  publishes, the delay queue's releases (each released task publishes one message) and the pushes to the
  functions; billed with the 1000-byte minimum per request, each message taken as its own request.
- Function invocations: pushes served (Cloud Scheduler's calls are not per event: they are stopped
  during the scenarios and measured once at the end, per call).
- Instance-seconds: the meter's busy_s (time an instance had at least one request in flight), billed as
  vCPU-seconds and GiB-seconds at the deployment's default size (1 vCPU, 512 MiB). Measured on this
  machine's CPU, with whatever else runs on it: a local figure, not Cloud Run's.
- Delay-queue tasks: tasks created; each is billed as 2 Cloud Tasks operations (the create call and its
  dispatch attempt).
- BigQuery streaming rows and bytes: counted by a pass-through proxy in front of the BigQuery emulator
  (every insertAll call of the functions); row size = its JSON, billed with the 1 KB minimum per row.
- Emails: messages the local SMTP server accepted (an SMTP provider's cost, not priced here).

Before each scenario, a few warm-up events go the same way (table creation, cold caches: not per event).

    nice -n 19 .venv/bin/python bench/bench_cost.py --events 300
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import re
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import last_line, table  # noqa: E402

from sysevents.events.model import new_event  # noqa: E402
from sysevents.jobs.model import job_from_dict  # noqa: E402
from sysevents.local.receiver import QuietHTTPServer, Receiver  # noqa: E402
from sysevents.local.scheduler import ScheduleTicker  # noqa: E402
from sysevents.local.stack import LocalStack  # noqa: E402
from sysevents.obs.metering import message_bytes  # noqa: E402

# -- list prices (USD, beyond free tiers) ----------------------------------------------------------------
READ_ON = "read 2026-12-02 from a stored copy"
PRICES = {
    "firestore_read_per_100k": 0.06,
    "firestore_write_per_100k": 0.18,
    "firestore_delete_per_100k": 0.02,
    "pubsub_per_tib": 40.0,
    "pubsub_min_bytes_per_request": 1000,
    "run_per_vcpu_s": 0.000024,
    "run_per_gib_s": 0.0000025,
    "run_per_million_requests": 0.40,
    "tasks_per_million_ops": 0.40,
    "bq_streaming_per_200mb": 0.01,
    "bq_min_row_bytes": 1024,
}
"""Firestore (Standard edition, Native mode), United States multi-region (nam5): document reads $0.06,
writes $0.18, deletes $0.02 per 100,000 documents. https://firebase.google.com/docs/firestore/pricing
(Italian copy, "Stati Uniti (multiregione)"), READ_ON.
Pub/Sub throughput (Message Delivery Basic): $40 per TiB, first 10 GiB free; a minimum of 1000 bytes per
publish, push or pull request; a message's size adds 20 bytes of timestamp and its message_id.
https://cloud.google.com/pubsub/pricing, READ_ON.
Cloud Run request-based billing ("CPU only allocated during request processing"), Tier 1:
$0.00002400 / vCPU-second: https://cloud.google.com/run/pricing, READ_ON. Memory $0.00000250 / GiB-second
and $0.40 / million requests: the stored copy of Google's page was cut off after the CPU column; these two
are as quoted by https://cloudwebschool.com/tools/cloud-run-cost-calculator/ (third party), READ_ON.
Cloud Tasks: $0.40 per million billable operations (an API call or push delivery attempt, chunked at
32 KB), first million free. https://cloud.google.com/tasks/pricing, READ_ON.
BigQuery streaming inserts (legacy insertAll): $0.01 per 200 MB, individual rows calculated using a 1 KB
minimum size. https://cloud.google.com/bigquery/pricing, READ_ON.
"""
PRICE_SOURCES = {
    "firestore": "https://firebase.google.com/docs/firestore/pricing (US multi-region), " + READ_ON,
    "pubsub": "https://cloud.google.com/pubsub/pricing, " + READ_ON,
    "cloud_run_cpu": "https://cloud.google.com/run/pricing (Tier 1, request-based), " + READ_ON,
    "cloud_run_memory_requests": "https://cloudwebschool.com/tools/cloud-run-cost-calculator/ "
    "(third party; Google's stored page cut off), " + READ_ON,
    "cloud_tasks": "https://cloud.google.com/tasks/pricing, " + READ_ON,
    "bigquery_streaming": "https://cloud.google.com/bigquery/pricing, " + READ_ON,
}
VCPU = 1.0  # terraform function_defaults: cpu "1", memory "512Mi"
GIB = 0.5
TIB = 2**40
MB = 2**20

FUNCTIONS = ("ingest", "webhook", "email", "bigquery", "audit")
WARMUP = 5
TIMEOUT = 600.0
STALL = 60.0  # seconds without progress after which a scenario is measured as it stands
TEMPLATE = '{"id": event.id, "text": "%s %s: %s" % [event.data.subject_type, event.data.subject_id, event.data.verb]}'
DIGEST = re.compile(r"\[sysevents\] (\d+) alert")


# -- BigQuery: a pass-through proxy that counts streaming inserts -----------------------------------------
class BigQueryMeter:
    """Listens on 127.0.0.1:<free port> and forwards every request to the BigQuery emulator; counts each
    insertAll call, its rows accepted (per table, and per account when the row has `aid`) and their size."""

    HOP = {"host", "content-length", "connection", "accept-encoding", "transfer-encoding", "keep-alive"}

    def __init__(self, target: str):
        self.target = target.rstrip("/")
        self.lock = threading.Lock()
        self.calls = 0
        self.rows: Counter[str] = Counter()
        self.row_bytes: Counter[str] = Counter()
        self.billed_bytes: Counter[str] = Counter()
        self.by_aid: Counter[tuple[str, str]] = Counter()
        self._local = threading.local()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in outer.HOP}
                headers["Accept-Encoding"] = "identity"
                resp = outer._session().request(
                    self.command, outer.target + self.path, data=body, headers=headers, timeout=120
                )
                if self.command == "POST" and self.path.split("?")[0].endswith("/insertAll"):
                    outer._count(self.path, self.headers, body, resp)
                self.send_response(resp.status_code)
                for k, v in resp.headers.items():
                    if k.lower() not in outer.HOP and k.lower() != "content-encoding":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward  # noqa: N815 - http.server's naming

            def log_message(self, *args) -> None:
                pass

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="bq-meter", daemon=True)

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _count(self, path: str, headers, body: bytes, resp: requests.Response) -> None:
        m = re.search(r"/datasets/([^/]+)/tables/([^/]+)/insertAll", path)
        if m is None or resp.status_code != 200:
            return
        if headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        rows = json.loads(body).get("rows") or []
        failed = {e.get("index") for e in (resp.json().get("insertErrors") or [])}
        name = f"{m.group(1)}.{m.group(2)}"
        with self.lock:
            self.calls += 1
            for i, row in enumerate(rows):
                if i in failed:
                    continue
                data = row.get("json") or {}
                size = len(json.dumps(data, separators=(",", ":")).encode())
                self.rows[name] += 1
                self.row_bytes[name] += size
                self.billed_bytes[name] += max(size, PRICES["bq_min_row_bytes"])
                if "aid" in data:
                    self.by_aid[(name, str(data["aid"]))] += 1

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "calls": self.calls,
                "rows": Counter(self.rows),
                "row_bytes": Counter(self.row_bytes),
                "billed_bytes": Counter(self.billed_bytes),
            }

    def start(self) -> BigQueryMeter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MeteredStack(LocalStack):
    """The local stack, with the functions' BigQuery endpoint pointed at a BigQueryMeter."""

    bq_meter: BigQueryMeter | None = None

    def _start_function(self, name: str):
        if self.bigquery_url and self.bq_meter is None:
            self.bq_meter = BigQueryMeter(self.bigquery_url).start()
            self.services.append(self.bq_meter)  # stopped with the stack
            self.env["SYSEVENTS_BIGQUERY_ENDPOINT"] = self.bq_meter.url
        return super()._start_function(name)


# -- meters -------------------------------------------------------------------------------------------------
def read_meters(stack) -> dict[str, dict]:
    out = {}
    for name in stack.function_names:
        with urllib.request.urlopen(stack.function_urls[name], timeout=30) as resp:  # noqa: S310 - local
            body = json.loads(resp.read())
        out[name] = {
            **(body.get("meter") or {}),
            "_max_age_ms": (body.get("job_cache") or {}).get("max_age_ms"),
        }
    return out


def diff(before: dict, after: dict, less: dict | None = None) -> dict[str, Counter]:
    """Per function: after - before (- `less`, the cost of one GET / of the meters), numeric keys only."""
    out = {}
    for f in after:
        c: Counter = Counter()
        for k, v in after[f].items():
            if k.startswith("_") or not isinstance(v, int | float):
                continue
            c[k] = v - before[f].get(k, 0) - ((less or {}).get(f, {}).get(k, 0))
        out[f] = c
    return out


def settle_s(meters: dict) -> float:
    """Long enough for the last requests' accounting to commit and for the next GET / to sync the job
    cache's change markers (so that every GET costs the same, measured once and subtracted)."""
    ages = [m.get("_max_age_ms") or 0 for m in meters.values()]
    return max(2.5, max(ages) / 1000 + 1.5)


# -- pricing -----------------------------------------------------------------------------------------------
def billed(count: float, size: float, minimum: float) -> float:
    """Bytes billed for `count` requests of `size` bytes in all, at `minimum` bytes per request (exact when
    every message is below the minimum or every one above)."""
    return max(count * minimum, size)


def model(per: dict[str, float]) -> dict[str, float]:
    """Dollars for counts (any scale)."""
    p = PRICES
    usd = {
        "firestore": per["firestore_reads"] * p["firestore_read_per_100k"] / 1e5
        + per["firestore_writes"] * p["firestore_write_per_100k"] / 1e5
        + per["firestore_deletes"] * p["firestore_delete_per_100k"] / 1e5,
        "pubsub": per["pubsub_billed_bytes"] / TIB * p["pubsub_per_tib"],
        "cloud_run": per["invocations"] * p["run_per_million_requests"] / 1e6
        + per["instance_s"] * VCPU * p["run_per_vcpu_s"]
        + per["instance_s"] * GIB * p["run_per_gib_s"],
        "cloud_tasks": per["tasks"] * 2 * p["tasks_per_million_ops"] / 1e6,
        "bigquery": per["bq_billed_bytes"] / (200 * MB) * p["bq_streaming_per_200mb"],
    }
    usd["total"] = sum(usd.values())
    return usd


def counts(spent: dict[str, Counter], names: tuple[str, ...], produced: tuple[int, int] = (0, 0)) -> dict:
    """The countable figures of functions `names` (+ the producer's publishes: (messages, bytes))."""
    s: Counter = Counter()
    for f in names:
        s.update(spent.get(f, Counter()))
    minimum = PRICES["pubsub_min_bytes_per_request"]
    messages = produced[0] + s["pubsub.published"] + s["tasks.created"] + s["pushes"]
    raw = produced[1] + s["pubsub.published_bytes"] + s["tasks.bytes"] + s["push_bytes"]
    billed_bytes = (
        billed(produced[0], produced[1], minimum)
        + billed(s["pubsub.published"], s["pubsub.published_bytes"], minimum)
        + billed(s["tasks.created"], s["tasks.bytes"], minimum)
        + billed(s["pushes"], s["push_bytes"], minimum)
    )
    return {
        "firestore_reads": s["firestore.reads"],
        "firestore_writes": s["firestore.writes"],
        "firestore_deletes": s["firestore.deletes"],
        "firestore_calls": s["firestore.calls"],
        "pubsub_messages": messages,
        "pubsub_bytes": raw,
        "pubsub_billed_bytes": billed_bytes,
        "invocations": s["pushes"],
        "instance_s": s["busy_s"],
        "tasks": s["tasks.created"],
    }


# -- the run -----------------------------------------------------------------------------------------------
class Run:
    def __init__(self, stack: MeteredStack, receiver: Receiver, n: int):
        from google.cloud import firestore

        from sysevents.config import Settings
        from sysevents.jobs.store import JobStore
        from sysevents.transport.pubsub import Publisher

        self.stack, self.receiver, self.n = stack, receiver, n
        self.settings = Settings()
        self.store = JobStore(firestore.Client(project=stack.project))
        self.publisher = Publisher(stack.project)
        self.audit = f"{self.settings.audit_dataset}.{self.settings.audit_table}"
        self.get_cost: dict[str, dict] = {}

    def measure_get_cost(self) -> None:
        """What one GET / of the meters costs each function (its job cache sync), to subtract."""
        a = read_meters(self.stack)
        time.sleep(settle_s(a))
        b = read_meters(self.stack)
        self.get_cost = {f: dict(c) for f, c in diff(a, b).items()}

    def put(self, job) -> None:
        self.store.put(job)
        self.stack.wait_for_job_caches(since=self.store.last_write_time)

    def publish(self, aid: str, tag: str, count: int) -> tuple[int, int]:
        events = [new_event(aid, "work", f"{tag}-{i}", "failed", notes=f"run {i}") for i in range(count)]
        messages = [(self.stack.topology.ingest_topic, e.to_json(), {}) for e in events]
        for c in range(0, len(messages), 50):
            self.publisher.publish_all(messages[c : c + 50])
        return len(messages), sum(message_bytes(data, attrs) for _, data, attrs in messages)

    def wait(self, arrived, total: int, aid: str) -> int:
        """Until `arrived()` and the audit rows of `aid` reach `total`, or nothing moved for STALL seconds
        (then the scenario is measured as it stands, and says how many arrived); returns arrived()."""
        last, moved, deadline = None, time.monotonic(), time.monotonic() + TIMEOUT
        while True:
            now = (arrived(), self.audited(aid))
            if min(now) >= total or time.monotonic() > deadline:
                return now[0]
            if now != last:
                last, moved = now, time.monotonic()
            elif time.monotonic() - moved > STALL:
                return now[0]
            time.sleep(0.1)

    def audited(self, aid: str) -> int:
        assert self.stack.bq_meter is not None
        with self.stack.bq_meter.lock:
            return self.stack.bq_meter.by_aid[(self.audit, aid)]

    def scenario(self, sink: str | None, aid: str, arrived, tally=lambda: 0) -> dict:
        """Warm up, then N events of account `aid`; `arrived()` counts the events the sink got out (all
        of them since the job was made);
        `tally()` counts what the sink sent outside Google Cloud (emails), taken before and after."""
        bq = self.stack.bq_meter
        assert bq is not None
        self.publish(aid, "warm", WARMUP)
        warm = self.wait(arrived, WARMUP, aid)
        time.sleep(settle_s(read_meters(self.stack)))
        before, bq_before, sent = read_meters(self.stack), bq.snapshot(), tally()
        started = time.monotonic()
        produced = self.publish(aid, "e", self.n)
        total = WARMUP + self.n
        got = self.wait(arrived, total, aid) - warm
        took = time.monotonic() - started
        time.sleep(settle_s(before))
        after, bq_after = read_meters(self.stack), bq.snapshot()
        c_emails = tally() - sent
        spent = diff(before, after, self.get_cost)
        names = ("ingest",) + ((sink,) if sink else ())
        c = counts(spent, names, produced)
        c["emails"] = c_emails
        tables = {t for t in bq_after["rows"] if t != self.audit}
        c["bq_rows"] = sum(bq_after["rows"][t] - bq_before["rows"][t] for t in tables)
        c["bq_row_bytes"] = sum(bq_after["row_bytes"][t] - bq_before["row_bytes"][t] for t in tables)
        c["bq_billed_bytes"] = sum(bq_after["billed_bytes"][t] - bq_before["billed_bytes"][t] for t in tables)
        audit = counts(spent, ("audit",))
        audit["bq_rows"] = bq_after["rows"][self.audit] - bq_before["rows"][self.audit]
        audit["bq_row_bytes"] = bq_after["row_bytes"][self.audit] - bq_before["row_bytes"][self.audit]
        audit["bq_billed_bytes"] = (
            bq_after["billed_bytes"][self.audit] - bq_before["billed_bytes"][self.audit]
        )
        return {"counts": c, "audit": audit, "seconds": took, "arrived": got}

    def scheduled(self) -> list[dict]:
        """Each Cloud Scheduler job of the running functions, called once: what one call costs."""
        out = []
        for name in self.stack.function_names:
            for s in self.stack.topology.functions[name].schedules:
                before = read_meters(self.stack)
                r = requests.post(
                    self.stack.function_urls[name].rstrip("/") + s.get("path", "/"), json=s.get("body") or {},
                    timeout=120,
                )  # fmt: skip
                time.sleep(settle_s(before))
                spent = diff(before, read_meters(self.stack), self.get_cost)[name]
                out.append({"function": name, "schedule": s["name"], "cron": s["cron"], "status": r.status_code,
                            "firestore_reads": spent["firestore.reads"], "firestore_writes": spent["firestore.writes"],
                            "firestore_deletes": spent["firestore.deletes"], "busy_s": spent["busy_s"]})  # fmt: skip
        return out


def calls_per_month(cron: str) -> float | None:
    """Calls in a 30-day month of the two cron forms the topology uses ("* * * * *", "*/N * * * *")."""
    minute, *rest = cron.split()
    if rest != ["*", "*", "*", "*"]:
        return None
    if minute == "*":
        return 30 * 24 * 60
    if minute.startswith("*/") and minute[2:].isdigit():
        return 30 * 24 * 60 / int(minute[2:])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300, help="events per scenario (default 300)")
    n = parser.parse_args().events
    logging.getLogger("sysevents").setLevel(logging.WARNING)

    failed_once: set[str] = set()

    def script(item):  # the /flaky receiver: 500 to each event's first attempt, then 200
        if item.path != "/flaky":
            return None
        key = item.json().get("id")
        if key in failed_once:
            return None
        failed_once.add(key)
        return 500

    receiver = Receiver()
    receiver.script = script
    receiver.start()
    env = {"SYSEVENTS_METER": "true"}
    results: dict[str, dict] = {}
    try:
        with MeteredStack(functions=FUNCTIONS, extra_env=env) as stack, stack.environment():
            for service in [s for s in stack.services if isinstance(s, ScheduleTicker)]:
                service.stop()  # Cloud Scheduler's calls are not per event: measured once, at the end
                stack.services.remove(service)
            assert stack.smtp is not None and stack.bq_meter is not None
            smtp, bq = stack.smtp, stack.bq_meter
            run = Run(stack, receiver, n)
            run.measure_get_cost()
            from sysevents.sinks.bigquery.export import new_export_job
            from sysevents.sinks.bigquery.targets import account_dataset

            def aid_of(tag: str) -> str:
                return f"cost-{re.sub('[^a-z0-9]+', '-', tag)}-{uuid.uuid4().hex[:8]}"

            def webhook(tag: str, path: str) -> None:
                aid = aid_of(tag)
                run.put(job_from_dict({"workflow": "webhook_system_events", "config": {
                    "webhook_url": receiver.url(path), "system_event_type": "failed", "json_template": TEMPLATE}},
                    job_id=f"{aid}-hook", aid=aid))  # fmt: skip
                results[tag] = run.scenario("webhook", aid, lambda: len(receiver.at(path)))

            def email(tag: str, **config) -> None:
                aid = aid_of(tag)
                to = f"{aid}@example.com"
                from sysevents.consent.store import ConsentStore, Policy

                ConsentStore(run.store.client).set_policy(
                    aid, Policy(("example.com",))
                )  # needs no confirming
                run.put(job_from_dict({"workflow": "email_system_events", "config": {
                    "recipients": [to], "system_event_type": "failed", **config}},
                    job_id=f"{aid}-mail", aid=aid))  # fmt: skip

                def emailed() -> int:  # events emailed: one per email, or as many as a digest says
                    mails = [m for m in smtp.mails if to in m.rcpt_tos]
                    return sum(int(m.group(1)) if (m := DIGEST.match(x.subject)) else 1 for x in mails)

                results[tag] = run.scenario(
                    "email", aid, emailed, tally=lambda: sum(1 for m in smtp.mails if to in m.rcpt_tos)
                )

            def bigquery(tag: str) -> None:
                aid = aid_of(tag)
                dataset = f"{account_dataset(run.settings, aid)}__{uuid.uuid4().hex[:8]}"
                target = f"{dataset}.events"
                run.put(new_export_job(aid, {"dataset": dataset, "table": "events",
                        "system_event_multiple_types": ["failed"], "system_event_sources": {"work": []}},
                        handover_seconds=0))  # fmt: skip
                results[tag] = run.scenario("bigquery", aid, lambda: bq.rows[target])

            def nothing(tag: str) -> None:
                aid = aid_of(tag)
                results[tag] = run.scenario(
                    None, aid, lambda: run.audited(aid)
                )  # ingest: no sign but the audit

            print(
                f"{n} events per scenario (+{WARMUP} warm-up), time_scale {stack.time_scale:.6g}", flush=True
            )
            for tag, go in (
                ("webhook delivered", lambda t: webhook(t, "/ok")),
                ("webhook 500 then delivered", lambda t: webhook(t, "/flaky")),
                ("email per event", lambda t: email(t)),
                (
                    "email digest",
                    lambda t: email(t, grouping={"by": ["verb"], "group_wait": 300, "group_interval": 300}),
                ),  # fmt: skip
                ("bigquery export", bigquery),
                ("no matching job", nothing),
            ):
                go(tag)
                r = results[tag]
                note = (
                    "" if r["arrived"] >= n else f" (only {r['arrived']} of {n} arrived; stalled {STALL:g} s)"
                )
                print(f"  {tag}: {n} events in {r['seconds']:.1f} s{note}", flush=True)
            scheduled = run.scheduled()
    finally:
        receiver.stop()

    scale = 1e6 / n
    audit_total: Counter = Counter()
    for r in results.values():
        audit_total.update(r["audit"])
    rows: dict[str, dict] = {}
    for tag, r in results.items():
        rows[tag] = {k: v * scale for k, v in r["counts"].items()}
    rows["audit archive (every event)"] = {k: v * 1e6 / (n * len(results)) for k, v in audit_total.items()}
    rows["audit archive (every event)"]["emails"] = 0

    def num(v: float) -> str:
        return f"{v:,.0f}" if abs(v) >= 10 else f"{v:,.2f}"

    print()
    print(f"Per 1 million events (measured with {n} events per scenario):")
    table(
        ("scenario", "FS reads", "FS writes", "FS deletes", "Pub/Sub msgs", "Pub/Sub GiB billed", "invocations",
         "instance-s", "tasks", "BQ rows", "BQ GiB billed", "emails"),
        [(tag, num(c["firestore_reads"]), num(c["firestore_writes"]), num(c["firestore_deletes"]),
          num(c["pubsub_messages"]), f"{c['pubsub_billed_bytes'] / 2**30:,.2f}", num(c["invocations"]),
          num(c["instance_s"]), num(c["tasks"]), num(c.get("bq_rows", 0)),
          f"{c.get('bq_billed_bytes', 0) / 2**30:,.2f}", num(c["emails"])) for tag, c in rows.items()],
    )  # fmt: skip
    print("(instance-s: the meter's busy_s, time an instance had a request in flight, on this machine;")
    print(
        " billed as vCPU-s x 1 and GiB-s x 0.5. Pub/Sub: producer publish + function publishes + delay-queue"
    )
    print(
        " releases + pushes, 1000-byte minimum per message. Tasks: created; 2 Cloud Tasks operations each.)"
    )
    usd = {tag: model(c) for tag, c in rows.items()}
    audit_usd = usd["audit archive (every event)"]["total"]
    print()
    print("USD per 1 million events at list prices (no free tiers):")
    table(
        ("scenario", "Firestore", "Pub/Sub", "Cloud Run", "Cloud Tasks", "BigQuery", "total", "+ audit"),
        [(tag, *(f"{u[k]:,.2f}" for k in ("firestore", "pubsub", "cloud_run", "cloud_tasks", "bigquery", "total")),
          f"{u['total'] + audit_usd:,.2f}" if not tag.startswith("audit") else "-") for tag, u in usd.items()],
    )  # fmt: skip
    print()
    print("Cloud Scheduler calls (not per event), one call each, measured:")
    sched_rows = []
    for s in scheduled:
        month = calls_per_month(s["cron"])
        per = {"firestore_reads": s["firestore_reads"], "firestore_writes": s["firestore_writes"],
               "firestore_deletes": s["firestore_deletes"], "pubsub_billed_bytes": 0, "invocations": 1,
               "instance_s": s["busy_s"], "tasks": 0, "bq_billed_bytes": 0}  # fmt: skip
        monthly = model({k: v * month for k, v in per.items()})["total"] if month else None
        s["usd_per_month"] = round(monthly, 4) if monthly is not None else None
        sched_rows.append((f"{s['function']} {s['schedule']} ({s['cron']})", s["status"], num(s["firestore_reads"]),
                           num(s["firestore_writes"]), f"{s['busy_s']:.3f}", f"{month:,.0f}" if month else "?",
                           f"{monthly:,.4f}" if monthly is not None else "?"))  # fmt: skip
    table(("schedule", "status", "FS reads", "FS writes", "busy s", "calls/month", "USD/month"), sched_rows)
    last_line({
        "bench": "cost",
        "events": n,
        "scenarios": {tag: {"per_million": {k: round(v, 3) for k, v in rows[tag].items()},
                            "usd_per_million": round(usd[tag]["total"], 4),
                            "arrived": results[tag]["arrived"] if tag in results else None,
                            "usd_per_million_by_service": {k: round(v, 4) for k, v in usd[tag].items()}}
                      for tag in rows},
        "scheduled": scheduled,
        "prices": {**PRICES, "sources": PRICE_SOURCES},
    })  # fmt: skip


if __name__ == "__main__":
    main()
