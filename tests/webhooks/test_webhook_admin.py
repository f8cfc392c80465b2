"""Admin routes for webhook jobs: /deliveries, /stats, /replay; each refuses another account's key."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import functions_framework
import pytest
from helpers import pull

from sysevents.events.model import new_event

pytestmark = pytest.mark.integration
MAIN = Path(__file__).resolve().parents[2] / "functions" / "admin" / "main.py"


@pytest.fixture(scope="module")
def admin(stack):
    from sysevents import runtime

    runtime.reset()  # read the stack's SYSEVENTS_* (operator key hash, sealing keys)
    return functions_framework.create_app("handle", str(MAIN), "http").test_client()


def account(admin, stack, aid):
    operator = {"X-API-Key": stack.operator_key}
    assert admin.post("/accounts", json={"aid": aid}, headers=operator).status_code == 201
    r = admin.post(f"/accounts/{aid}/keys", json={"name": "tests"}, headers=operator)
    return {"X-API-Key": r.json["key"]}


def test_deliveries_stats_and_replay_routes(stack, admin, receiver, publisher, subscriber, dead_letters, aid):
    key, other = account(admin, stack, aid), account(admin, stack, aid + "-x")
    receiver.replies["/r"].append(410)
    job = {
        "id": "hook",
        "workflow": "webhook_system_events",
        "config": {"webhook_url": receiver.url("/r"), "system_event_type": "failed"},
    }
    r = admin.post(f"/accounts/{aid}/jobs", json=job, headers=key)
    assert r.status_code == 201, r.json
    stack.wait_for_job_caches(since=datetime.fromisoformat(r.json["updated_at"]))
    ev = new_event(aid, "work", "w", "failed")
    publisher.publish_all([(stack.topology.ingest_topic, ev.to_json(), {})])
    assert len(pull(subscriber, dead_letters, 1, timeout=60)) == 1
    base = f"/accounts/{aid}/jobs/hook"
    for path in ("/deliveries", "/stats"):
        assert admin.get(base + path, headers=other).status_code == 403
    assert admin.post(base + "/replay", headers=other).status_code == 403
    r = admin.get(base + "/deliveries", headers=key)
    assert [a["status"] for a in r.json["attempts"]] == [410]
    assert r.json["dead_letters"][0]["reason"] == "HTTP 410 from receiver"
    stats = admin.get(base + "/stats", headers=key).json
    assert (stats["received"], stats["dead_lettered"], stats["pending"]) == (1, 1, 0)
    assert admin.post(base + "/replay", json={"since": "yesterday"}, headers=key).status_code == 400
    r = admin.post(base + "/replay", json={}, headers=key)
    assert r.status_code == 202 and r.json["replayed"] == 1
    [got] = receiver.wait_for("/r", 1, timeout=60)
    assert got.json()["id"] == ev.id
    paths = admin.get("/openapi.json").json["paths"]
    assert {
        "/accounts/{aid}/jobs/{job_id}/deliveries",
        "/accounts/{aid}/jobs/{job_id}/stats",
        "/accounts/{aid}/jobs/{job_id}/replay",
    } <= set(paths)
