"""CRUD, versions, pagination and dry runs on the admin API (in-process, Firestore emulator)."""

from __future__ import annotations

from admin_helpers import seed_job, webhook_job


def test_seed_job_created_verbatim_read_listed_deleted(admin, account):
    seed = seed_job()
    r = admin.post(f"/accounts/{account.aid}/jobs", json=seed, headers=account.headers)
    assert r.status_code == 201, r.json
    job = r.json
    assert job["version"] == 1 and job["state"] == "active" and job["aid"] == account.aid
    assert job["config"]["system_event_sources"] == {"work": [], "segment": []}
    assert r.headers["ETag"] == '"1"'
    got = admin.get(f"/accounts/{account.aid}/jobs/{job['id']}", headers=account.headers)
    assert got.status_code == 200 and got.json["id"] == job["id"] and got.json["config"]["webhook_url"]
    listed = admin.get(f"/accounts/{account.aid}/jobs", headers=account.headers).json
    assert [j["id"] for j in listed["jobs"]] == [job["id"]] and listed["next_page_token"] is None
    r = admin.delete(f"/accounts/{account.aid}/jobs/{job['id']}", headers=account.headers)
    assert r.status_code == 200 and r.json == {"id": job["id"], "deleted": True, "version": 1}
    r = admin.get(f"/accounts/{account.aid}/jobs/{job['id']}", headers=account.headers)
    assert r.status_code == 404 and r.json["error"] == {
        "field": "job_id",
        "message": f"job {job['id']!r} not found",
    }


def test_client_chosen_id_and_taken_id(admin, account):
    r = admin.post(
        f"/accounts/{account.aid}/jobs",
        json={**webhook_job(), "id": f"{account.aid}-x"},
        headers=account.headers,
    )
    assert r.status_code == 201 and r.json["id"] == f"{account.aid}-x"
    r = admin.post(
        f"/accounts/{account.aid}/jobs",
        json={**webhook_job(), "id": f"{account.aid}-x"},
        headers=account.headers,
    )
    assert r.status_code == 409
    assert r.json["error"] == {"field": "id", "message": f"a job with id '{account.aid}-x' already exists"}


def test_replace_patch_pause_resume_each_bump_the_version(admin, account):
    base = f"/accounts/{account.aid}/jobs"
    job = admin.post(base, json=webhook_job(), headers=account.headers).json
    url = f"{base}/{job['id']}"
    r = admin.put(url, json={**webhook_job("https://8.8.4.4/2"), "name": "renamed"}, headers=account.headers)
    assert r.status_code == 200 and r.json["version"] == 2 and r.json["name"] == "renamed"
    r = admin.patch(
        url,
        json={"config": {"system_event_type": "failed", "system_event_multiple_types": None}},
        headers=account.headers,
    )
    assert r.status_code == 200 and r.json["version"] == 3
    assert (
        r.json["config"]["system_event_type"] == "failed"
        and "system_event_multiple_types" not in r.json["config"]
    )
    assert r.json["config"]["webhook_url"] == "https://8.8.4.4/2" and r.json["name"] == "renamed"
    r = admin.post(url + "/pause", headers=account.headers)
    assert r.status_code == 200 and (r.json["state"], r.json["version"]) == ("paused", 4)
    r = admin.post(url + "/resume", headers=account.headers)
    assert r.status_code == 200 and (r.json["state"], r.json["version"]) == ("active", 5)
    assert admin.get(url, headers=account.headers).headers["ETag"] == '"5"'


def test_stale_if_match_is_refused_with_409(admin, account):
    base = f"/accounts/{account.aid}/jobs"
    job = admin.post(base, json=webhook_job(), headers=account.headers).json
    url = f"{base}/{job['id']}"
    first = admin.patch(url, json={"name": "editor A"}, headers={**account.headers, "If-Match": '"1"'})
    assert first.status_code == 200 and first.json["version"] == 2
    second = admin.patch(url, json={"name": "editor B"}, headers={**account.headers, "If-Match": '"1"'})
    assert second.status_code == 409
    assert second.json["error"]["field"] == "version"
    assert "is at version 2, not 1" in second.json["error"]["message"]
    assert admin.get(url, headers=account.headers).json["name"] == "editor A"


def test_stale_version_field_is_refused_on_replace_delete_and_pause(admin, account):
    base = f"/accounts/{account.aid}/jobs"
    job = admin.post(base, json=webhook_job(), headers=account.headers).json
    url = f"{base}/{job['id']}"
    assert admin.put(url, json={**webhook_job(), "version": 1}, headers=account.headers).status_code == 200
    r = admin.put(url, json={**webhook_job(), "version": 1}, headers=account.headers)
    assert r.status_code == 409 and "is at version 2, not 1" in r.json["error"]["message"]
    r = admin.post(url + "/pause", json={"version": 1}, headers=account.headers)
    assert r.status_code == 409
    r = admin.delete(url, headers={**account.headers, "If-Match": "1"})
    assert r.status_code == 409
    r = admin.delete(url, headers={**account.headers, "If-Match": "2"})
    assert r.status_code == 200


def test_if_match_and_version_field_must_agree(admin, account):
    base = f"/accounts/{account.aid}/jobs"
    job = admin.post(base, json=webhook_job(), headers=account.headers).json
    r = admin.patch(
        f"{base}/{job['id']}", json={"name": "x", "version": 2}, headers={**account.headers, "If-Match": "1"}
    )
    assert r.status_code == 400 and r.json["error"]["message"] == "If-Match (1) and version (2) disagree"


def test_list_is_paginated_and_filtered(admin, account):
    base = f"/accounts/{account.aid}/jobs"
    ids = [
        admin.post(base, json={**webhook_job(), "id": f"{account.aid}-{i}"}, headers=account.headers).json[
            "id"
        ]
        for i in range(5)
    ]
    admin.post(f"{base}/{ids[3]}/pause", headers=account.headers)
    seen, token = [], None
    while True:
        page = admin.get(
            base,
            query_string={"page_size": 2, **({"page_token": token} if token else {})},
            headers=account.headers,
        ).json
        assert len(page["jobs"]) <= 2
        seen += [j["id"] for j in page["jobs"]]
        token = page["next_page_token"]
        if not token:
            break
    assert seen == ids
    paused = admin.get(base, query_string={"state": "paused"}, headers=account.headers).json["jobs"]
    assert [j["id"] for j in paused] == [ids[3]]
    active = admin.get(
        base, query_string={"state": "active", "workflow": "webhook_system_events"}, headers=account.headers
    ).json["jobs"]
    assert len(active) == 4
    r = admin.get(base, query_string={"workflow": "fax"}, headers=account.headers)
    assert r.status_code == 400 and r.json["error"]["field"] == "workflow"
    assert "valid values: webhook_system_events" in r.json["error"]["message"]


def test_dry_run_validates_and_stores_nothing(admin, account):
    base = f"/accounts/{account.aid}/jobs"
    r = admin.post(
        base,
        json={**webhook_job(), "id": f"{account.aid}-dry"},
        query_string={"dry_run": "true"},
        headers=account.headers,
    )
    assert r.status_code == 200 and r.json["dry_run"] is True and r.json["id"] == f"{account.aid}-dry"
    assert admin.get(f"{base}/{account.aid}-dry", headers=account.headers).status_code == 404
    bad = admin.post(
        base, json=webhook_job(json_template="{"), query_string={"dry_run": "1"}, headers=account.headers
    )
    assert bad.status_code == 400 and bad.json["error"]["field"] == "config.json_template"
    job = admin.post(base, json=webhook_job(), headers=account.headers).json
    r = admin.patch(
        f"{base}/{job['id']}", json={"name": "n"}, query_string={"dry_run": "1"}, headers=account.headers
    )
    assert r.status_code == 200 and r.json["name"] == "n"
    assert admin.get(f"{base}/{job['id']}", headers=account.headers).json["name"] is None
