"""Job bodies in and out of the admin API: validate (one field named per error), seal, redact, patch.

Accepted body: the seed's shape verbatim, `{"workflow": ..., "config": {...}}`, plus optional `id`
(create only), `name` and `state`. Save-time checks beyond the job model (sysevents.jobs.model): the
templates (webhook JSON; email subject, body, digest in the sandbox) are rendered against a sample event,
the webhook URL must be a public https address (sysevents.net.destinations), header names and values are
checked, and every field has a size limit.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from sysevents.admin.errors import ApiError
from sysevents.config import Settings
from sysevents.events.model import MAX_ID_CHARS
from sysevents.events.strictjson import plain
from sysevents.jobs.model import WORKFLOWS, InvalidJob, Job, JobState, Workflow, job_to_dict, spec
from sysevents.jobs.secrets import SealingError, is_sealed, redact, seal, unseal
from sysevents.net.destinations import RefusedDestination, check_url
from sysevents.sinks.bigquery.config import BigQueryConfig
from sysevents.sinks.bigquery.targets import refusal as target_refusal
from sysevents.sinks.email.config import EmailConfig
from sysevents.sinks.webhook.config import WebhookConfig, check_header_name, check_header_value
from sysevents.templates import SAMPLE_EVENT, TemplateError

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
    loc = ".".join(str(p) for p in first["loc"])
    msg = plain(first["msg"].removeprefix("Value error, "))
    if first["type"] == "extra_forbidden":
        msg = f"unknown field; allowed: {', '.join(model.model_fields)}"
    if len(errors) > 1:
        msg += f" (and {len(errors) - 1} more error(s))"
    return ApiError(400, msg, f"{prefix}{loc}" if loc else prefix.rstrip("."))


def origin_of(url: Any) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of a URL: where its secrets may go."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
    except ValueError:
        return None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def _check_headers(
    headers: Any, existing: dict[str, str], keys, *, carry: bool = True, dropped: list[str] | None = None
) -> dict[str, str]:
    """Header checks, and the round trip of redacted values: a value equal to the redaction of the
    stored one keeps the stored (sealed) value, so GET, edit, PUT never overwrites a secret with `****`.
    Without `carry` (the destination's origin changed) stored values are not kept: they are dropped (and
    named in `dropped`) unless sent again in clear."""
    if not isinstance(headers, dict):
        raise ApiError(
            400,
            'must be an object of header names to values, e.g. {"Authorization": "..."}',
            "config.headers",
        )
    out = {}
    stored = {k.lower(): v for k, v in existing.items()}
    for name, value in headers.items():
        token = (
            isinstance(name, str)
            and bool(name)
            and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
        )
        field = f"config.headers.{name}" if token else "config.headers"
        why = check_header_name(name)
        if why:
            raise ApiError(400, why, field)
        if not isinstance(value, str):
            raise ApiError(400, "header value must be a string", field)
        old = stored.get(name.lower())
        if old is not None and (value == old or value == _redacted(old, keys)):
            if carry:
                out[name] = old
            elif dropped is not None:
                dropped.append(f"config.headers.{name}")
            continue
        if is_sealed(value):
            raise ApiError(
                400, "sealed values cannot be supplied; send the value in clear (over https)", field
            )
        why = check_header_value(value)
        if why:
            raise ApiError(400, why, field)
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


def parse_job(
    body: Any,
    *,
    aid: str,
    job_id: str,
    settings: Settings,
    sandbox,
    existing: Job | None = None,
    dropped: list[str] | None = None,
) -> Job:
    """A job to store from a request body; raises ApiError(400) naming the offending field. Templates are
    checked in `sandbox` (the template sandbox: bounded time and memory).

    Secrets follow the destination: when a change moves a webhook job to another origin (scheme, host,
    port), its stored header values and signing secrets are not carried over -- only those sent again in
    clear are kept; the fields dropped are appended to `dropped`."""
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
    model = spec(workflow).config
    if issubclass(model, WebhookConfig):
        prior = existing.config if existing and isinstance(existing.config, WebhookConfig) else None
        carry = prior is not None and origin_of(config.get("webhook_url")) == origin_of(prior.webhook_url)
        if "headers" in config:
            config["headers"] = _check_headers(
                config["headers"],
                prior.headers if prior else {},
                settings.sealing_keys,
                carry=carry,
                dropped=dropped,
            )
        if "signing_secrets" in config:
            config["signing_secrets"] = _check_signing_secrets(
                config["signing_secrets"],
                prior.signing_secrets if prior else (),
                carry=carry,
                dropped=dropped,
            )
    _check_sources(config.get("system_event_sources"))
    try:
        parsed = model.model_validate(config)
    except ValidationError as err:
        raise _pydantic_error(err, "config.", model) from None
    if isinstance(parsed, EmailConfig):
        _check_email_templates(parsed, sandbox)
    if isinstance(parsed, BigQueryConfig):
        refused = target_refusal(settings, aid, parsed.project, parsed.dataset)
        if refused:
            raise ApiError(400, refused[1], refused[0])
    if isinstance(parsed, WebhookConfig):
        try:
            check_url(
                parsed.webhook_url, allow_http=settings.allow_http, allowlist=settings.destination_allowlist
            )
        except RefusedDestination as err:
            raise ApiError(400, str(err), "config.webhook_url") from None
        try:
            sandbox.render(parsed.json_template, SAMPLE_EVENT)
        except TemplateError as err:
            raise ApiError(400, str(err), "config.json_template") from None
        _check_alert_templates(parsed, sandbox)
        routing = parsed.routing_key
        if routing and is_sealed(routing) and (prior is None or routing != prior.routing_key or not carry):
            raise ApiError(400, "sealed values cannot be supplied; send the key in clear (over https)",
                           "config.routing_key")  # fmt: skip
        try:
            sealed = {k: seal(v, settings.sealing_keys) for k, v in parsed.headers.items()}
            secrets = tuple(
                v if is_sealed(v) else seal(v, settings.sealing_keys) for v in parsed.signing_secrets
            )
            if routing and not is_sealed(routing):
                routing = seal(routing, settings.sealing_keys)
        except SealingError as err:
            raise ApiError(500, f"cannot store secret values: {err}") from None
        parsed = parsed.model_copy(
            update={"headers": sealed, "signing_secrets": secrets, "routing_key": routing}
        )
    return Job(
        id=job_id,
        aid=aid,
        workflow=workflow,
        config=parsed,
        state=JobState(state),
        name=name,
        version=existing.version if existing else 1,
    )


def _check_alert_templates(config: WebhookConfig, sandbox) -> None:
    """A webhook alert job's digest and resolve templates, rendered against a sample digest and event."""
    from sysevents.alerts.render import sample_digest

    samples = (
        (
            "digest_template",
            config.digest_template,
            {"digest": sample_digest({k: "x" for k in (config.grouping.by if config.grouping else ())})},
        ),
        ("resolve_template", config.resolve_template, {"event": SAMPLE_EVENT, "alert": SAMPLE_EVENT}),
    )
    for name, template, scope in samples:
        if not template:
            continue
        try:
            sandbox.render_value(template, scope, name=name)
        except TemplateError as err:
            raise ApiError(400, f"does not render against a sample: {err}", f"config.{name}") from None


def _check_email_templates(config: EmailConfig, sandbox) -> None:
    """Render the email job's templates against a sample event, in the template sandbox."""
    from sysevents.alerts.render import InvalidTemplate
    from sysevents.alerts.render import check as check_email

    try:
        check_email(
            config.subject_template,
            config.body_template,
            config.digest_template,
            config.grouping.by if config.grouping else (),
            evaluate=sandbox.render_value,
        )
    except InvalidTemplate as err:
        raise ApiError(400, f"does not render against a sample event: {err}", f"config.{err.field}") from None


SECRET_SET = "(set)"  # noqa: S105 - a placeholder shown instead of secrets
"""How job_view shows a secret-named config field that has a value."""


def _check_signing_secrets(
    value: Any, stored: tuple[str, ...], *, carry: bool = True, dropped: list[str] | None = None
) -> Any:
    """`"(set)"` (as GET shows them) keeps the stored secrets; sealed values are accepted only when they
    are the stored ones (a PATCH merges into the stored config); anything else is validated as given.
    Without `carry` (the destination's origin changed) the stored secrets are dropped."""
    if value == SECRET_SET:
        if not carry and stored and dropped is not None:
            dropped.append("config.signing_secrets")
        return list(stored) if carry else []
    values = [value] if isinstance(value, str) else value
    if isinstance(values, list):
        kept = []
        for v in values:
            if isinstance(v, str) and is_sealed(v):
                if v not in stored:
                    raise ApiError(
                        400,
                        "sealed values cannot be supplied; send the secret in clear (over https)",
                        "config.signing_secrets",
                    )
                if not carry:
                    if dropped is not None and "config.signing_secrets" not in dropped:
                        dropped.append("config.signing_secrets")
                    continue
            kept.append(v)
        return kept
    return value


def _redacted(stored: str, keys) -> str:
    try:
        return redact(unseal(stored, keys))
    except SealingError:
        return "****"


def job_view(job: Job, keys) -> dict[str, Any]:
    """A job as the API shows it: header values and any secret-named config field redacted (`keys`: the
    sealing keys, to show the last characters of each value)."""
    doc = job_to_dict(job)
    doc.pop("generation", None)
    config = doc["config"]
    if isinstance(config.get("headers"), dict):
        config["headers"] = {k: _redacted(v, keys) for k, v in config["headers"].items()}
    if isinstance(config.get("routing_key"), str):
        config["routing_key"] = _redacted(config["routing_key"], keys)
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
