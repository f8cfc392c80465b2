"""Job bodies in and out of the admin API: validate (one field named per error), seal, redact, patch.

Accepted body: the seed's shape verbatim, `{"workflow": ..., "config": {...}}`, plus optional `id`
(create only), `name` and `state`. Save-time checks beyond the job model (sysevents.jobs): the
templates (webhook JSON; email subject, body, digest in the sandbox) are rendered against a sample event,
the webhook URL must be a public https address (sysevents.destinations), header names and values are
checked, and every field has a size limit.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ..config import Settings
from ..destinations import RefusedDestination, check_url
from ..events import MAX_ID_CHARS
from ..jobs import (
    CONFIG_OF_WORKFLOW,
    WORKFLOWS,
    EmailConfig,
    Job,
    JobState,
    WebhookConfig,
    Workflow,
    job_to_dict,
)
from ..secrets import SealingError, is_sealed, redact, seal, unseal
from ..templates import TemplateError, check
from .errors import ApiError

JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
BODY_FIELDS = ("id", "name", "workflow", "config", "state", "version")
MAX_NAME_CHARS = 200
MAX_HEADER_NAME_CHARS = 256
MAX_HEADER_VALUE_CHARS = 2048  # sealed, it still fits the stored job's 4096-character limit
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "upgrade",
        "expect",
        "proxy-authorization",
        "proxy-connection",
        "trailer",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
"""Set by the sink or by HTTP itself; a job may not override them."""
STATES = tuple(s.value for s in JobState)


def _workflow(value: Any) -> Workflow:
    try:
        return Workflow(value)
    except ValueError:
        what = "missing" if value is None else f"unknown workflow {value!r}"
        raise ApiError(400, f"{what}; valid values: {', '.join(WORKFLOWS)}", "workflow") from None


def _pydantic_error(err: ValidationError, prefix: str, model: type) -> ApiError:
    errors = err.errors(include_url=False)
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = f"unknown field; allowed: {', '.join(model.model_fields)}"
    if len(errors) > 1:
        msg += f" (and {len(errors) - 1} more error(s))"
    return ApiError(400, msg, f"{prefix}{loc}" if loc else prefix.rstrip("."))


def _check_headers(headers: Any, existing: dict[str, str]) -> dict[str, str]:
    """Header checks, and the round trip of redacted values: a value equal to the redaction of the
    stored one keeps the stored (sealed) value, so GET, edit, PUT never overwrites a secret with `****`."""
    if not isinstance(headers, dict):
        raise ApiError(
            400,
            'must be an object of header names to values, e.g. {"Authorization": "..."}',
            "config.headers",
        )
    out = {}
    stored = {k.lower(): v for k, v in existing.items()}
    for name, value in headers.items():
        field = f"config.headers.{name}"
        if len(name) > MAX_HEADER_NAME_CHARS:
            raise ApiError(400, f"header name is longer than {MAX_HEADER_NAME_CHARS} characters", field)
        if name.lower() in RESERVED_HEADERS:
            raise ApiError(
                400, f"header {name!r} is set by sysevents or by HTTP and cannot be configured", field
            )
        if not isinstance(value, str):
            raise ApiError(400, "header value must be a string", field)
        old = stored.get(name.lower())
        if old is not None and (value == old or value == _redacted(old)):
            out[name] = old
            continue
        if is_sealed(value):
            raise ApiError(
                400, "sealed values cannot be supplied; send the value in clear (over https)", field
            )
        if len(value) > MAX_HEADER_VALUE_CHARS:
            raise ApiError(400, f"header value is longer than {MAX_HEADER_VALUE_CHARS} characters", field)
        if not all(" " <= c <= "~" or c == "\t" for c in value):
            raise ApiError(400, "header value must be printable ASCII (no control characters)", field)
        out[name] = value
    return out


def _check_sources(sources: Any) -> None:
    if isinstance(sources, dict):
        for key, ids in sources.items():
            for i in ids if isinstance(ids, list) else ():
                if isinstance(i, str) and len(i) > MAX_ID_CHARS:
                    raise ApiError(
                        400,
                        f"subject id is longer than {MAX_ID_CHARS} characters",
                        f"config.system_event_sources.{key}",
                    )


def parse_job(body: Any, *, aid: str, job_id: str, settings: Settings, existing: Job | None = None) -> Job:
    """A job to store from a request body; raises ApiError(400) naming the offending field."""
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
    config = dict(config)
    model = CONFIG_OF_WORKFLOW[workflow]
    if issubclass(model, WebhookConfig):
        prior = existing.config if existing and isinstance(existing.config, WebhookConfig) else None
        if "headers" in config:
            config["headers"] = _check_headers(config["headers"], prior.headers if prior else {})
        if "signing_secrets" in config:
            config["signing_secrets"] = _check_signing_secrets(
                config["signing_secrets"], prior.signing_secrets if prior else ()
            )
    _check_sources(config.get("system_event_sources"))
    try:
        parsed = model.model_validate(config)
    except ValidationError as err:
        raise _pydantic_error(err, "config.", model) from None
    if isinstance(parsed, EmailConfig):
        _check_email_templates(parsed)
    if isinstance(parsed, WebhookConfig):
        try:
            check_url(
                parsed.webhook_url, allow_http=settings.allow_http, allowlist=settings.destination_allowlist
            )
        except RefusedDestination as err:
            raise ApiError(400, str(err), "config.webhook_url") from None
        try:
            check(parsed.json_template)
        except TemplateError as err:
            raise ApiError(400, str(err), "config.json_template") from None
        try:
            sealed = {k: seal(v, settings.sealing_keys) for k, v in parsed.headers.items()}
            secrets = tuple(
                v if is_sealed(v) else seal(v, settings.sealing_keys) for v in parsed.signing_secrets
            )
        except SealingError as err:
            raise ApiError(500, f"cannot store secret values: {err}") from None
        parsed = parsed.model_copy(update={"headers": sealed, "signing_secrets": secrets})
    return Job(
        id=job_id,
        aid=aid,
        workflow=workflow,
        config=parsed,
        state=JobState(state),
        name=name,
        version=existing.version if existing else 1,
    )


def _check_email_templates(config: EmailConfig) -> None:
    """Render the email job's templates against a sample event, in the template sandbox."""
    from ..alerts.render import InvalidTemplate
    from ..alerts.render import check as check_email

    try:
        check_email(
            config.subject_template,
            config.body_template,
            config.digest_template,
            config.grouping.by if config.grouping else (),
        )
    except InvalidTemplate as err:
        raise ApiError(400, f"does not render against a sample event: {err}", f"config.{err.field}") from None


SECRET_SET = "(set)"  # noqa: S105 - a placeholder shown instead of secrets
"""How job_view shows a secret-named config field that has a value."""


def _check_signing_secrets(value: Any, stored: tuple[str, ...]) -> Any:
    """`"(set)"` (as GET shows them) keeps the stored secrets; sealed values are accepted only when they
    are the stored ones (a PATCH merges into the stored config); anything else is validated as given."""
    if value == SECRET_SET:
        return list(stored)
    values = [value] if isinstance(value, str) else value
    if isinstance(values, list):
        for v in values:
            if isinstance(v, str) and is_sealed(v) and v not in stored:
                raise ApiError(
                    400,
                    "sealed values cannot be supplied; send the secret in clear (over https)",
                    "config.signing_secrets",
                )
    return value


def _redacted(stored: str) -> str:
    try:
        return redact(unseal(stored))
    except SealingError:
        return "****"


def job_view(job: Job) -> dict[str, Any]:
    """A job as the API shows it: header values and any secret-named config field redacted."""
    doc = job_to_dict(job)
    config = doc["config"]
    if isinstance(config.get("headers"), dict):
        config["headers"] = {k: _redacted(v) for k, v in config["headers"].items()}
    for key, value in list(config.items()):
        if "secret" in key.lower() and value:
            config[key] = SECRET_SET
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
