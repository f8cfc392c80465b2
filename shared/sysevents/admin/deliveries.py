"""Admin API: a job's deliveries (attempt log, dead letters), its counters, and replay; every workflow."""

from __future__ import annotations

from flask import Response

from sysevents.admin.errors import ApiError, json_response
from sysevents.admin.http import MAX_PAGE_SIZE, Call
from sysevents.delivery.replay import replay


def _time_arg(call: Call, name: str):
    from datetime import UTC, datetime

    raw = call.request.args.get(name) if call.body is None else (call.body or {}).get(name)
    if raw is None:
        return None
    try:
        t = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "must be an ISO 8601 time, e.g. 2026-01-01T00:00:00Z", name) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def job_deliveries(call: Call, aid: str, job_id: str) -> Response:
    """The job's attempt log, newest first, and its dead-lettered deliveries."""
    job = call.rt.jobs.find(aid, job_id)
    dlog = call.rt.accounting
    attempts = dlog.attempts(
        job, call.query_int("page_size", 50, 1, MAX_PAGE_SIZE), _time_arg(call, "before")
    )
    dead = [
        {
            k: (v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in d.items()
            if k not in ("data", "attributes", "expire_at")
        }
        for d in dlog.dead_letters(job, limit=100)
    ]
    return json_response(
        {"attempts": attempts, "dead_letters": dead, "next_before": attempts[-1]["at"] if attempts else None}
    )


def job_stats(call: Call, aid: str, job_id: str) -> Response:
    """received = delivered + accepted + filtered + dead_lettered + pending (docs/deliveries.md, Accounting)."""
    job = call.rt.jobs.find(aid, job_id)
    return json_response(
        {
            "id": job.id,
            "state": job.state.value,
            "disabled_reason": job.disabled_reason,
            **call.rt.accounting.stats(job),
        }
    )


def replay_job(call: Call, aid: str, job_id: str) -> Response:
    """Re-deliver the job's dead-lettered deliveries (all, or since a time), current or chosen template."""
    body = call.body if isinstance(call.body, dict) else {}
    job = call.rt.jobs.find(aid, job_id)
    version = body.get("template_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ApiError(400, "must be a job version number", "template_version")
    if version is not None and not hasattr(job.config, "json_template"):  # webhook jobs have templates
        raise ApiError(400, "template_version applies to webhook jobs", "template_version")
    ids = replay(call.rt, job, since=_time_arg(call, "since"), template_version=version)
    return json_response({"replayed": len(ids), "webhook_ids": ids}, 202)
