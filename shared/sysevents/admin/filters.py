"""Content filters in the admin API: check a filter (and exclusions) as a job's config would, before saving;
preview what a job's selection would have matched in the account's audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response
from pydantic import ValidationError

from sysevents.admin.errors import ApiError, json_response
from sysevents.admin.http import Call
from sysevents.admin.jobs import event_arg
from sysevents.admin.validation import pydantic_error
from sysevents.events.model import event_from_dict
from sysevents.filters import MAX_EXCLUDES, FilterError, compile_filter
from sysevents.jobs.model import EventFilter, FilterConfig
from sysevents.jobs.preview import preview


def _compiled(field: str, text: Any):
    if not isinstance(text, str):
        raise ApiError(400, "must be a string (a CEL expression)", field)
    try:
        return compile_filter(text)
    except FilterError as err:
        raise ApiError(422, str(err), field, err.position) from None


def validate_filter(call: Call, aid: str) -> Response:
    """Compile `filter` and each of `exclude`; with `event`, say whether a job with them would get it."""
    body = call.body if isinstance(call.body, dict) else {}
    if body.get("filter") is None and body.get("exclude") is None:
        raise ApiError(400, "give a filter (a CEL expression) or exclude (a list of them)", "filter")
    content = None if body.get("filter") is None else _compiled("filter", body["filter"])
    exclude = body.get("exclude") or []
    if not isinstance(exclude, list) or len(exclude) > MAX_EXCLUDES:
        raise ApiError(400, f"must be a list of at most {MAX_EXCLUDES} CEL expressions", "exclude")
    excludes = [_compiled(f"exclude[{i}]", text) for i, text in enumerate(exclude)]
    doc: dict[str, Any] = {"ok": True}
    if body.get("event") is not None:
        event = event_from_dict(event_arg(body, aid))
        doc["matches"] = (content is None or content.matches(event)) and not any(
            x.matches(event) for x in excludes
        )
    return json_response(doc)


MAX_PREVIEW_EVENTS = 10_000
"""Most audit-log events one preview reads (newest first within its range); past it the preview says
`truncated` and covers the newest MAX_PREVIEW_EVENTS only."""
MAX_PREVIEW_SAMPLE = 50


def _range(body: dict) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    out = []
    for key, default in (("start", now - timedelta(days=7)), ("end", now)):
        value = body.get(key)
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00")) if value else default
        except (AttributeError, ValueError):
            raise ApiError(400, "must be an ISO 8601 time, e.g. 2026-01-01T00:00:00Z", key) from None
        out.append(when if when.tzinfo else when.replace(tzinfo=UTC))
    if out[1] <= out[0]:
        raise ApiError(400, "must be after start", "end")
    return out[0], out[1]


def _selection(aid: str, config: Any) -> EventFilter:
    if not isinstance(config, dict):
        raise ApiError(400, "missing or not a JSON object", "config")
    wanted = {k: v for k, v in config.items() if k in FilterConfig.model_fields}
    try:
        return EventFilter.of(aid, FilterConfig.model_validate(wanted))
    except ValidationError as err:
        raise pydantic_error(err, "config.", FilterConfig) from None


def preview_filter(call: Call, aid: str) -> Response:
    """How many of the account's past events (audit log, `start`..`end`, default the last 7 days) a job with
    `config`'s verbs, sources, filter and exclusions would have received, and the first of them."""
    from sysevents.auditlog.schema import audit_table
    from sysevents.auditlog.search import MAX_PAGE_SIZE, search_audit

    body = call.body if isinstance(call.body, dict) else {}
    selection = _selection(aid, body.get("config"))
    start, end = _range(body)
    sample = body.get("sample", 10)
    if isinstance(sample, bool) or not isinstance(sample, int) or not 0 <= sample <= MAX_PREVIEW_SAMPLE:
        raise ApiError(400, f"must be an integer from 0 to {MAX_PREVIEW_SAMPLE}", "sample")
    events, token = [], None
    while len(events) < MAX_PREVIEW_EVENTS:
        page = search_audit(
            aid,
            start=start,
            end=end,
            page_size=min(MAX_PAGE_SIZE, MAX_PREVIEW_EVENTS - len(events)),
            page_token=token,
            client=call.rt.bigquery,
            table=audit_table(call.rt.settings),
        )
        events += page.events
        token = page.next_page_token
        if token is None:
            break
    ordered = (event_from_dict(doc) for doc in reversed(events))  # oldest first
    found = preview(selection, ordered, sample)
    return json_response(
        {
            "scanned": found.scanned,
            "matched": found.matched,
            "truncated": token is not None,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "first_match": found.first.isoformat() if found.first else None,
            "last_match": found.last.isoformat() if found.last else None,
            "sample": [e.to_cloudevent() for e in found.sample],
        }
    )
