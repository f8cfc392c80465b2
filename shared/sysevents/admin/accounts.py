"""Admin API: accounts and API keys (handlers; the route table is sysevents.admin.api)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from flask import Response

from sysevents.admin.errors import ApiError, json_response
from sysevents.admin.http import MAX_PAGE_SIZE, Call
from sysevents.admin.keys import (
    AID_PATTERN,
    MAX_NAME_CHARS,
    SCOPES,
    AccountExists,
    AccountNotFound,
    CannotMint,
    KeyNotFound,
    expiry_for,
)

log = logging.getLogger("sysevents.admin")


def whoami(call: Call) -> Response:
    p = call.principal
    assert p is not None
    return json_response(
        {"operator": p.operator, "aid": p.aid, "prefix": p.prefix, "name": p.name, "scope": p.scope}
    )


def create_account(call: Call) -> Response:
    body = call.body if isinstance(call.body, dict) else {}
    aid = body.get("aid")
    if not isinstance(aid, str) or not AID_PATTERN.match(aid):
        raise ApiError(
            400, "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", "aid"
        )
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME_CHARS):
        raise ApiError(400, f"must be a string of at most {MAX_NAME_CHARS} characters", "name")
    try:
        return json_response(call.keys.create_account(aid, name), 201)
    except AccountExists as err:
        raise ApiError(409, str(err), "aid") from None


def list_accounts(call: Call) -> Response:
    items, token = call.keys.list_accounts(
        call.query_int("page_size", 50, 1, MAX_PAGE_SIZE), call.query_token("page_token", AID_PATTERN)
    )
    return json_response({"accounts": items, "next_page_token": token})


def create_key(call: Call, aid: str) -> Response:
    body = call.body if isinstance(call.body, dict) else {}
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS:
        raise ApiError(
            400, f"required: a name of 1-{MAX_NAME_CHARS} characters saying who uses the key", "name"
        )
    scope = body.get("scope", "jobs")
    if scope not in SCOPES:
        raise ApiError(400, f"must be one of: {', '.join(SCOPES)}", "scope")
    p = call.principal
    expires_at = _expiry(call, body)
    try:
        key, record = call.keys.create_key(aid, name, p.actor if p else "", scope, expires_at, p)
    except AccountNotFound as err:
        raise ApiError(404, str(err), "aid") from None
    except CannotMint as err:
        raise ApiError(403, str(err)) from None
    log.info("admin: key %s created for account %s by %s", record["prefix"], aid, record["created_by"])
    return json_response({**record, "key": key, "note": "store this key now: it is not shown again"}, 201)


def _expiry(call: Call, body: dict) -> datetime | None:
    """The new key's expiry from `expires_at` (ISO 8601; no offset: UTC) or `expires_in_days`, checked
    against the deployment's bound and the minting key's own expiry; None: it never expires."""
    at, days = body.get("expires_at"), body.get("expires_in_days")
    max_days = call.rt.settings.api_key_max_days
    now = datetime.now(UTC)
    if at is not None and days is not None:
        raise ApiError(400, "give expires_at or expires_in_days, not both", "expires_in_days")
    field, requested = "expires_at", None
    if days is not None:
        field = "expires_in_days"
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= max_days:
            raise ApiError(400, f"must be a whole number of days from 1 to {max_days}", field)
        requested = now + timedelta(days=days)
    elif at is not None:
        try:
            requested = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except (AttributeError, ValueError):
            raise ApiError(400, "must be an ISO 8601 time, e.g. 2027-01-01T00:00:00Z", field) from None
        requested = requested if requested.tzinfo else requested.replace(tzinfo=UTC)
    minter = call.principal.expires_at if call.principal else None
    try:
        expiry = expiry_for(requested, minter, max_days, now)
    except (ValueError, OverflowError) as err:
        raise ApiError(400, str(err) or "out of range", field) from None
    return expiry.astimezone(UTC) if expiry else None


def list_keys(call: Call, aid: str) -> Response:
    return json_response({"keys": call.keys.list_keys(aid)})


def revoke_key(call: Call, aid: str, prefix: str) -> Response:
    try:
        record = call.keys.revoke_key(aid, prefix)
    except KeyNotFound as err:
        raise ApiError(404, str(err), "prefix") from None
    log.info(
        "admin: key %s of account %s revoked by %s, with %d keys minted from it (all: %s)",
        prefix,
        aid,
        call.principal.actor if call.principal else "",
        record["revoked_minted"],
        record["cascade_complete"],
    )
    return json_response(record)
