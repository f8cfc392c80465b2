"""API keys: expiry, revocation cascading to the keys a key minted, the read scope, and the scopes in the
OpenAPI document. Against the admin function on the session stack (the Firestore emulator holds the keys)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from admin_helpers import Account, webhook_job
from helpers import wait_until

from sysevents.admin.api import ROUTES
from sysevents.admin.keys import MAX_MINT_DEPTH, SCOPES, KeyRefused, KeyStore, key_hash
from sysevents.admin.openapi import openapi_path

ACCOUNT_ROUTES = [r for r in ROUTES if "<aid>" in r.path or r.path == "/whoami"]


def _id(route) -> str:
    return f"{route.method} {route.path}"


def _url(route, aid: str, job_id: str, prefix: str) -> str:
    return re.sub(
        r"<(\w+)>", lambda m: {"aid": aid, "job_id": job_id, "prefix": prefix}[m.group(1)], route.path
    )


def mint(admin, aid: str, by: dict[str, str], scope: str = "admin", **body) -> Account:
    """A key of the account, minted by the key in `by`."""
    r = admin.post(f"/accounts/{aid}/keys", json={"name": f"k-{scope}", "scope": scope, **body}, headers=by)
    assert r.status_code == 201, r.json
    return Account(aid, r.json["key"], r.json["prefix"])


def listed(admin, account: Account) -> dict[str, dict]:
    keys = admin.get(f"/accounts/{account.aid}/keys", headers=account.headers).json["keys"]
    return {k["prefix"]: k for k in keys}


def whoami(admin, key: Account):
    return admin.get("/whoami", headers=key.headers)


# -- expiry ------------------------------------------------------------------------------------------------
def test_an_expired_key_is_refused_with_a_clear_error(admin, account):
    expires = datetime.now(UTC) + timedelta(seconds=4)
    key = mint(admin, account.aid, account.headers, "jobs", expires_at=expires.isoformat())
    assert whoami(admin, key).status_code == 200  # before its time it works
    shown = listed(admin, account)[key.prefix]
    assert shown["state"] == "active" and datetime.fromisoformat(shown["expires_at"]) == expires

    assert wait_until(lambda: whoami(admin, key).status_code == 401, timeout=20)
    r = whoami(admin, key)
    assert r.json["error"]["field"] == "X-API-Key"
    assert r.json["error"]["message"].startswith("this API key expired at ")
    r = admin.get(f"/accounts/{account.aid}/jobs", headers=key.headers)
    assert r.status_code == 401  # every authenticated route, not only whoami
    assert listed(admin, account)[key.prefix]["state"] == "expired"
    assert whoami(admin, account).status_code == 200  # the key that minted it never expires


def test_expiry_is_checked_when_a_key_is_created(admin, account):
    url, now = f"/accounts/{account.aid}/keys", datetime.now(UTC)
    for body, field, says in (
        ({"expires_at": (now - timedelta(minutes=1)).isoformat()}, "expires_at", "must be in the future"),
        ({"expires_at": (now + timedelta(days=366)).isoformat()}, "expires_at", "at most 365 days"),
        ({"expires_at": "next tuesday"}, "expires_at", "ISO 8601"),
        ({"expires_at": 1735689600}, "expires_at", "ISO 8601"),
        ({"expires_in_days": 0}, "expires_in_days", "from 1 to 365"),
        ({"expires_in_days": 366}, "expires_in_days", "from 1 to 365"),
        ({"expires_in_days": True}, "expires_in_days", "from 1 to 365"),
        ({"expires_in_days": 1, "expires_at": now.isoformat()}, "expires_in_days", "not both"),
    ):
        r = admin.post(url, json={"name": "x", **body}, headers=account.headers)
        assert r.status_code == 400 and r.json["error"]["field"] == field, (body, r.json)
        assert says in r.json["error"]["message"], (body, r.json)
    r = admin.post(url, json={"name": "month", "expires_in_days": 30}, headers=account.headers)
    assert r.status_code == 201
    expires = datetime.fromisoformat(r.json["expires_at"])
    assert abs(expires - (now + timedelta(days=30))) < timedelta(minutes=1)
    naive = (now + timedelta(days=2)).replace(tzinfo=None, microsecond=0).isoformat()
    r = admin.post(url, json={"name": "naive", "expires_at": naive}, headers=account.headers)
    assert r.status_code == 201 and datetime.fromisoformat(r.json["expires_at"]) == datetime.fromisoformat(
        naive + "+00:00"
    )
    # keys without one never expire, and say so in the listing
    assert listed(admin, account)[account.prefix]["expires_at"] is None


def test_a_key_never_outlives_the_key_that_minted_it(admin, account):
    parent = mint(admin, account.aid, account.headers, expires_in_days=1)
    parent_expiry = datetime.fromisoformat(listed(admin, account)[parent.prefix]["expires_at"])
    child = mint(admin, account.aid, parent.headers, "jobs")  # names no expiry: gets its minter's
    assert datetime.fromisoformat(listed(admin, account)[child.prefix]["expires_at"]) == parent_expiry
    r = admin.post(
        f"/accounts/{account.aid}/keys", json={"name": "x", "expires_in_days": 2}, headers=parent.headers
    )
    assert r.status_code == 400 and r.json["error"]["field"] == "expires_in_days"
    assert "when the key minting it expires" in r.json["error"]["message"]


def test_keys_stored_before_expiry_existed_never_expire(admin, account, firestore_client):
    """A key document written as earlier versions wrote them: no expires_at, no ancestors."""
    key = "sek_0ld0ld00_" + "x" * 43
    firestore_client.collection("api_keys").document(key_hash(key)).create(
        {
            "aid": account.aid,
            "name": "old",
            "prefix": key[:12],
            "created_at": datetime(2026, 1, 1, tzinfo=UTC),
            "created_by": "operator",
            "scope": "jobs",
            "revoked_at": None,
        }
    )
    assert whoami(admin, Account(account.aid, key, key[:12])).status_code == 200
    shown = listed(admin, account)[key[:12]]
    assert shown["expires_at"] is None and shown["state"] == "active" and "ancestors" not in shown


# -- cascading revocation -------------------------------------------------------------------------------
def test_revoking_a_key_revokes_every_key_minted_from_it(admin, account):
    child = mint(admin, account.aid, account.headers)
    grandchild = mint(admin, account.aid, child.headers)
    great = mint(admin, account.aid, grandchild.headers, "jobs")
    sibling = mint(admin, account.aid, account.headers, "jobs")  # minted by the parent: not child's
    assert all(whoami(admin, k).status_code == 200 for k in (child, grandchild, great, sibling))

    r = admin.delete(f"/accounts/{account.aid}/keys/{child.prefix}", headers=account.headers)
    assert r.status_code == 200, r.json
    assert r.json["revoked_at"] and r.json["revoked_minted"] == 2 and r.json["cascade_complete"] is True
    keys = listed(admin, account)
    for k in (child, grandchild, great):
        assert keys[k.prefix]["state"] == "revoked" and keys[k.prefix]["revoked_at"], k.prefix
        r = whoami(admin, k)
        assert r.status_code == 401 and r.json["error"]["message"].startswith("this API key was revoked at")
    for k in (account, sibling):
        assert keys[k.prefix]["state"] == "active" and whoami(admin, k).status_code == 200
    assert all("ancestors" not in k for k in keys.values())  # the hashes stay in Firestore


def test_at_the_bound_keys_not_marked_yet_are_refused_and_revoking_again_marks_them(
    admin, account, firestore_client
):
    store = KeyStore(firestore_client, revoke_max=1)
    child = mint(admin, account.aid, account.headers)
    grandchild = mint(admin, account.aid, child.headers)
    great = mint(admin, account.aid, grandchild.headers, "jobs")

    first = store.revoke_key(account.aid, child.prefix)
    assert first["revoked_minted"] == 1 and first["cascade_complete"] is False
    states = {p: k["state"] for p, k in listed(admin, account).items()}
    assert sorted(states[k.prefix] for k in (grandchild, great)) == ["active", "revoked"]
    unmarked = next(k for k in (grandchild, great) if states[k.prefix] == "active")
    with pytest.raises(KeyRefused, match="minted from a revoked key"):
        store.authenticate(unmarked.key)
    r = whoami(admin, unmarked)
    assert r.status_code == 401 and "minted from a revoked key" in r.json["error"]["message"]

    second = store.revoke_key(account.aid, child.prefix)
    assert second["revoked_minted"] == 1 and second["cascade_complete"] is True
    assert listed(admin, account)[unmarked.prefix]["state"] == "revoked"
    third = store.revoke_key(account.aid, child.prefix)
    assert third["revoked_minted"] == 0 and third["cascade_complete"] is True


def test_chains_of_minted_keys_are_bounded(admin, account):
    key = account  # made by the operator: no key above it
    for _ in range(MAX_MINT_DEPTH):
        key = mint(admin, account.aid, key.headers)
    assert whoami(admin, key).status_code == 200  # authenticating it reads all 8 keys above it
    r = admin.post(f"/accounts/{account.aid}/keys", json={"name": "too deep"}, headers=key.headers)
    assert r.status_code == 403 and "mints from a key the operator made" in r.json["error"]["message"]


# -- the read scope -----------------------------------------------------------------------------------------
def test_read_routes_are_the_gets_of_the_account_but_its_keys():
    read = {_id(r) for r in ROUTES if r.scope == "read"}
    assert read and all(r.method == "GET" for r in ROUTES if r.scope == "read")
    gets = {_id(r) for r in ACCOUNT_ROUTES if r.method == "GET" and r.auth != "operator"}
    assert read == gets - {"GET /accounts/<aid>/keys"}


@pytest.mark.parametrize("route", ACCOUNT_ROUTES, ids=_id)
def test_a_read_key_may_only_read(admin, account, route):
    reader = mint(admin, account.aid, account.headers, "read")
    job = admin.post(f"/accounts/{account.aid}/jobs", json=webhook_job(), headers=account.headers).json
    url = _url(route, account.aid, job["id"], reader.prefix)
    body = webhook_job() if route.body in ("JobInput", "JobPatch") else {"name": "reader's"}
    r = admin.open(url, method=route.method, headers=reader.headers, json=body if route.body else None)
    if route.scope == "read":
        assert r.status_code == 200, r.json
    else:
        assert route.method != "GET" or route.scope == "admin"
        assert r.status_code == 403, r.json
        if route.auth != "operator":
            needs = f"this route needs a key with the {route.scope} scope; this key has read"
            assert r.json["error"]["message"] == needs
    # ... and nothing changed
    after = admin.get(f"/accounts/{account.aid}/jobs/{job['id']}", headers=account.headers).json
    assert after["version"] == 1 and after["state"] == "active"
    assert set(listed(admin, account)) == {account.prefix, reader.prefix}
    assert listed(admin, account)[reader.prefix]["state"] == "active"


def test_a_read_key_reads_the_audit_log_jobs_stats_and_deliveries(admin, account):
    reader = mint(admin, account.aid, account.headers, "read")
    job = admin.post(f"/accounts/{account.aid}/jobs", json=webhook_job(), headers=account.headers).json
    base = f"/accounts/{account.aid}"
    for url in (
        f"{base}/audit",
        f"{base}/jobs",
        f"{base}/jobs/{job['id']}",
        f"{base}/jobs/{job['id']}/stats",
        f"{base}/jobs/{job['id']}/deliveries",
    ):
        r = admin.get(url, headers=reader.headers)
        assert r.status_code == 200, (url, r.json)
    assert admin.get(f"{base}/jobs", headers=reader.headers).json["jobs"][0]["id"] == job["id"]
    assert whoami(admin, reader).json["scope"] == "read"
    for method, url in (
        ("POST", f"{base}/jobs"),
        ("PUT", f"{base}/jobs/{job['id']}"),
        ("PATCH", f"{base}/jobs/{job['id']}"),
        ("DELETE", f"{base}/jobs/{job['id']}"),
    ):
        r = admin.open(url, method=method, headers=reader.headers, json=webhook_job())
        assert r.status_code == 403 and "needs a key with the jobs scope" in r.json["error"]["message"]
    assert admin.get(f"{base}/jobs/{job['id']}", headers=reader.headers).json["version"] == 1


# -- OpenAPI --------------------------------------------------------------------------------------------------
def test_the_openapi_document_lists_the_scopes_and_what_each_route_needs(admin):
    doc = admin.get("/openapi.json").json
    scheme = doc["components"]["securitySchemes"]["apiKey"]
    assert set(scheme["x-scopes"]) == set(SCOPES) == {"read", "jobs", "admin"}
    assert all(f"{s}: " in scheme["description"] for s in SCOPES)
    key_input = doc["components"]["schemas"]["KeyInput"]["properties"]
    assert set(key_input["scope"]["enum"]) == set(SCOPES)
    assert {"expires_at", "expires_in_days"} <= set(key_input)
    assert {"expires_at", "state"} <= set(doc["components"]["schemas"]["Key"]["properties"])
    for r in ROUTES:
        op = doc["paths"][openapi_path(r.path)][r.method.lower()]
        if r.auth == "none":
            assert "x-scope" not in op and op["security"] == []
        else:
            assert op["x-scope"] == ("operator" if r.auth == "operator" else r.scope), _id(r)
    read = {m for path in doc["paths"].values() for m, op in path.items() if op.get("x-scope") == "read"}
    assert read == {"get"}
