"""Admin API: jobs (create, read, replace, patch, pause, resume, delete, preview, test)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from flask import Response

from sysevents.admin import lifecycle
from sysevents.admin.errors import ApiError, json_response
from sysevents.admin.http import MAX_PAGE_SIZE, Call
from sysevents.admin.validation import JOB_ID, STATES, editable, job_view, merge_patch, parse_job
from sysevents.alerts import watch as conditions
from sysevents.delivery.replay import replay
from sysevents.events.model import InvalidEvent, event_from_dict
from sysevents.jobs.model import WORKFLOWS, Job, JobState
from sysevents.jobs.origin import FIELD as ORIGIN_FIELD
from sysevents.jobs.store import JobExists, Limits, TooManyFilterEntries, TooManyJobs, VersionConflict
from sysevents.templates import SAMPLE_EVENT, TemplateError

log = logging.getLogger("sysevents.admin")


def job_response(call: Call, job: Job, status: int = 200, **extra: Any) -> Response:
    if getattr(job.config, "threshold", None) is not None or getattr(job.config, "absence", None) is not None:
        extra["condition_state"] = conditions.view(call.rt, job)  # armed / firing since / last seen
    if job.sink == "email":  # who of its recipients receives its alerts (sysevents.consent.store)
        extra["recipients"] = [r.view() for r in call.rt.consent.states(job.aid, job.config.recipients)]
    return json_response(
        {**job_view(job, call.rt.settings.sealing_keys), **extra}, status, {"ETag": f'"{job.version}"'}
    )


def list_jobs(call: Call, aid: str) -> Response:
    workflow = call.request.args.get("workflow")
    if workflow and workflow not in WORKFLOWS:
        raise ApiError(
            400, f"unknown workflow {workflow!r}; valid values: {', '.join(WORKFLOWS)}", "workflow"
        )
    state = call.request.args.get("state")
    if state and state not in STATES:
        raise ApiError(400, f"unknown state {state!r}; valid values: {', '.join(STATES)}", "state")
    jobs, token = call.rt.jobs.page(
        aid,
        workflow=workflow,
        state=state,
        limit=call.query_int("page_size", 50, 1, MAX_PAGE_SIZE),
        after=call.query_token("page_token", JOB_ID),
    )
    keys = call.rt.settings.sealing_keys
    return json_response({"jobs": [job_view(j, keys) for j in jobs], "next_page_token": token})


def create_job(call: Call, aid: str) -> Response:
    body = call.body
    job_id = (
        body.get("id") if isinstance(body, dict) and body.get("id") is not None else f"job-{uuid.uuid4().hex}"
    )
    if not isinstance(job_id, str) or not JOB_ID.match(job_id):
        raise ApiError(
            400, "must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit", "id"
        )
    if isinstance(body, dict) and "version" in body:
        raise ApiError(400, "a new job starts at version 1; do not send version", "version")
    job = parse_job(body, aid=aid, job_id=job_id, settings=call.rt.settings, sandbox=call.rt.sandbox)
    if call.dry_run():
        return job_response(call, job, 200, dry_run=True)
    try:
        job = call.rt.jobs.create(job, limits(call.rt.settings))
    except JobExists as err:
        raise ApiError(409, str(err), "id") from None
    except (TooManyJobs, TooManyFilterEntries) as err:
        raise ApiError(409, str(err)) from None
    lifecycle.publish(call.rt, lifecycle.lifecycle_event(job, *lifecycle.describe(None, job), call.principal))
    _arm(call, job)
    return job_response(call, job, 201)


def _arm(call: Call, job: Job) -> None:
    """An absence job is armed when it is saved, so that it fires even if no expected event ever comes
    (the sweep arms it later if this fails)."""
    try:
        conditions.arm(call.rt, job)
    except Exception:
        log.exception(
            "admin: could not arm the absence condition of job %s/%s (the sweep will)", job.aid, job.id
        )


def get_job(call: Call, aid: str, job_id: str) -> Response:
    return job_response(call, call.rt.jobs.find(aid, job_id))


def limits(settings) -> Limits:
    """What an account's jobs may add up to (the job store checks them as it writes)."""
    return Limits(jobs=settings.max_jobs_per_account, filter_entries=settings.max_filter_entries_per_account)


def _change(
    call: Call, aid: str, job_id: str, make: Callable[[Job], Job], dropped: list[str] | None = None
) -> Response:
    expected = call.expected_version()
    extra = {}
    if call.dry_run():
        current = call.rt.jobs.find(aid, job_id)
        if expected is not None and expected != current.version:
            raise VersionConflict(job_id, current.version, expected)
        job = make(current)
        if dropped:
            extra["secrets_dropped"] = sorted(set(dropped))
        return job_response(call, job, 200, dry_run=True, **extra)
    try:
        old, new = call.rt.jobs.change(aid, job_id, make, expected, limits(call.rt.settings))
    except TooManyFilterEntries as err:
        raise ApiError(409, str(err)) from None
    lifecycle.publish(call.rt, lifecycle.lifecycle_event(new, *lifecycle.describe(old, new), call.principal))
    _arm(call, new)
    if dropped:  # the destination moved: its stored secrets stayed behind (parse_job)
        extra["secrets_dropped"] = sorted(set(dropped))
    return job_response(call, new, **extra)


def _without_version(body: Any) -> Any:
    return {k: v for k, v in body.items() if k != "version"} if isinstance(body, dict) else body


def _reparse(call: Call, aid: str, job_id: str, body_of: Callable[[Job], Any]) -> Response:
    """A change of the job to what `body_of(the stored job)` says, validated as a new body would be."""
    dropped: list[str] = []

    def make(old: Job) -> Job:
        return parse_job(body_of(old), aid=aid, job_id=job_id, settings=call.rt.settings, sandbox=call.rt.sandbox,
                         existing=old, dropped=dropped)  # fmt: skip

    return _change(call, aid, job_id, make, dropped)


def replace_job(call: Call, aid: str, job_id: str) -> Response:
    body = _without_version(call.body)
    if isinstance(body, dict) and body.get("id", job_id) != job_id:
        raise ApiError(400, f"does not match the job id in the path ({job_id!r})", "id")
    return _reparse(call, aid, job_id, lambda old: body)


def patch_job(call: Call, aid: str, job_id: str) -> Response:
    patch = _without_version(call.body)
    if not isinstance(patch, dict):
        raise ApiError(400, "request body must be a JSON merge patch object")
    if "id" in patch:
        raise ApiError(400, "a job's id cannot change", "id")
    return _reparse(call, aid, job_id, lambda old: merge_patch(editable(old), patch))


def set_state(state: JobState) -> Callable[..., Response]:
    def handler(call: Call, aid: str, job_id: str) -> Response:
        return _change(call, aid, job_id, lambda old: old.model_copy(update={"state": state}))

    handler.__name__ = f"{state.value}_job"
    return handler


def resume_job(call: Call, aid: str, job_id: str) -> Response:
    """Resume a paused job; `{"replay": true}` also re-delivers what was dead-lettered while it was paused
    (since sysevents auto-disabled it, or every dead letter when a person paused it)."""
    body = call.body if call.body is not None else {}
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object (or empty)")
    unknown = sorted(set(body) - {"replay", "version"})
    if unknown:
        raise ApiError(400, "unknown field; resume takes replay (and version)", unknown[0])
    again = body.get("replay", False)
    if not isinstance(again, bool):
        raise ApiError(400, "must be true or false", "replay")
    before = call.rt.jobs.find(aid, job_id)
    since = before.disabled_at if before.state is JobState.PAUSED else None
    active = {"state": JobState.ACTIVE, "disabled_reason": None, "disabled_at": None}
    response = _change(call, aid, job_id, lambda old: old.model_copy(update=active))
    if not again or call.dry_run():
        return response
    job = call.rt.jobs.find(aid, job_id)
    ids = replay(call.rt, job, since=since)
    payload = json.loads(response.get_data())
    payload["replayed"] = len(ids)
    response.set_data(json.dumps(payload))
    return response


def delete_job(call: Call, aid: str, job_id: str) -> Response:
    old = call.rt.jobs.remove(aid, job_id, call.expected_version())
    lifecycle.publish(call.rt, lifecycle.lifecycle_event(old, *lifecycle.describe(old, None), call.principal))
    forget(call.rt, old)
    return json_response({"id": job_id, "deleted": True, "version": old.version})


def forget(rt, job: Job) -> None:
    """Delete what was kept for a deleted job (attempt log, counters, dead letters, backfill run). Its
    generation is gone either way: a job created again with the same id starts from nothing."""
    try:
        rt.accounting.forget(job)
        rt.runs.forget(job)
    except Exception:  # the job is deleted; leftovers expire by TTL and are never read again
        log.exception("admin: could not delete the state of job %s/%s", job.aid, job.id)


def event_arg(body: dict, aid: str) -> dict:
    given = body.get("event")
    if given is None:
        sample = json.loads(json.dumps(SAMPLE_EVENT))
        sample["data"]["aid"] = aid
        sample["source"] = f"//sysevents/accounts/{aid}"
        return sample
    try:
        return event_from_dict(given, fallback_id="preview").to_cloudevent()
    except InvalidEvent as err:
        raise ApiError(400, err.reason, "event") from None


def preview_job(call: Call, aid: str, job_id: str) -> Response:
    """Render the job's template (or `json_template` from the body) against the body's event or a sample."""
    body = call.body if isinstance(call.body, dict) else {}
    job = call.rt.jobs.find(aid, job_id)
    template = body.get("json_template")
    if template is None:  # the job's own template, for a workflow that has one (webhook jobs)
        template = getattr(job.config, "json_template", None)
    return _preview(call, aid, body, template)


def preview_template(call: Call, aid: str) -> Response:
    """Render `json_template` from the body (no job needed) against the body's event or a sample."""
    body = call.body if isinstance(call.body, dict) else {}
    return _preview(call, aid, body, body.get("json_template"))


def _preview(call: Call, aid: str, body: dict, template: Any) -> Response:
    if template is not None and not isinstance(template, str):
        raise ApiError(400, "must be a string (a Jsonnet template)", "json_template")
    event = event_arg(body, aid)
    try:
        rendered = call.rt.sandbox.render(
            template, event, max_output_bytes=call.rt.settings.template_max_output_bytes, aid=aid
        )
    except TemplateError as err:
        raise ApiError(422, str(err), "json_template") from None
    return json_response({"rendered": json.loads(rendered), "event": event})


TEST_RESERVED = frozenset({"aid", "id", "event_id", "time", "actor", "test", ORIGIN_FIELD})
"""Fields of a test event that are sysevents' own (its account, identity, time and marks)."""


def test_job(call: Call, aid: str, job_id: str) -> Response:
    """Publish a test event the job's filter selects; ingest delivers it to this job only."""
    body = call.body if isinstance(call.body, dict) else {}
    overrides = body.get("event") or {}
    if not isinstance(overrides, dict):
        raise ApiError(400, "must be an object of event data fields to override", "event")
    for name in overrides:
        if name in TEST_RESERVED:
            raise ApiError(
                400, f"{name} is set by sysevents for a test event and cannot be overridden", f"event.{name}"
            )
    job = call.rt.jobs.find(aid, job_id)
    if job.state is not JobState.ACTIVE:
        raise ApiError(409, f"job {job_id!r} is {job.state.value}; resume it to test it", "state")
    try:
        event = lifecycle.test_event(job, overrides)
    except InvalidEvent as err:
        raise ApiError(400, err.reason, "event") from None
    f = job.filter
    if (f.content and not f.content.matches(event)) or any(x.matches(event) for x in f.excludes):
        raise ApiError(
            422, "the job's filter or exclude drops this test event: give event fields it selects", "event"
        )
    ids = lifecycle.publish(call.rt, event)
    if not ids:
        raise ApiError(503, "could not publish the test event; try again")
    return json_response({"event": event.to_cloudevent(), "message_id": ids[0]}, 202)
