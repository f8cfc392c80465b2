"""Alerts with grouping: sysevents vs Prometheus Alertmanager 0.25, same run. Prints a table and a last line
of JSON; nothing is asserted.

The same stream of N failure events goes into each: each about its own subject (N distinct alerts), in G
groups by a `pipeline` field (round-robin), with the same grouping: group_by pipeline, group_wait,
group_interval, repeat_interval (GROUPING below), in real seconds (the stack runs at time scale 1).
- sysevents (webhook): the local stack (emulators; ingest, webhook, email and admin functions; the Cloud
  Tasks emulator for the group timers), a webhook alert job with the generic JSON digest, created through
  the admin API, into a local receiver; events published with `Publisher`. Unpaced, like Alertmanager's
  webhook_config.
- sysevents (Slack, 1/s): the same with `channel: slack` and the Slack digest, paced at Slack's limit of
  one message per second per incoming webhook (what Slack's API asks; Alertmanager does not pace).
- Alertmanager: `prometheus-alertmanager` on a free port (clustering off), alerts POSTed to /api/v2/alerts,
  notifications to a local webhook receiver (webhook_config).
- sysevents (email): the same through an email alert job and the local SMTP server.
Figures: events accepted/s (Pub/Sub publish vs Alertmanager's API), time until every event has been
notified, notifications and notifications/s, latency from a group's first event to its first
notification, and when the events reached sysevents' alert engine (the pipeline through the emulators
spreads a burst over that span: later events go into a group's follow-up digests, group_interval apart). Then, in-process: concurrent accepts of one group's events (THREADS threads) against the
Firestore emulator. Last, condition latency (`run_conditions`): an absence's deadline to its notification,
a threshold's counting event to its notification, against a plain delivery's latency in the same run.

    apt-get install -y prometheus-alertmanager     # as root; Debian's package is Alertmanager 0.25
    .venv/bin/python bench/bench_alerts.py [N]
    .venv/bin/python bench/bench_alerts.py --conditions   # only the condition latency (last part)
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import requests

from sysevents.events.model import new_event
from sysevents.local.processes import Process, free_port, http_ok
from sysevents.local.receiver import Receiver
from sysevents.local.stack import LocalStack

N = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 500
GROUPS = 10
CHUNK = 50  # events per publish call / per POST
GROUPING = {"group_wait": 1, "group_interval": 5, "repeat_interval": 3600}
TIMEOUT = 60.0
AID = "77"
AM_BINARY = "prometheus-alertmanager"


THREADS = 8


def group_of(i: int) -> str:
    return f"p-{i % GROUPS}"


def summarize(name: str, accepted_s: float, done_at: float | None, notified: int, firsts: dict[str, float],
              notes: list[float], sent_at: dict[str, float]) -> dict[str, str]:  # fmt: skip
    lat = sorted(firsts[g] - sent_at[g] for g in firsts)
    span = (max(notes) - min(notes)) if len(notes) > 1 else 0.0
    return {
        "system": name,
        "events accepted/s": f"{N / accepted_s:,.0f}",
        "all events notified after": f"{done_at:.2f} s"
        if done_at is not None
        else f"{notified}/{N} in {TIMEOUT:g} s",
        "notifications": str(len(notes)),
        "notifications/s": f"{len(notes) / span:.2f}" if span else "-",
        "groups notified": f"{len(firsts)}/{GROUPS}",
        "first notification p50": f"{statistics.median(lat):.2f} s" if lat else "-",
        "first notification max": f"{lat[-1]:.2f} s" if lat else "-",
        "_figures": {
            "first_p50_s": round(statistics.median(lat), 3) if lat else None,
            "all_notified_s": round(done_at, 3) if done_at is not None else None,
            "notifications": len(notes),
            "accepted_per_s": round(N / accepted_s, 1),
        },
    }


def _account(stack: LocalStack) -> tuple:
    api = stack.function_urls["admin"].rstrip("/")

    def call(path: str, key: str, doc: dict) -> dict:
        r = requests.post(api + path, headers={"X-API-Key": key}, json=doc, timeout=30)
        if r.status_code == 409:
            return {}
        r.raise_for_status()
        return r.json()

    call("/accounts", stack.operator_key, {"aid": AID, "name": "bench"})
    key = call(f"/accounts/{AID}/keys", stack.operator_key, {"name": "bench"})["key"]
    policy = {"aid": AID, "allowed_domains": ["example.com"]}  # the bench's recipients need no confirmation
    r = requests.put(f"{api}/email-policies", headers={"X-API-Key": stack.operator_key},
                     json=policy, timeout=30)  # fmt: skip
    r.raise_for_status()
    return call, key


def _publish(stack: LocalStack, prefix: str, subject_type: str = "work", notes: bool = True
             ) -> tuple[float, dict[str, float]]:  # fmt: skip
    """Publish the N events (CHUNK per call); returns (seconds it took, {group: when its first was sent})."""
    from sysevents.transport.pubsub import Publisher

    publisher = Publisher(stack.project)
    events = [
        new_event(
            AID,
            subject_type,
            f"{prefix}{i}",
            "failed",
            pipeline=group_of(i),
            **({"notes": f"run {i}"} if notes else {}),
        )
        for i in range(N)
    ]
    sent_at: dict[str, float] = {}
    start = t0 = time.time()
    for c in range(0, N, CHUNK):
        chunk = events[c : c + CHUNK]
        publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in chunk])
        for e in chunk:
            sent_at.setdefault(e.data.model_extra["pipeline"], t0)
        t0 = time.time()
    return time.time() - start, sent_at


SLACK_LINE = re.compile(r"\|work w-(\d+) failed")
SLACK_HEAD = re.compile(r"^(\d+) works? failed in account ")


def _arrival(stack: LocalStack, job_id: str, start: float) -> str:
    """When the job's events reached the alert engine (the `seen` records' accept times), from the first
    publish: the pipeline (ingest, the sink's subscription) spreads a burst over this span."""
    from google.cloud import firestore

    client = firestore.Client(project=stack.project)
    q = client.collection("alert_seen").where(filter=firestore.FieldFilter("job_id", "==", job_id))
    times = sorted(s.to_dict()["at"].timestamp() - start for s in q.stream())
    if not times:
        return "-"
    return f"{times[0]:.2f}-{times[-1]:.2f} s"


def _engine_latency(stack: LocalStack, job_id: str, firsts: dict[str, float]) -> str:
    """Per group, from its first event reaching the alert engine (its earliest `seen` record) to its first
    notification: what Alertmanager's latency measures (it gets the alerts directly), p50 and max."""
    from google.cloud import firestore

    client = firestore.Client(project=stack.project)
    by_job = firestore.FieldFilter("job_id", "==", job_id)
    pipeline = {
        g.id: (g.to_dict().get("key") or {}).get("pipeline")
        for g in client.collection("alert_groups").where(filter=by_job).stream()
    }
    first_seen: dict[str, float] = {}
    for s in client.collection("alert_seen").where(filter=by_job).stream():
        doc = s.to_dict()
        g = pipeline.get(doc.get("group_id"))
        if g is not None:
            first_seen[g] = min(first_seen.get(g, doc["at"].timestamp()), doc["at"].timestamp())
    lat = sorted(firsts[g] - first_seen[g] for g in firsts if g in first_seen)
    if not lat:
        return "-"
    return f"p50 {statistics.median(lat):.2f} s, max {lat[-1]:.2f} s"


def run_sysevents_webhook(stack: LocalStack, channel: str) -> dict:
    """A webhook alert job (default digest of `channel`) into a local receiver. channel "webhook": the
    generic JSON digest, unpaced (as Alertmanager's webhook_config); "slack": the Slack digest, paced at
    Slack's 1 message per second per incoming webhook."""
    call, key = _account(stack)
    receiver = Receiver().start()
    prefix = "w-" if channel == "slack" else "g-"
    try:
        job = call(f"/accounts/{AID}/jobs", key, {
            "workflow": "webhook_system_events", "name": f"bench {channel} alerts",
            "config": {"system_event_type": "failed", "webhook_url": receiver.url("/hook"), "channel": channel,
                       "system_event_sources": {"work": []},
                       "grouping": {"by": ["pipeline"], "max_events": 100, **GROUPING}},
        })  # fmt: skip
        stack.wait_for_job_caches(datetime.fromisoformat(job["updated_at"]))
        accepted_s, sent_at = _publish(stack, prefix)
        start = min(sent_at.values())

        def count(p) -> int:
            doc = p.json()
            return int(SLACK_HEAD.match(doc["text"]).group(1)) if channel == "slack" else int(doc["count"])

        def first_index(p) -> int | None:
            doc = p.json()
            if channel == "slack":
                m = SLACK_LINE.search(doc["text"])
                return int(m.group(1)) if m else None
            items = doc.get("items") or []
            return int(items[0]["event"]["data"]["subject_id"][len(prefix) :]) if items else None

        done_at, deadline = None, time.monotonic() + TIMEOUT
        counted = 0
        while time.monotonic() < deadline:
            posts = receiver.at("/hook")
            counted = sum(count(p) for p in posts)
            if counted >= N:
                done_at = max(p.at for p in posts) - start
                break
            time.sleep(0.05)
        posts = receiver.at("/hook")
        firsts: dict[str, float] = {}
        for p in posts:
            i = first_index(p)
            g = group_of(i) if i is not None else "?"
            firsts[g] = min(firsts.get(g, p.at), p.at)
        name = "sysevents (Slack, 1/s)" if channel == "slack" else "sysevents (webhook)"
        row = summarize(name, accepted_s, done_at, counted, firsts, [p.at for p in posts], sent_at)
        row["events reached the engine"] = _arrival(stack, job["id"], start)
        row["engine: first event to first notification"] = _engine_latency(stack, job["id"], firsts)
        return row
    finally:
        receiver.stop()


def run_sysevents_email(stack: LocalStack, to: str) -> dict:
    call, key = _account(stack)
    job = call(f"/accounts/{AID}/jobs", key, {
        "workflow": "email_system_events", "name": "bench email alerts",
        "config": {"system_event_type": "failed", "recipients": [to], "system_event_sources": {"report": []},
                   "grouping": {"by": ["pipeline"], **GROUPING}},
    })  # fmt: skip
    stack.wait_for_job_caches(datetime.fromisoformat(job["updated_at"]))
    accepted_s, sent_at = _publish(stack, "r-", subject_type="report", notes=False)
    start = min(sent_at.values())
    assert stack.smtp is not None
    done_at, deadline = None, time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        mails = [m for m in stack.smtp.mails if to in m.rcpt_tos]
        counted = sum(int(re.match(r"\[sysevents\] (\d+) alert", m.subject).group(1)) for m in mails)
        if counted >= N:
            done_at = max(m.received_at for m in mails) - start
            break
        time.sleep(0.05)
    mails = [m for m in stack.smtp.mails if to in m.rcpt_tos]
    firsts: dict[str, float] = {}
    for m in mails:
        g = m.subject.rsplit("pipeline=", 1)[-1]
        firsts[g] = min(firsts.get(g, m.received_at), m.received_at)
    counted = sum(int(re.match(r"\[sysevents\] (\d+) alert", m.subject).group(1)) for m in mails)
    row = summarize("sysevents (email)", accepted_s, done_at, counted, firsts, [m.received_at for m in mails],
                    sent_at)  # fmt: skip
    row["events reached the engine"] = _arrival(stack, job["id"], start)
    row["engine: first event to first notification"] = _engine_latency(stack, job["id"], firsts)
    return row


def run_contention(stack: LocalStack, events: int = 200) -> str:
    """Accept `events` events of one group from THREADS threads at once, in-process (AlertStore on the
    stack's Firestore emulator): accepts/s, slowest accept, failures. No document is shared by accepts."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import UTC

    from google.cloud import firestore

    from sysevents.alerts.store import AlertStore
    from sysevents.config import Settings
    from sysevents.jobs.registry import job_from_dict

    store = AlertStore(firestore.Client(project=stack.project),
                       Settings(alerts_collection_prefix=f"b{uuid.uuid4().hex[:6]}_"))  # fmt: skip
    job = job_from_dict(
        {"workflow": "email_system_events", "config": {"system_event_type": "failed",
         "recipients": ["contention@example.com"], "grouping": {"by": ["verb"], "group_wait": 60}}},
        job_id="bench-contention", aid=AID,
    )  # fmt: skip
    evs = [new_event(AID, "work", f"w-{i}", "failed") for i in range(events)]
    errors: list[str] = []

    def accept(e) -> float:
        t = time.perf_counter()
        try:
            now = datetime.now(UTC)
            store.accept_grouped(job, job.config.grouping, e.to_cloudevent(), now, now)
        except Exception as err:  # noqa: BLE001 - counted and shown
            errors.append(str(err))
        return time.perf_counter() - t

    start = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        lat = sorted(pool.map(accept, evs))
    took = time.perf_counter() - start
    return (
        f"{events} accepts into one group from {THREADS} threads: {events / took:,.0f}/s, "
        f"p50 {statistics.median(lat) * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms, failed {len(errors)}"
        + (f" ({errors[0][:60]})" if errors else "")
    )


AM_CONFIG = """\
route:
  receiver: bench
  group_by: [pipeline]
  group_wait: {group_wait}s
  group_interval: {group_interval}s
  repeat_interval: {repeat_interval}s
receivers:
  - name: bench
    webhook_configs:
      - url: {webhook}
        send_resolved: false
"""


CONDITION_ROUNDS = 5


def _p50_max(values: list[float]) -> tuple[float | None, float | None]:
    return (round(statistics.median(values), 3), round(max(values), 3)) if values else (None, None)


def run_conditions(stack: LocalStack) -> dict:
    """Condition latency. Absence: CONDITION_ROUNDS jobs (`within` 1 minute, armed when created through the
    admin API; their event never comes): from each deadline to its notification on a local receiver.
    Threshold (3 within 1 h per subject): from the publish of the event that makes the count to the
    notification. Baseline, same run: a plain webhook job's publish-to-POST latency."""
    from sysevents.transport.pubsub import Publisher

    call, key = _account(stack)
    receiver, publisher, tag = Receiver().start(), Publisher(stack.project), uuid.uuid4().hex[:6]

    def job(path: str, **config) -> dict:
        return call(f"/accounts/{AID}/jobs", key, {"workflow": "webhook_system_events", "name": f"bench {path}",
                    "config": {"webhook_url": receiver.url(path), **config}})  # fmt: skip

    def publish(*events) -> float:
        publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in events])
        return time.time()

    try:
        job("/plain", system_event_type="failed", system_event_sources={"work": [f"p-{tag}"]})
        job("/thr", system_event_type="failed", system_event_sources={"segment": []},
            threshold={"count": 3, "within": "1h", "by": ["subject_id"]})  # fmt: skip
        last = {}
        for i in range(CONDITION_ROUNDS):
            expect = {
                "system_event_sources": {"work": [f"never-{tag}-{i}"]},
                "system_event_type": "completed",
            }
            last = job(f"/abs{i}", absence={"expect": expect, "within": "1m"})
        stack.wait_for_job_caches(datetime.fromisoformat(last["updated_at"]))
        plain, thr = [], []
        for r in range(CONDITION_ROUNDS):
            sent = publish(new_event(AID, "work", f"p-{tag}", "failed"))
            plain.append(receiver.wait_for("/plain", r + 1, timeout=TIMEOUT)[r].at - sent)
            publish(*(new_event(AID, "segment", f"s-{tag}-{r}", "failed") for _ in range(2)))
            time.sleep(1.0)  # the first two counted
            sent = publish(new_event(AID, "segment", f"s-{tag}-{r}", "failed"))
            thr.append(receiver.wait_for("/thr", r + 1, timeout=TIMEOUT)[r].at - sent)
        absent = []
        for i in range(CONDITION_ROUNDS):
            [post] = receiver.wait_for(f"/abs{i}", 1, timeout=120)[:1] or [None]
            if post is not None:
                absent.append(
                    post.at - datetime.fromisoformat(post.json()["condition"]["deadline"]).timestamp()
                )
    finally:
        receiver.stop()
    figures = {"absence": _p50_max(absent), "threshold": _p50_max(thr), "plain": _p50_max(plain)}
    base = figures["plain"][0]
    ratio = {k: round(v[0] / base, 2) if v[0] is not None and base else None for k, v in figures.items()}
    lines = [f"conditions ({CONDITION_ROUNDS} each)                    p50        max   x plain delivery"]
    for name, label in (("absence", "absence: deadline to notification"),
                        ("threshold", "threshold: counting event to notification"),
                        ("plain", "baseline: plain delivery, publish to POST")):  # fmt: skip
        p50, top = figures[name]
        lines.append(f"{label:<45}{p50 if p50 is not None else '-':>8} s{top if top is not None else '-':>8} s"
                     f"{ratio[name] if ratio[name] is not None else '-':>10}")  # fmt: skip
    return {"text": "\n".join(lines), "absence_p50_s": figures["absence"][0], "absence_max_s": figures["absence"][1],
            "threshold_p50_s": figures["threshold"][0], "plain_p50_s": base, "absence_notified": len(absent)}  # fmt: skip


def run_alertmanager(workdir: Path) -> dict[str, str]:
    receiver = Receiver().start()
    port = free_port()
    config = workdir / "am.yml"
    config.touch(mode=0o600)
    config.write_text(
        AM_CONFIG.format(
            **GROUPING,
            webhook=receiver.url("/am"),
        )
    )
    am = Process(
        "alertmanager",
        [
            AM_BINARY,
            f"--config.file={config}",
            f"--storage.path={workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        workdir / "alertmanager.log",
        ready=http_ok(f"http://127.0.0.1:{port}/-/ready"),
    ).start()
    try:
        am.wait_ready(30)
        url = f"http://127.0.0.1:{port}/api/v2/alerts"
        session = requests.Session()
        sent_at: dict[str, float] = {}
        ids = [str(uuid.uuid4()) for _ in range(N)]
        t0 = start = time.time()
        for c in range(0, N, CHUNK):
            alerts = [
                {
                    "labels": {
                        "alertname": "work_failed",
                        "aid": AID,
                        "subject_id": f"w-{i}",
                        "pipeline": group_of(i),
                        "event_id": ids[i],
                    },
                    "annotations": {"notes": f"run {i}"},
                }
                for i in range(c, min(N, c + CHUNK))
            ]
            session.post(url, json=alerts, timeout=30).raise_for_status()
            for a in alerts:
                sent_at.setdefault(a["labels"]["pipeline"], t0)
            t0 = time.time()
        accepted_s = time.time() - start
        done_at, deadline = None, time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            seen = {a["labels"]["event_id"] for r in receiver.at("/am") for a in r.json()["alerts"]}
            if len(seen) >= N:
                done_at = max(r.at for r in receiver.at("/am")) - start
                break
            time.sleep(0.2)
        hooks = receiver.at("/am")
        seen = {a["labels"]["event_id"] for r in hooks for a in r.json()["alerts"]}
        firsts: dict[str, float] = {}
        for r in hooks:
            g = r.json()["groupLabels"]["pipeline"]
            firsts[g] = min(firsts.get(g, r.at), r.at)
        notes = [r.at for r in hooks]
        return summarize("Alertmanager (webhook)", accepted_s, done_at, len(seen), firsts, notes, sent_at)
    finally:
        am.stop()
        receiver.stop()


def conditions_only() -> None:
    """`bench_alerts.py --conditions`: only the condition latency (no Alertmanager needed)."""
    with LocalStack(bigquery=False, functions=("ingest", "webhook", "admin"), time_scale=1.0) as stack, \
            stack.environment():  # fmt: skip
        cond = run_conditions(stack)
    print(cond.pop("text"))
    print(json.dumps({f"condition_{k}": v for k, v in cond.items()}))


def main() -> None:
    if "--conditions" in sys.argv:
        conditions_only()
        return
    if shutil.which(AM_BINARY) is None:
        print(
            f"{AM_BINARY} is not installed. On Debian, as root:\n"
            "    apt-get update && apt-get install -y prometheus-alertmanager\n"
            "(Debian's package is Alertmanager 0.25; its service need not run: this benchmark starts its own.)"
        )
        return
    version = subprocess.run([AM_BINARY, "--version"], capture_output=True, text=True, timeout=30)
    print((version.stdout + version.stderr).strip().splitlines()[0])
    print(f"N={N} events (distinct alerts), {GROUPS} groups (group_by pipeline), grouping {GROUPING}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    # Real seconds: the grouping windows are compared with Alertmanager's.
    with LocalStack(bigquery=False, functions=("ingest", "webhook", "email", "admin"), time_scale=1.0) as stack, \
            stack.environment():  # fmt: skip
        run_sysevents_webhook(stack, "webhook")  # warm-up (a fresh stack's first burst is slower); not shown
        rows = [run_sysevents_webhook(stack, "webhook")]
        rows.append(run_alertmanager(workdir))
        rows.append(run_sysevents_webhook(stack, "slack"))
        rows.append(run_sysevents_email(stack, "ops-bench@example.com"))
        contention = run_contention(stack)
        cond = run_conditions(stack)
    rows[1]["events reached the engine"] = "(POSTed directly)"
    rows[1]["engine: first event to first notification"] = "(= first notification)"
    keys = [k for k in rows[0] if not k.startswith("_")]
    width = max(len(k) for k in keys) + 2
    cols = [max(len(r[k]) for k in keys) + 2 for r in rows]
    for k in keys:
        print(k.ljust(width) + "".join(r[k].rjust(c) for r, c in zip(rows, cols, strict=True)))
    print("(latency: from the publish/POST of a group's first event to its first notification)")
    print(contention)
    print(cond.pop("text"))
    ours, am = rows[0]["_figures"], rows[1]["_figures"]
    if ours["first_p50_s"] is not None and am["first_p50_s"] is not None:
        print(f"first notification p50: sysevents {ours['first_p50_s']:.2f} s vs Alertmanager "
              f"{am['first_p50_s']:.2f} s (+{ours['first_p50_s'] - am['first_p50_s']:.2f} s; goal +0.25 s)")  # fmt: skip
    if ours["all_notified_s"] is not None and am["all_notified_s"]:
        print(f"every event notified: {ours['all_notified_s'] / am['all_notified_s']:.2f}x Alertmanager's time "
              "(goal 1.5x)")  # fmt: skip
    slack, email = rows[2]["_figures"], rows[3]["_figures"]
    print(json.dumps({
        "first_p50_s": ours["first_p50_s"], "am_first_p50_s": am["first_p50_s"],
        "slack_first_p50_s": slack["first_p50_s"], "email_first_p50_s": email["first_p50_s"],
        "slack_all_notified_s": slack["all_notified_s"], "email_all_notified_s": email["all_notified_s"],
        "all_notified_s": ours["all_notified_s"], "am_all_notified_s": am["all_notified_s"],
        "notifications": ours["notifications"], "am_notifications": am["notifications"],
        "accepted_per_s": ours["accepted_per_s"], "am_accepted_per_s": am["accepted_per_s"],
        **{f"condition_{k}": v for k, v in cond.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
