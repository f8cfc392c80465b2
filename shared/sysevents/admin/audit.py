"""Admin API: the account's audit log (BigQuery search)."""

from __future__ import annotations

from flask import Response

from sysevents.admin.errors import ApiError, json_response
from sysevents.admin.http import Call

AUDIT_FILTERS = ("subject_type", "subject_id", "verb", "start", "end", "page_token")


def search_audit(call: Call, aid: str) -> Response:
    """The account's audit log (BigQuery), newest first; only ever the caller's own account. Past the
    account's searches per minute, or when BigQuery refuses for its quota, 429 with Retry-After."""
    from sysevents.auditlog.schema import audit_table
    from sysevents.auditlog.search import MAX_PAGE_SIZE as MAX_AUDIT_PAGE
    from sysevents.auditlog.search import InvalidSearch
    from sysevents.auditlog.search import search_audit as search

    args = {k: call.request.args.get(k) or None for k in AUDIT_FILTERS}
    call.rt.shares.audit.take(aid)  # the account's searches per minute (AtShare: 429 with Retry-After)
    try:
        page = search(
            aid,
            **args,
            page_size=call.query_int("page_size", 100, 1, MAX_AUDIT_PAGE),
            client=call.rt.bigquery,
            table=audit_table(call.rt.settings),
        )
    except InvalidSearch as err:
        field = err.reason.split(":", 1)[0] if err.reason.split(":", 1)[0] in AUDIT_FILTERS else None
        raise ApiError(400, err.reason, field) from None
    return json_response(page.to_dict())


def list_quarantine(call: Call) -> Response:
    """Events ingest refused, newest first, with the reason (operator): `aid`, `page_size`, `before`."""
    from datetime import UTC, datetime

    aid = call.request.args.get("aid") or None
    before = call.request.args.get("before")
    when = None
    if before:
        try:
            when = datetime.fromisoformat(before.replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(400, "must be an ISO 8601 time, e.g. 2026-01-01T00:00:00Z", "before") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    items = call.rt.quarantine.list(aid=aid, limit=call.query_int("page_size", 50, 1, 200), before=when)
    return json_response({"events": items, "next_before": items[-1]["quarantined_at"] if items else None})
