"""Authentication and tenancy: every route needs a key; a key of another account is refused on every route."""

from __future__ import annotations

import re

import pytest
from admin_helpers import webhook_job

from sysevents.admin.api import ROUTES

ACCOUNT_ROUTES = [r for r in ROUTES if "<aid>" in r.path]
OPERATOR_ROUTES = [r for r in ROUTES if r.auth == "operator"]
KEYED_ROUTES = [r for r in ROUTES if r.auth != "none"]


def _url(route, aid: str, job_id: str = "j", prefix: str = "sek_00000000") -> str:
    return re.sub(
        r"<(\w+)>", lambda m: {"aid": aid, "job_id": job_id, "prefix": prefix}[m.group(1)], route.path
    )


def _call(admin, route, url, headers, body=None):
    return admin.open(url, method=route.method, headers=headers, json=body if route.body else None)


def _id(route) -> str:
    return f"{route.method} {route.path}"


def test_every_keyed_route_is_scoped_to_an_account_or_the_operator():
    """So the cross-account test below covers every route a key of an account can use."""
    unscoped = {_id(r) for r in ROUTES if r.auth in ("account", "any") and "<aid>" not in r.path}
    assert unscoped == {"GET /whoami"}
    assert all(r.auth == "account" for r in ACCOUNT_ROUTES)


@pytest.mark.parametrize("route", ACCOUNT_ROUTES, ids=_id)
def test_another_accounts_key_is_refused(admin, account, other, route):
    job = admin.post(f"/accounts/{account.aid}/jobs", json=webhook_job(), headers=account.headers).json
    body = webhook_job() if route.body in ("JobInput", "JobPatch") else {"name": "intruder"}
    r = _call(admin, route, _url(route, account.aid, job["id"], account.prefix), other.headers, body)
    assert r.status_code == 403, r.json
    assert r.json["error"] == {
        "field": "aid",
        "message": f"this key belongs to another account; it cannot act for account {account.aid!r}",
    }
    # ... and nothing changed
    assert (
        admin.get(f"/accounts/{account.aid}/jobs/{job['id']}", headers=account.headers).json["version"] == 1
    )


@pytest.mark.parametrize("route", KEYED_ROUTES, ids=_id)
def test_no_key_or_unknown_key_is_refused(admin, account, route):
    url = _url(route, account.aid)
    for headers in ({}, {"X-API-Key": "sek_12345678_notarealkey"}, {"Authorization": "Bearer nonsense"}):
        r = _call(admin, route, url, headers, {})
        assert r.status_code == 401, (headers, r.json)
        assert r.json["error"]["message"].startswith("missing, unknown or revoked API key")


@pytest.mark.parametrize("route", OPERATOR_ROUTES, ids=_id)
def test_account_keys_cannot_use_operator_routes(admin, account, route):
    r = _call(admin, route, _url(route, account.aid), account.headers, {"aid": "new-acct"})
    assert r.status_code == 403 and r.json["error"]["message"] == "this route needs the operator key"


def test_job_of_another_account_is_not_found_under_ones_own_account(admin, account, other):
    job = admin.post(f"/accounts/{account.aid}/jobs", json=webhook_job(), headers=account.headers).json
    for method in ("GET", "DELETE", "PATCH"):
        r = admin.open(
            f"/accounts/{other.aid}/jobs/{job['id']}",
            method=method,
            headers=other.headers,
            json={"name": "x"} if method == "PATCH" else None,
        )
        assert r.status_code == 404, method
    listed = admin.get(f"/accounts/{other.aid}/jobs", headers=other.headers).json["jobs"]
    assert listed == []


def test_keys_are_shown_once_listed_by_prefix_and_revocable(admin, operator, account):
    r = admin.post(f"/accounts/{account.aid}/keys", json={"name": "ci"}, headers=account.headers)
    assert r.status_code == 201 and r.json["key"].startswith(r.json["prefix"]) and "note" in r.json
    new_key, prefix = r.json["key"], r.json["prefix"]
    listed = admin.get(f"/accounts/{account.aid}/keys", headers=account.headers).json["keys"]
    assert {k["prefix"] for k in listed} == {account.prefix, prefix}
    assert all("key" not in k and new_key not in str(k) for k in listed)
    who = admin.get("/whoami", headers={"X-API-Key": new_key}).json
    assert who == {"operator": False, "aid": account.aid, "prefix": prefix, "name": "ci", "scope": "jobs"}
    r = admin.delete(f"/accounts/{account.aid}/keys/{prefix}", headers=operator)
    assert r.status_code == 200 and r.json["revoked_at"]
    assert admin.get("/whoami", headers={"X-API-Key": new_key}).status_code == 401
    assert admin.get("/whoami", headers={"Authorization": f"Bearer {account.key}"}).status_code == 200
    r = admin.delete(f"/accounts/{account.aid}/keys/sek_nothere", headers=account.headers)
    assert r.status_code == 404 and r.json["error"]["field"] == "prefix"


def test_only_hashes_are_stored(firestore_client, account):
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = firestore_client.collection("api_keys").where(filter=FieldFilter("aid", "==", account.aid))
    docs = [d.to_dict() for d in query.stream()]
    assert docs and all(account.key not in str(d) for d in docs)


def test_operator_manages_accounts(admin, operator, aid):
    assert admin.post("/accounts", json={"aid": aid}, headers=operator).status_code == 201
    r = admin.post("/accounts", json={"aid": aid}, headers=operator)
    assert r.status_code == 409 and r.json["error"] == {
        "field": "aid",
        "message": f"account {aid!r} already exists",
    }
    r = admin.post("/accounts", json={"aid": "bad/aid"}, headers=operator)
    assert r.status_code == 400 and r.json["error"]["field"] == "aid"
    r = admin.post("/accounts/no-such-acct-zz/keys", json={"name": "x"}, headers=operator)
    assert r.status_code == 404 and r.json["error"]["message"] == "account 'no-such-acct-zz' not found"
    seen, token = [], None
    while True:
        page = admin.get(
            "/accounts",
            query_string={"page_size": 50, **({"page_token": token} if token else {})},
            headers=operator,
        ).json
        seen += [a["aid"] for a in page["accounts"]]
        token = page["next_page_token"]
        if not token:
            break
    assert aid in seen
    assert admin.get("/whoami", headers=operator).json["operator"] is True


def test_unknown_route_and_method(admin, account):
    r = admin.get("/nope", headers=account.headers)
    assert r.status_code == 404 and "see /openapi.json" in r.json["error"]["message"]
    r = admin.put(f"/accounts/{account.aid}/jobs", headers=account.headers)
    assert r.status_code == 405 and "allowed: GET" in r.json["error"]["message"]
