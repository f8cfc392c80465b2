"""Tenants are walls: job ids are per account, a job deleted and created again inherits nothing, key scopes.

The first test replays the reported attack against the real pipeline: account B's job `reuse-1`
dead-letters B's event, B deletes the job, account A creates `reuse-1` -- and sees nothing of B's.
"""

from __future__ import annotations

import time

import pytest
from admin_helpers import make_account, webhook_job
from helpers import publish_events, wait_until

from sysevents.events.model import new_event

pytestmark = pytest.mark.integration


def create(admin, account, job_id, url, **config):
    body = {**webhook_job(url), "id": job_id}
    body["config"] = {
        **body["config"],
        "system_event_type": "failed",
        "system_event_sources": {"work": []},
        **config,
    }
    r = admin.post(f"/accounts/{account.aid}/jobs", json=body, headers=account.headers)
    assert r.status_code == 201, r.json
    return r.json


def test_a_reused_job_id_sees_nothing_of_the_deleted_job_of_another_account(
    stack, admin, operator, publisher, receiver, aid
):
    a = make_account(admin, operator, aid + "-a")
    b = make_account(admin, operator, aid + "-b")
    receiver.replies["/b"].extend([410] * 5)
    job_b = create(admin, b, "reuse-1", receiver.url("/b"))
    stack.wait_for_job_caches(since=_time(job_b))
    publish_events(stack, publisher, new_event(b.aid, "work", "w-b", "failed", notes="B's secret"))
    base_b = f"/accounts/{b.aid}/jobs/reuse-1"
    assert wait_until(lambda: admin.get(base_b + "/stats", headers=b.headers).json["dead_lettered"] == 1)
    assert admin.delete(base_b, headers=b.headers).status_code == 200

    job_a = create(admin, a, "reuse-1", receiver.url("/a"))  # the same id, another account: allowed
    stack.wait_for_job_caches(since=_time(job_a))
    base_a = f"/accounts/{a.aid}/jobs/reuse-1"
    stats = admin.get(base_a + "/stats", headers=a.headers).json
    assert (stats["received"], stats["dead_lettered"], stats["pending"]) == (0, 0, 0)
    deliveries = admin.get(base_a + "/deliveries", headers=a.headers).json
    assert deliveries["attempts"] == [] and deliveries["dead_letters"] == []
    replayed = admin.post(base_a + "/replay", json={}, headers=a.headers).json
    assert replayed["replayed"] == 0
    time.sleep(2)
    assert receiver.at("/a") == []  # B's event never reaches A's receiver


def test_job_ids_are_per_account_and_a_taken_id_says_nothing_about_others(admin, operator, aid):
    a = make_account(admin, operator, aid + "-a")
    b = make_account(admin, operator, aid + "-b")
    create(admin, a, "same-id", "https://8.8.8.8/a")
    create(admin, b, "same-id", "https://8.8.8.8/b")  # not 409: ids are chosen per account
    again = admin.post(
        f"/accounts/{a.aid}/jobs",
        json={**webhook_job("https://8.8.8.8/a"), "id": "same-id"},
        headers=a.headers,
    )
    assert again.status_code == 409
    for acct, url in ((a, "https://8.8.8.8/a"), (b, "https://8.8.8.8/b")):
        got = admin.get(f"/accounts/{acct.aid}/jobs/same-id", headers=acct.headers).json
        assert got["config"]["webhook_url"] == url and got["aid"] == acct.aid
    assert admin.delete(f"/accounts/{b.aid}/jobs/same-id", headers=b.headers).status_code == 200
    assert admin.get(f"/accounts/{a.aid}/jobs/same-id", headers=a.headers).status_code == 200


def test_an_account_holds_at_most_its_job_limit_and_another_account_is_not_counted(
    admin, operator, aid, monkeypatch
):
    # What one account's events make ingest load and match, and what it holds of the shared job caches, is
    # bounded by its jobs: an account at its limit gets a clear 409; another account still creates.
    from sysevents import runtime

    rt = runtime.instance()
    monkeypatch.setattr(rt, "settings", rt.settings.model_copy(update={"max_jobs_per_account": 2}))
    a = make_account(admin, operator, aid + "-a")
    b = make_account(admin, operator, aid + "-b")
    create(admin, a, "one", "https://8.8.8.8/a")
    create(admin, a, "two", "https://8.8.8.8/a")
    third = admin.post(
        f"/accounts/{a.aid}/jobs", json={**webhook_job("https://8.8.8.8/a"), "id": "three"}, headers=a.headers
    )
    assert third.status_code == 409
    assert third.json["error"]["message"].startswith(
        f"account {a.aid!r} has 2 jobs, the most an account may have"
    )
    create(admin, b, "one", "https://8.8.8.8/b")  # B's limit is its own
    assert admin.delete(f"/accounts/{a.aid}/jobs/two", headers=a.headers).status_code == 200
    create(admin, a, "three", "https://8.8.8.8/a")  # room again after a delete


def test_concurrent_creates_cannot_pass_the_job_limit(admin, operator, aid, monkeypatch):
    # The limit is checked in the transaction that writes the job (against the account's usage document),
    # so creates racing each other cannot all pass it, as they could when jobs were counted beforehand.
    from concurrent.futures import ThreadPoolExecutor

    from sysevents import runtime

    rt = runtime.instance()
    monkeypatch.setattr(rt, "settings", rt.settings.model_copy(update={"max_jobs_per_account": 2}))
    a = make_account(admin, operator, aid)

    def one(i: int) -> int:
        body = {**webhook_job("https://8.8.8.8/a"), "id": f"j{i}"}
        return admin.post(f"/accounts/{a.aid}/jobs", json=body, headers=a.headers).status_code

    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(one, range(4)))
    assert codes == [201, 201, 409, 409]
    listed = admin.get(f"/accounts/{a.aid}/jobs", headers=a.headers).json["jobs"]
    assert len(listed) == 2


def test_an_accounts_filters_are_bounded_in_all_and_a_job_in_itself(admin, operator, aid, monkeypatch):
    # What a job costs every ingest instance matching its account is its filter's (subject, verb)
    # combinations: at most 10,000 per job (400), and SYSEVENTS_MAX_FILTER_ENTRIES_PER_ACCOUNT in all (409),
    # for creates and for changes that widen a filter; narrowing or deleting makes room; other accounts are
    # not counted.
    from sysevents import runtime

    rt = runtime.instance()
    monkeypatch.setattr(
        rt, "settings", rt.settings.model_copy(update={"max_filter_entries_per_account": 2500})
    )
    a = make_account(admin, operator, aid + "-a")
    b = make_account(admin, operator, aid + "-b")
    ids = [f"w{i}" for i in range(1000)]
    huge = webhook_job("https://8.8.8.8/a", system_event_sources={t: ids for t in ("work", "report")},
                       system_event_multiple_types=["created", "updated", "deleted", "failed", "completed",
                                                    "started"])  # fmt: skip
    refused = admin.post(f"/accounts/{a.aid}/jobs", json={**huge, "id": "huge"}, headers=a.headers)
    assert refused.status_code == 400
    assert (
        "make 14,000 (subject, verb) combinations; the limit is 10,000 per job"
        in refused.json["error"]["message"]
    )
    wide = webhook_job("https://8.8.8.8/a", system_event_sources={"work": ids})  # 1,000 ids x 1 verb

    def post(acct, job_id):
        return admin.post(f"/accounts/{acct.aid}/jobs", json={**wide, "id": job_id}, headers=acct.headers)

    def patch(job_id, body) -> int:
        return admin.patch(f"/accounts/{a.aid}/jobs/{job_id}", json=body, headers=a.headers).status_code

    def delete(job_id) -> int:
        return admin.delete(f"/accounts/{a.aid}/jobs/{job_id}", headers=a.headers).status_code

    assert post(a, "one").status_code == 201 and post(a, "two").status_code == 201
    third = post(a, "three")
    assert third.status_code == 409
    assert "has jobs with 2,000 (subject, verb) filter combinations in all" in third.json["error"]["message"]
    assert post(b, "one").status_code == 201  # B's budget is its own
    widen = {"config": {"system_event_multiple_types": ["synccomplete", "failed"]}}  # "one": 2,000
    assert patch("one", widen) == 409  # 3,000
    assert patch("two", {"config": {"system_event_sources": {"work": ids[:100]}}}) == 200  # 1,100 in all
    assert post(a, "three").status_code == 201  # 2,100
    assert patch("one", widen) == 409  # 3,100
    assert delete("three") == 200  # 1,100
    assert patch("one", widen) == 200  # 2,100


def test_deleting_a_job_deletes_its_state_and_a_new_job_with_its_id_starts_from_nothing(
    stack, admin, account, publisher, receiver, firestore_client
):
    receiver.replies["/gone"].extend([410] * 5)
    job = create(admin, account, "again", receiver.url("/gone"))
    stack.wait_for_job_caches(since=_time(job))
    publish_events(stack, publisher, new_event(account.aid, "work", "w-1", "failed"))
    base = f"/accounts/{account.aid}/jobs/again"
    assert wait_until(lambda: admin.get(base + "/stats", headers=account.headers).json["dead_lettered"] == 1)
    state = [
        d
        for d in firestore_client.collection("job_state").list_documents()
        if d.id.startswith(f"{account.aid}:again:")
    ]
    assert state and list(state[0].collection("dead_letters").stream())
    assert admin.delete(base, headers=account.headers).status_code == 200
    assert list(state[0].collection("dead_letters").stream()) == []
    assert list(state[0].collection("counters").stream()) == []
    create(admin, account, "again", receiver.url("/gone"))
    stats = admin.get(base + "/stats", headers=account.headers).json
    assert (stats["received"], stats["dead_lettered"]) == (0, 0)
    assert admin.get(base + "/deliveries", headers=account.headers).json["dead_letters"] == []


def test_a_jobs_scoped_key_manages_jobs_but_not_keys(admin, operator, aid):
    owner = make_account(admin, operator, aid)
    r = admin.post(f"/accounts/{aid}/keys", json={"name": "ci", "scope": "jobs"}, headers=owner.headers)
    assert r.status_code == 201 and r.json["scope"] == "jobs"
    ci = {"X-API-Key": r.json["key"]}
    assert admin.get("/whoami", headers=ci).json["scope"] == "jobs"
    assert (
        admin.post(f"/accounts/{aid}/jobs", json=webhook_job("https://8.8.8.8/x"), headers=ci).status_code
        == 201
    )
    for method, path in (("post", f"/accounts/{aid}/keys"), ("get", f"/accounts/{aid}/keys"),
                         ("delete", f"/accounts/{aid}/keys/{owner.prefix}")):  # fmt: skip
        r = getattr(admin, method)(path, json={"name": "escalate", "scope": "admin"}, headers=ci)
        assert r.status_code == 403, (method, path)
        assert r.json["error"]["message"] == "this route needs a key with the admin scope; this key has jobs"
    bad = admin.post(f"/accounts/{aid}/keys", json={"name": "x", "scope": "root"}, headers=owner.headers)
    assert bad.status_code == 400 and bad.json["error"]["field"] == "scope"


def _time(job_view):
    from datetime import datetime

    return datetime.fromisoformat(job_view["updated_at"])


def test_bigquery_targets_are_bound_to_the_account(admin, operator, aid):
    from sysevents.config import Settings
    from sysevents.sinks.bigquery.targets import account_dataset

    a = make_account(admin, operator, aid + "-a")
    settings = Settings()

    def save(dataset, **extra):
        body = {"workflow": "bigquery_system_events",
                "config": {"dataset": dataset, "table": "t", "system_event_type": "failed", **extra}}  # fmt: skip
        return admin.post(
            f"/accounts/{a.aid}/jobs", json=body, headers=a.headers, query_string={"dry_run": "1"}
        )

    assert save(account_dataset(settings, a.aid)).status_code == 200
    assert save(account_dataset(settings, a.aid) + "__daily").status_code == 200
    for dataset in (account_dataset(settings, aid + "-b"), settings.audit_dataset, "analytics"):
        r = save(dataset)
        assert r.status_code == 400 and r.json["error"]["field"] == "config.dataset", dataset
    r = save(account_dataset(settings, a.aid), project="another-project")
    assert r.status_code == 400 and r.json["error"]["field"] == "config.project"


def test_moving_a_webhook_to_another_origin_drops_its_secrets_unless_sent_again(admin, account):
    base = f"/accounts/{account.aid}/jobs"
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = {**webhook_job("https://8.8.8.8/hook"), "id": "moving"}
    body["config"] = {**body["config"], "headers": {"Authorization": "Bearer top-secret-1", "X-Tag": "t1"},
                      "signing_secrets": [secret]}  # fmt: skip
    assert admin.post(base, json=body, headers=account.headers).status_code == 201
    # The same origin keeps them (a GET-edit-PUT round trip, or a PATCH of the path).
    same = admin.patch(
        f"{base}/moving", json={"config": {"webhook_url": "https://8.8.8.8/other"}}, headers=account.headers
    )
    assert same.status_code == 200 and "secrets_dropped" not in same.json
    assert same.json["config"]["headers"] == {"Authorization": "****-1", "X-Tag": "****"}
    # Another origin, with only the URL changed: the stored secrets stay behind.
    moved = admin.patch(
        f"{base}/moving", json={"config": {"webhook_url": "https://1.1.1.1/hook"}}, headers=account.headers
    )
    assert moved.status_code == 200, moved.json
    assert moved.json["secrets_dropped"] == [
        "config.headers.Authorization",
        "config.headers.X-Tag",
        "config.signing_secrets",
    ]
    assert moved.json["config"].get("headers", {}) == {} and moved.json["config"].get("signing_secrets") in (
        None,
        [],
    )
    # Sent again in clear, a value goes with the move.
    again = admin.patch(
        f"{base}/moving",
        json={
            "config": {
                "webhook_url": "https://9.9.9.9/hook",
                "headers": {"Authorization": "Bearer new-value-2"},
            }
        },
        headers=account.headers,
    )
    assert again.status_code == 200 and again.json["config"]["headers"] == {"Authorization": "****-2"}
