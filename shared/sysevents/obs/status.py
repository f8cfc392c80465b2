"""`sysevents status`: what an operator looks at first, in one report, for the local stack or a deployment.

- **Jobs**: every job (or one account's) with what its sink counted (sysevents.delivery.accounting):
  deliveries pending (taken by the sink, not ended), waiting in the delay queue (a retry, a rate-limit
  slot), dead-lettered, the receiver's "slow down" answers and the pace learned from them (requests per
  second), and the failure streak; auto-disabled jobs with their reason. Reads about eleven Firestore
  documents per job (the job, its eight counter shards, its state and limiter documents).
- **Delay queue**: the tasks waiting on the Cloud Tasks queue (counted by listing, up to a limit).
- **Quarantine**: events ingest refused, with the count of each reason (one aggregation query).
- **Backlogs**: each subscription's undelivered messages and oldest unacked age, from Cloud Monitoring
  (`pubsub.googleapis.com/subscription/...`, the latest point of the last 10 minutes). The Pub/Sub
  emulator keeps no such metrics: on the local stack backlogs are reported as unavailable, and the jobs'
  "pending" counts are what the sinks have taken and not ended.

Nothing here writes. Every part is collected on its own: a part that cannot be read is reported with its
error, and the rest is still shown.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sysevents.jobs.model import Job, JobState

if TYPE_CHECKING:
    from sysevents.runtime import Runtime

MONITORING_URL = "https://monitoring.googleapis.com/v3"
BACKLOG_METRICS = {
    "undelivered": "pubsub.googleapis.com/subscription/num_undelivered_messages",
    "oldest_unacked_s": "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
}
TASKS_LIMIT = 10_000


def _job_row(rt: Runtime, job: Job) -> dict[str, Any]:
    s = rt.accounting.stats(job)
    return {
        "aid": job.aid,
        "id": job.id,
        "workflow": job.workflow,
        "state": job.state.value,
        "disabled_reason": job.disabled_reason if job.state is JobState.PAUSED else None,
        "pending": s["pending"],
        "waiting": s["delayed"],
        "dead_lettered": s["dead_lettered"],
        "delivered": s["delivered"],
        "consecutive_failures": s["consecutive_failures"],
        "failing_since": s["failing_since"],
        "last_delivered_at": s["last_delivered_at"],
        "pushed_back": s["pushed_back"],
        "learned_pace": (s["learned_pace"] or {}).get("per_second"),
    }


def jobs(rt: Runtime, aid: str | None = None, workers: int = 8) -> list[dict[str, Any]]:
    """Every job (of `aid`, or of every account) with its sink's counts, sorted by account and id."""
    found = rt.jobs.list(aid) if aid else rt.cache.jobs()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        rows = list(pool.map(lambda j: _job_row(rt, j), found))
    return sorted(rows, key=lambda r: (r["aid"], r["id"]))


def delay_queue(rt: Runtime, limit: int = TASKS_LIMIT) -> dict[str, Any]:
    """Tasks on the delay queue (each is one wait: a retry, a hold, a slot or an alert timer)."""
    if not rt.settings.delay_queue:
        return {"queue": None, "tasks": None, "note": "no delay queue configured (SYSEVENTS_DELAY_QUEUE)"}
    n = 0
    for _task in rt.delays.client.list_tasks(
        request={"parent": rt.delays.queue, "page_size": 1000}, timeout=30
    ):
        n += 1
        if n >= limit:
            return {"queue": rt.delays.queue, "tasks": n, "note": f"at least {limit:,} (stopped counting)"}
    return {"queue": rt.delays.queue, "tasks": n}


def quarantine(rt: Runtime) -> dict[str, Any]:
    """How many quarantined events are kept, by reason (the reason's first line, up to its first colon)."""
    reasons: Counter[str] = Counter()
    for snap in rt.quarantine.collection.select(["reason"]).stream(timeout=60):
        reason = str((snap.to_dict() or {}).get("reason") or "")
        reasons[reason.split(":", 1)[0].splitlines()[0] if reason else "(none)"] += 1
    return {"total": sum(reasons.values()), "by_reason": dict(reasons.most_common())}


def backlogs(rt: Runtime, session: Any = None) -> dict[str, Any]:
    """Each subscription's backlog from Cloud Monitoring; unavailable against the emulators."""
    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        return {
            "available": False,
            "note": "the Pub/Sub emulator keeps no backlog metrics; see the jobs' pending counts",
        }
    if session is None:
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/monitoring.read"])
        session = AuthorizedSession(creds)
    end = datetime.now(UTC)
    out: dict[str, dict[str, Any]] = {}
    for field, metric in BACKLOG_METRICS.items():
        params = {
            "filter": f'metric.type = "{metric}" AND resource.type = "pubsub_subscription"',
            "interval.startTime": (end - timedelta(minutes=10)).isoformat().replace("+00:00", "Z"),
            "interval.endTime": end.isoformat().replace("+00:00", "Z"),
            "view": "FULL",
        }
        url = f"{MONITORING_URL}/projects/{rt.settings.project}/timeSeries"
        while True:
            r = session.get(url, params=params, timeout=30)
            r.raise_for_status()
            doc = r.json()
            for series in doc.get("timeSeries", []):
                sub = series["resource"]["labels"].get("subscription_id", "?")
                points = series.get("points") or []
                if points:  # newest first
                    value = points[0]["value"]
                    out.setdefault(sub, {})[field] = int(
                        value.get("int64Value") or value.get("doubleValue") or 0
                    )
            if not doc.get("nextPageToken"):
                break
            params["pageToken"] = doc["nextPageToken"]
    known = set(rt.topology.subscriptions)
    return {"available": True, "subscriptions": {k: v for k, v in sorted(out.items()) if k in known}}


def _part(fn, *args) -> Any:
    try:
        return fn(*args)
    except Exception as err:  # one part unreadable: say so, show the rest
        return {"error": f"{type(err).__name__}: {err}"[:500]}


def collect(rt: Runtime, aid: str | None = None) -> dict[str, Any]:
    rows = _part(jobs, rt, aid)
    report: dict[str, Any] = {
        "project": rt.settings.project,
        "at": datetime.now(UTC).isoformat(),
        "account": aid,
        "backlogs": _part(backlogs, rt),
        "delay_queue": _part(delay_queue, rt),
        "quarantine": _part(quarantine, rt) if not aid else None,
    }
    if isinstance(rows, dict):  # the error
        report["jobs"] = rows
        return report
    report["jobs"] = {
        "total": len(rows),
        "active": sum(r["state"] == JobState.ACTIVE.value for r in rows),
        "paused": sum(r["state"] == JobState.PAUSED.value and not r["disabled_reason"] for r in rows),
        "auto_disabled": sum(bool(r["disabled_reason"]) for r in rows),
        "pending": sum(r["pending"] for r in rows),
        "waiting": sum(r["waiting"] for r in rows),
        "dead_lettered": sum(r["dead_lettered"] for r in rows),
        "failing": [r for r in rows if r["consecutive_failures"]],
        "disabled": [r for r in rows if r["disabled_reason"]],
        "with_dead_letters": [r for r in rows if r["dead_lettered"]],
        "busy": [r for r in rows if r["pending"] or r["waiting"]],
        "paced": [r for r in rows if r["learned_pace"] is not None],
    }
    return report


def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str]]) -> list[str]:
    cells = [[str(r.get(k) if r.get(k) is not None else "-") for k, _ in cols] for r in rows]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, (_, h) in enumerate(cols)]
    lines = ["  " + "  ".join(h.ljust(w) for (_, h), w in zip(cols, widths, strict=True)).rstrip()]
    lines += [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return lines


SECTIONS = [  # (title, list in the jobs part, sorted by, columns)
    ("Failing (most consecutive failures first)", "failing", "consecutive_failures",
     [("aid", "account"), ("id", "job"), ("workflow", "workflow"), ("consecutive_failures", "failures"),
      ("failing_since", "since"), ("waiting", "waiting")]),
    ("Auto-disabled", "disabled", "dead_lettered",
     [("aid", "account"), ("id", "job"), ("workflow", "workflow"), ("disabled_reason", "reason")]),
    ("Dead letters kept", "with_dead_letters", "dead_lettered",
     [("aid", "account"), ("id", "job"), ("workflow", "workflow"), ("dead_lettered", "dead-lettered")]),
    ("Pending or waiting", "busy", "pending",
     [("aid", "account"), ("id", "job"), ("workflow", "workflow"), ("pending", "pending"), ("waiting", "waiting")]),
    ("Paced by their receiver (it answered \"slow down\" in the last 10 minutes)", "paced", "pushed_back",
     [("aid", "account"), ("id", "job"), ("learned_pace", "requests/s"), ("pushed_back", "slow downs"),
      ("waiting", "waiting")]),
]  # fmt: skip


def _backlog_lines(b: dict[str, Any]) -> list[str]:
    if not b["available"]:
        return [f"  unavailable: {b['note']}"]
    if not b["subscriptions"]:
        return ["  no data points in the last 10 minutes"]
    rows = [{"sub": k, **v} for k, v in b["subscriptions"].items()]
    return _table(
        rows,
        [("sub", "subscription"), ("undelivered", "undelivered"), ("oldest_unacked_s", "oldest unacked s")],
    )


def _queue_lines(q: dict[str, Any]) -> list[str]:
    tasks = q["tasks"] if q["tasks"] is not None else "-"
    return [f"  {q['queue'] or '-'}: {tasks} task(s) waiting" + (f" ({q['note']})" if q.get("note") else "")]


def _job_lines(j: dict[str, Any], limit: int) -> list[str]:
    out = [
        f"  {j['total']} jobs: {j['active']} active, {j['paused']} paused, {j['auto_disabled']} auto-disabled; "
        f"deliveries {j['pending']} pending, {j['waiting']} waiting, {j['dead_lettered']} dead-lettered"
    ]
    for title, key, order, cols in SECTIONS:
        rows = sorted(j[key], key=lambda r, o=order: -(r[o] or 0))
        out.append(f"\n{title}: {len(rows)}")
        if rows:
            out += _table(rows[:limit], cols)
            if len(rows) > limit:
                out.append(f"  ... and {len(rows) - limit} more (--json shows all)")
    return out


def _quarantine_lines(qu: dict[str, Any]) -> list[str]:
    return [f"  {qu['total']} event(s) kept, by reason"] + [
        f"  {n:>6}  {r}" for r, n in qu["by_reason"].items()
    ]


def render(report: dict[str, Any], limit: int = 20) -> str:
    """The report as text a person reads; each list shows at most `limit` jobs, most affected first."""
    out = [
        f"sysevents status of {report['project']}"
        + (f", account {report['account']}" if report["account"] else "")
    ]
    parts = [
        ("Backlogs (Pub/Sub subscriptions)", report["backlogs"], _backlog_lines),
        ("Delay queue", report["delay_queue"], _queue_lines),
        ("Jobs", report["jobs"], lambda j: _job_lines(j, limit)),
        ("Quarantine", report["quarantine"], _quarantine_lines),
    ]
    for title, part, lines_of in parts:
        if part is None:  # not collected (one account's report has no quarantine)
            continue
        out.append(f"\n{title}")
        out += [f"  unavailable: {part['error']}"] if "error" in part else lines_of(part)
    return "\n".join(out)
