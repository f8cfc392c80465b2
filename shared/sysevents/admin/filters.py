"""Content filters in the admin API: check a filter (and exclusions) as a job's config would, before saving."""

from __future__ import annotations

from typing import Any

from flask import Response

from sysevents.admin.errors import ApiError, json_response
from sysevents.admin.http import Call
from sysevents.admin.jobs import event_arg
from sysevents.events.model import event_from_dict
from sysevents.filters import MAX_EXCLUDES, FilterError, compile_filter


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
