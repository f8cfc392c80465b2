"""Admin API: email recipients' consent links and each account's email policy.

`GET /consent/{token}` shows what the signed link (sysevents.consent.tokens) is for, with one button;
`POST /consent/{token}` does it: confirm (the address receives the account's alert emails) or unsubscribe
(it never does again, and is never asked again). A GET changes nothing, so mail scanners that open links do
not confirm anyone. A POST with the body `List-Unsubscribe=One-Click` (RFC 8058, sent by mail clients from the
List-Unsubscribe-Post header) unsubscribes in one step. The token is the only credential these routes take.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime

from flask import Response

from sysevents.admin.errors import ApiError, json_response
from sysevents.admin.http import Call
from sysevents.consent import tokens
from sysevents.consent.store import MAX_ALLOWED_DOMAINS, Policy
from sysevents.jobs.secrets import SealingError

log = logging.getLogger("sysevents.admin")
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<title>sysevents: {title}</title></head>
<body><h1>{title}</h1><p>{text}</p>{form}</body></html>
"""


def _page(status: int, title: str, text: str, button: str | None = None) -> Response:
    form = (
        f'<form method="post"><button type="submit">{html.escape(button)}</button></form>' if button else ""
    )
    body = PAGE.format(title=html.escape(title), text=html.escape(text), form=form)
    return Response(body, status=status, mimetype="text/html", headers={"Cache-Control": "no-store"})


def _grant(call: Call, token: str) -> tokens.Grant | Response:
    try:
        return tokens.verify(
            call.rt.settings.sealing_keys, token, call.rt.settings.email_confirm_hours * 3600
        )
    except tokens.InvalidLink as err:
        return _page(400, "Link not valid", str(err))
    except SealingError as err:
        log.error("admin: consent link: %s", err)
        return _page(500, "Not available", "This service cannot check links right now.")


def show_consent(call: Call, token: str) -> Response:
    grant = _grant(call, token)
    if isinstance(grant, Response):
        return grant
    who = f"{grant.address} (account {grant.aid})"
    if grant.purpose == tokens.CONFIRM:
        return _page(200, "Confirm alert emails", f"Send sysevents alert emails to {who}?", "Confirm")
    return _page(200, "Unsubscribe", f"Stop sysevents alert emails to {who}?", "Unsubscribe")


def apply_consent(call: Call, token: str) -> Response:
    grant = _grant(call, token)
    if isinstance(grant, Response):
        return grant
    now = datetime.now(UTC)
    if grant.purpose == tokens.CONFIRM:
        call.rt.consent.confirm(grant.aid, grant.address, now)
        log.info("admin: %s confirmed alert emails of account %s", grant.address, grant.aid)
        return _page(200, "Confirmed", f"{grant.address} now receives alert emails of account {grant.aid}.")
    call.rt.consent.unsubscribe(grant.aid, grant.address, now)
    log.info("admin: %s unsubscribed from alert emails of account %s", grant.address, grant.aid)
    return _page(200, "Unsubscribed", f"{grant.address} gets no more alert emails of account {grant.aid}.")


def get_email_policy(call: Call, aid: str) -> Response:
    return json_response({"aid": aid, **call.rt.consent.policy(aid).view()})


def put_email_policy(call: Call) -> Response:
    """The operator sets an account's policy (the body names it): not an account route, since an account
    that could allow a domain for itself could mail any stranger there."""
    body = call.body if isinstance(call.body, dict) else {}
    aid = body.get("aid")
    if not isinstance(aid, str) or not aid:
        raise ApiError(400, "names the account whose policy this is", "aid")
    domains = body.get("allowed_domains", [])
    if not isinstance(domains, list) or len(domains) > MAX_ALLOWED_DOMAINS:
        raise ApiError(400, f"must be a list of at most {MAX_ALLOWED_DOMAINS} domains", "allowed_domains")
    clean = []
    for d in domains:
        if not isinstance(d, str) or not _domain(d):
            raise ApiError(400, f"{str(d)[:80]!r} is not a domain name (e.g. example.com)", "allowed_domains")
        clean.append(d.strip().lower().rstrip("."))
    quota = body.get("daily_quota")
    if quota is not None and (
        isinstance(quota, bool) or not isinstance(quota, int) or not 1 <= quota <= 10**7
    ):
        raise ApiError(400, "must be an integer from 1 to 10000000, or null for the default", "daily_quota")
    if call.keys.get_account(aid) is None:
        raise ApiError(404, f"account {aid!r} not found", "aid")
    policy = call.rt.consent.set_policy(aid, Policy(tuple(dict.fromkeys(clean)), quota))
    log.info("admin: email policy of account %s set: %s", aid, policy.view())
    return json_response({"aid": aid, **policy.view()})


def _domain(text: str) -> bool:
    labels = text.strip().lower().rstrip(".").split(".")
    return len(labels) >= 2 and all(
        0 < len(x) <= 63 and x.replace("-", "").isalnum() and x.isascii() and not x.startswith("-")
        for x in labels
    )
