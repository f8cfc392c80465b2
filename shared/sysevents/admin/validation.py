"""Job bodies in and out of the admin API: validate (one field named per error), show, patch.

Accepted body: the seed's shape verbatim, `{"workflow": ..., "config": {...}}`, plus optional `id`
(create only), `name` and `state`. Beyond the job model (sysevents.jobs.model) every workflow checks what it
must at save time through its config's hooks (`before_save`, `on_save`: destinations, templates in the
template sandbox, export targets, sealing secrets; e.g. sysevents.sinks.webhook.saving), and shows itself
through `view` (secrets redacted). This module knows no sink.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from sysevents.admin.errors import ApiError
from sysevents.events.model import MAX_ID_CHARS
from sysevents.events.strictjson import plain
from sysevents.filters import FilterError
from sysevents.jobs.model import (
    WORKFLOWS,
    FieldError,
    InvalidJob,
    Job,
    JobState,
    Saving,
    Workflow,
    job_to_dict,
)
from sysevents.jobs.registry import spec

JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
BODY_FIELDS = ("id", "name", "workflow", "config", "state", "version")
MAX_NAME_CHARS = 200
STATES = tuple(s.value for s in JobState)


def _workflow(value: Any) -> Workflow:
    try:
        return spec(value).workflow
    except InvalidJob:
        what = "missing" if value is None else f"unknown workflow {value!r}"
        raise ApiError(400, f"{what}; valid values: {', '.join(WORKFLOWS)}", "workflow") from None


def _pydantic_error(err: ValidationError, prefix: str, model: type) -> ApiError:
    errors = err.errors(include_url=False)
    first = errors[0]
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
    msg = plain(first["msg"].removeprefix("Value error, "))
    if first["type"] == "extra_forbidden":
        msg = f"unknown field; allowed: {', '.join(model.model_fields)}"
    if len(errors) > 1:
        msg += f" (and {len(errors) - 1} more error(s))"
    cause = first.get("ctx", {}).get("error")
    position = cause.position if isinstance(cause, FilterError) else None
    return ApiError(400, msg, f"{prefix}{loc}" if loc else prefix.rstrip("."), position)


def _check_sources(sources: Any) -> None:
    if isinstance(sources, dict):
        for key, ids in sources.items():
            for i in ids if isinstance(ids, list) else ():
                if isinstance(i, str) and len(i) > MAX_ID_CHARS:
                    raise FieldError(
                        f"config.system_event_sources.{key}",
                        f"subject id is longer than {MAX_ID_CHARS} characters",
                    )


def field_error(err: FieldError) -> ApiError:
    return ApiError(err.status, err.message, err.field)


def parse_job(
    body: Any,
    *,
    aid: str,
    job_id: str,
    settings: Any,
    sandbox: Any,
    existing: Job | None = None,
    dropped: list[str] | None = None,
) -> Job:
    """A job to store from a request body; raises ApiError (400) naming the offending field. The workflow's
    save-time checks run with `sandbox` (the template sandbox: bounded time and memory) and `existing` (the
    stored job, for a change); fields whose stored secrets were not carried over are appended to
    `dropped` (a webhook job moved to another origin: sysevents.sinks.webhook.saving)."""
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    for key in body:
        if key not in BODY_FIELDS:
            raise ApiError(400, f"unknown field; allowed: {', '.join(BODY_FIELDS)}", key)
    workflow = _workflow(body.get("workflow"))
    config = body.get("config")
    if not isinstance(config, dict):
        raise ApiError(400, "missing or not a JSON object", "config")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME_CHARS):
        raise ApiError(400, f"must be a string of at most {MAX_NAME_CHARS} characters", "name")
    state = body.get("state", existing.state.value if existing else JobState.ACTIVE.value)
    if state not in STATES:
        raise ApiError(400, f"unknown state {state!r}; valid values: {', '.join(STATES)}", "state")
    model = spec(workflow).config
    saving = Saving(settings, sandbox, aid, existing.config if existing else None)
    try:
        raw = model.before_save(dict(config), saving)
        _check_sources(raw.get("system_event_sources"))
        try:
            parsed = model.model_validate(raw)
        except ValidationError as err:
            raise _pydantic_error(err, "config.", model) from None
        parsed = parsed.on_save(saving)
    except FieldError as err:
        raise field_error(err) from None
    finally:
        if dropped is not None:
            dropped.extend(saving.dropped)
    return Job(
        id=job_id,
        aid=aid,
        workflow=workflow,
        config=parsed,
        state=JobState(state),
        name=name,
        version=existing.version if existing else 1,
    )


def job_view(job: Job, keys) -> dict[str, Any]:
    """A job as the API shows it: its config's view (secrets redacted; `keys`: the sealing keys, to show the
    last characters of each value)."""
    doc = job_to_dict(job)
    doc.pop("generation", None)
    doc["config"] = job.config.view(keys)
    for key in ("created_at", "updated_at"):
        if isinstance(doc.get(key), datetime):
            doc[key] = doc[key].isoformat()
    return doc


def editable(job: Job) -> dict[str, Any]:
    """The body a PATCH is merged into: what the client may change, header values still sealed."""
    return {
        "name": job.name,
        "workflow": job.workflow.value,
        "state": job.state.value,
        "config": job.config.model_dump(mode="json", exclude_none=True),
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """JSON Merge Patch (RFC 7386): objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out
