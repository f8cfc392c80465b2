"""What a webhook job is checked for when it is saved, and how its secrets are kept and shown.

Called through the config's save-time hooks (`WebhookConfig.before_save`, `on_save`, `view`; the admin API
runs them, loading a job never does):
- **secrets follow the destination**: a header value, signing secret or routing key sent back as the API
  showed it (redacted, or `(set)`) keeps the stored, sealed value -- so GET, edit, PUT never overwrites a
  secret with `****` -- but only while the destination's origin (scheme, host, port) stays the same; a
  change that moves the job elsewhere drops them (named in `Saving.dropped`) unless they are sent again
  in clear. Sealed values are never accepted from a client.
- the URL must be a public https address (sysevents.net.destinations); the job's templates render against
  samples in the template sandbox; then header values, signing secrets and the routing key are sealed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sysevents.jobs.model import SECRET_SET, FieldError, Saving
from sysevents.jobs.secrets import SealingError, is_sealed, redact, seal, unseal
from sysevents.sinks.webhook.headers import check_header_name, check_header_value

SEALED_REFUSED = "sealed values cannot be supplied; send the {what} in clear (over https)"


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


def redacted(stored: str, keys: Any) -> str:
    """A stored (sealed) value as the API shows it: its last characters only."""
    try:
        return redact(unseal(stored, keys))
    except SealingError:
        return "****"


def _header_field(name: Any) -> str:
    token = (
        isinstance(name, str) and bool(name) and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    )
    return f"config.headers.{name}" if token else "config.headers"


def check_headers(headers: Any, existing: dict[str, str], keys: Any, carry: bool, dropped: list[str]) -> dict:
    """Header checks, and the round trip of redacted values (see the module docstring)."""
    if not isinstance(headers, dict):
        raise FieldError(
            "config.headers", 'must be an object of header names to values, e.g. {"Authorization": "..."}'
        )
    out = {}
    stored = {k.lower(): v for k, v in existing.items()}
    for name, value in headers.items():
        field = _header_field(name)
        why = check_header_name(name)
        if why:
            raise FieldError(field, why)
        if not isinstance(value, str):
            raise FieldError(field, "header value must be a string")
        old = stored.get(name.lower())
        if old is not None and (value == old or value == redacted(old, keys)):
            if carry:
                out[name] = old
            else:
                dropped.append(f"config.headers.{name}")
            continue
        if is_sealed(value):
            raise FieldError(field, SEALED_REFUSED.format(what="value"))
        why = check_header_value(value)
        if why:
            raise FieldError(field, why)
        out[name] = value
    return out


def check_signing_secrets(value: Any, stored: tuple[str, ...], carry: bool, dropped: list[str]) -> Any:
    """`"(set)"` (as GET shows them) keeps the stored secrets; sealed values are accepted only when they
    are the stored ones (a PATCH merges into the stored config); anything else is validated as given.
    Without `carry` (the destination's origin changed) the stored secrets are dropped."""
    if value == SECRET_SET:
        if not carry and stored:
            dropped.append("config.signing_secrets")
        return list(stored) if carry else []
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list):
        return value
    kept = []
    for v in values:
        if isinstance(v, str) and is_sealed(v):
            if v not in stored:
                raise FieldError("config.signing_secrets", SEALED_REFUSED.format(what="secret"))
            if not carry:
                if "config.signing_secrets" not in dropped:
                    dropped.append("config.signing_secrets")
                continue
        kept.append(v)
    return kept


def _prior(model: type, saving: Saving) -> Any:
    """The job's stored webhook config (a change of a webhook job), else None."""
    return saving.prior if isinstance(saving.prior, model) else None


def before_save(model: type, raw: dict[str, Any], saving: Saving) -> dict[str, Any]:
    """The client's config (for `model`, the webhook config) with redacted secrets replaced by the stored
    ones (while the origin stays)."""
    prior = _prior(model, saving)
    carry = prior is not None and origin_of(raw.get("webhook_url")) == origin_of(prior.webhook_url)
    out = dict(raw)
    keys = saving.settings.sealing_keys
    if "headers" in out:
        out["headers"] = check_headers(
            out["headers"], prior.headers if prior else {}, keys, carry, saving.dropped
        )
    if "signing_secrets" in out:
        stored = prior.signing_secrets if prior else ()
        out["signing_secrets"] = check_signing_secrets(out["signing_secrets"], stored, carry, saving.dropped)
    return out


def _check_templates(config: Any, sandbox: Any, aid: str) -> None:
    """The job's templates, rendered against a sample event, digest and resolution (the account's turns)."""
    from sysevents.alerts.digest import sample_digest
    from sysevents.templates import SAMPLE_EVENT, TemplateError

    try:
        sandbox.render(config.json_template, SAMPLE_EVENT, aid=aid)
    except TemplateError as err:
        raise FieldError("config.json_template", str(err)) from None
    group = {k: "x" for k in (config.grouping.by if config.grouping else ())}
    samples = (
        ("digest_template", config.digest_template, {"digest": sample_digest(group)}),
        ("resolve_template", config.resolve_template, {"event": SAMPLE_EVENT, "alert": SAMPLE_EVENT}),
    )
    for name, template, scope in samples:
        if not template:
            continue
        try:
            sandbox.render_value(template, scope, name=name, aid=aid)
        except TemplateError as err:
            raise FieldError(f"config.{name}", f"does not render against a sample: {err}") from None


def on_save(config: Any, saving: Saving) -> Any:
    """Destination and templates checked; header values, signing secrets and the routing key sealed."""
    from sysevents.net.destinations import RefusedDestination, check_url

    s = saving.settings
    try:
        check_url(config.webhook_url, allow_http=s.allow_http, allowlist=s.destination_allowlist)
    except RefusedDestination as err:
        raise FieldError("config.webhook_url", str(err)) from None
    _check_templates(config, saving.sandbox, saving.aid)
    prior = _prior(type(config), saving)
    routing = config.routing_key
    carried = prior is not None and origin_of(config.webhook_url) == origin_of(prior.webhook_url)
    if routing and is_sealed(routing) and (prior is None or routing != prior.routing_key or not carried):
        raise FieldError("config.routing_key", SEALED_REFUSED.format(what="key"))
    try:
        headers = {k: seal(v, s.sealing_keys) for k, v in config.headers.items()}
        secrets = tuple(v if is_sealed(v) else seal(v, s.sealing_keys) for v in config.signing_secrets)
        if routing and not is_sealed(routing):
            routing = seal(routing, s.sealing_keys)
    except SealingError as err:
        raise FieldError(None, f"cannot store secret values: {err}", status=500) from None
    return config.model_copy(update={"headers": headers, "signing_secrets": secrets, "routing_key": routing})


def view(doc: dict[str, Any], keys: Any) -> dict[str, Any]:
    """Header values and the routing key shown redacted (the generic view already hides `*secret*`)."""
    if isinstance(doc.get("headers"), dict):
        doc["headers"] = {k: redacted(v, keys) for k, v in doc["headers"].items()}
    if isinstance(doc.get("routing_key"), str):
        doc["routing_key"] = redacted(doc["routing_key"], keys)
    return doc
