"""Admin API: a job previewed against the account's audit log, before it is saved (or as it is saved).

`POST /accounts/{aid}/jobs/preview` takes a job body (validated exactly as creating it would, nothing
stored) or the id of a saved job, and a past range (`start`, `end`; default the last
SYSEVENTS_PREVIEW_DEFAULT_DAYS days). It reads the account's events in the range from the audit table (a
bounded BigQuery scan: sysevents.auditlog.history) and answers what the job would have matched, delivered
and notified (sysevents.preview.report). Only the caller's account is ever read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response

from sysevents.admin.errors import ApiError, json_response
from sysevents.admin.http import Call
from sysevents.admin.validation import JOB_ID, parse_job
from sysevents.jobs.model import Job

PREVIEW_FIELDS = ("job", "job_id", "start", "end")


def _job_of(call: Call, aid: str, body: dict[str, Any]) -> Job:
    job_id, given = body.get("job_id"), body.get("job")
    if (job_id is None) == (given is None):
        raise ApiError(400, "give either job (a job body, as for creating one) or job_id (a saved job)")
    if job_id is not None:
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise ApiError(400, "not a job id", "job_id")
        return call.rt.jobs.find(aid, job_id)
    if isinstance(given, dict) and "id" in given:
        given = {k: v for k, v in given.items() if k != "id"}
    try:
        return parse_job(given, aid=aid, job_id="preview", settings=call.rt.settings, sandbox=call.rt.sandbox)
    except ApiError as err:
        field = f"job.{err.field}" if err.field else "job"
        raise ApiError(err.status, err.message, field, err.position) from None


def preview_history(call: Call, aid: str) -> Response:
    """What the job would have matched and sent over a past range of the account's audit log."""
    from sysevents.auditlog.history import HistoryTooLarge, InvalidRange, bounded_range, history, parse_time
    from sysevents.auditlog.schema import audit_table
    from sysevents.preview.report import preview

    body = call.body
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    for key in body:
        if key not in PREVIEW_FIELDS:
            raise ApiError(400, f"unknown field; allowed: {', '.join(PREVIEW_FIELDS)}", key)
    job = _job_of(call, aid, body)
    s = call.rt.settings
    try:
        start, end = bounded_range(
            parse_time(body.get("start"), "start"),
            parse_time(body.get("end"), "end"),
            now=datetime.now(UTC),
            default_days=s.preview_default_days,
            max_days=s.preview_max_days,
        )
        past = history(aid, start, end, limit=s.preview_max_events, client=call.rt.bigquery,
                       table=audit_table(s), max_bytes=s.preview_max_bytes)  # fmt: skip
    except InvalidRange as err:
        raise ApiError(400, err.reason, err.field) from None
    except HistoryTooLarge:
        raise ApiError(422, "the range holds more audit log than one preview may read; preview a shorter one",
                       "start") from None  # fmt: skip
    return json_response({"job": {"id": None if body.get("job") else job.id, "workflow": job.workflow.value},
                          **preview(job, past, scale=s.time_scale)})  # fmt: skip
