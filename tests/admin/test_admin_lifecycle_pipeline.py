"""Through the running admin function and the real pipeline: lifecycle events, test events, loop protection."""

from __future__ import annotations

from datetime import datetime

import pytest
import requests

from sysevents.events.model import new_event
from sysevents.jobs import origin
from sysevents.jobs.origin import Kind, deliverable
from sysevents.jobs.registry import job_from_dict

TOKEN = "Bearer tok-abcdef-99"


@pytest.fixture
def api(stack, aid):
    """requests against the admin function the stack runs, with a fresh account's key."""
    base = stack.function_urls["admin"].rstrip("/")
    op = {"X-API-Key": stack.operator_key}
    assert requests.post(f"{base}/accounts", json={"aid": aid}, headers=op, timeout=30).status_code == 201
    r = requests.post(f"{base}/accounts/{aid}/keys", json={"name": "pipeline-test"}, headers=op, timeout=30)
    key = r.json()

    def call(method: str, path: str, headers: dict | None = None, **kw) -> requests.Response:
        headers = {"X-API-Key": key["key"], **(headers or {})}
        return requests.request(method, f"{base}/accounts/{aid}{path}", headers=headers, timeout=30, **kw)

    call.prefix = key["prefix"]
    return call


def _written(job: dict) -> datetime:
    """A time the job caches must have reached to hold this version of the job (set just before the write)."""
    return datetime.fromisoformat(job["updated_at"])


def _job(url: str, verbs: list[str], **config) -> dict:
    return {
        "workflow": "webhook_system_events",
        "config": {
            "system_event_multiple_types": verbs,
            "system_event_sources": {"work": []},
            "webhook_url": url,
            **config,
        },
    }


def test_lifecycle_events_flow_through_the_pipeline(stack, receiver, api, aid):
    watcher = api(
        "POST", "/jobs", json=_job(receiver.url("/watch"), ["created", "updated", "deleted"])
    ).json()
    stack.wait_for_job_caches(_written(watcher))
    r = api(
        "POST",
        "/jobs",
        json={
            **_job(receiver.url("/target"), ["failed"], headers={"Authorization": TOKEN}),
            "id": f"{aid}-target",
        },
    )
    assert r.status_code == 201
    target = r.json()
    assert api("PATCH", f"/jobs/{target['id']}", json={"name": "renamed"}, headers={"If-Match": "1"}).ok
    assert api("POST", f"/jobs/{target['id']}/pause").json()["state"] == "paused"
    resumed = api("POST", f"/jobs/{target['id']}/resume").json()
    assert resumed["version"] == 4
    stack.wait_for_job_caches(_written(resumed))

    # A test event goes through ingest and the webhook sink to this job only, with the real header value.
    sent = api("POST", f"/jobs/{target['id']}/test", json={"event": {"notes": "hello"}})
    assert sent.status_code == 202, sent.text
    [got] = receiver.wait_for("/target", 1)
    assert got.json()["id"] == sent.json()["event"]["id"] and got.json()["data"]["notes"] == "hello"
    assert got.headers["Authorization"] == TOKEN

    assert api("DELETE", f"/jobs/{target['id']}", headers={"If-Match": '"4"'}).ok
    seen = receiver.wait_for("/watch", 5)
    about_target = sorted(
        (e.json()["data"] for e in seen if e.json()["data"]["subject_id"] == target["id"]),
        key=lambda d: (d["job_version"], d["verb"] == "deleted"),
    )
    assert [(d["verb"], d["change"], d["job_version"]) for d in about_target] == [
        ("created", "created", 1),
        ("updated", "updated", 2),
        ("updated", "paused", 3),
        ("updated", "resumed", 4),
        ("deleted", "deleted", 4),
    ]
    assert {d["actor"] for d in about_target} == {f"pipeline-test [{api.prefix}]"}
    assert all(d["aid"] == aid and d["subject_type"] == "work" for d in about_target)
    assert all(
        d[origin.FIELD] == {"job_id": target["id"], "kind": "lifecycle", "hops": 0} for d in about_target
    )
    assert watcher["id"] not in {e.json()["data"]["subject_id"] for e in seen}
    assert len(receiver.at("/target")) == 1  # the test event only: no lifecycle event was delivered to it


def test_a_job_never_receives_failures_caused_by_its_own_deliveries(stack, receiver, publisher, api, aid):
    looping = api("POST", "/jobs", json=_job(receiver.url("/self"), ["failed"])).json()
    other = api("POST", "/jobs", json=_job(receiver.url("/other"), ["failed"])).json()
    stack.wait_for_job_caches(max(_written(looping), _written(other)))
    own_failure = new_event(
        aid,
        "work",
        looping["id"],
        "failed",
        notes="deliveries keep failing",
        **origin.mark(looping["id"], Kind.DELIVERY, hops=1),
    )
    control = new_event(aid, "work", "some-other-work", "failed")
    sealed = origin.seal(
        own_failure.to_json(), stack.env["SYSEVENTS_SEALING_KEYS"]
    )  # as sysevents publishes it
    publisher.publish_all(
        [
            (stack.topology.ingest_topic, own_failure.to_json(), sealed),
            (stack.topology.ingest_topic, control.to_json(), {}),
        ]
    )
    other = receiver.wait_for("/other", 2)
    assert {e.json()["id"] for e in other} == {own_failure.id, control.id}
    assert [e.json()["id"] for e in receiver.wait_for("/self", 1)] == [control.id]


def _job_obj(job_id: str, aid: str = "a"):
    return job_from_dict(_job("https://8.8.8.8/", ["failed"]), job_id=job_id, aid=aid)


def test_origin_rules():
    a, b = _job_obj("a"), _job_obj("b")
    plain = new_event("a", "work", "a", "failed")
    assert deliverable(plain, [a, b]) == ([a, b], [])
    own = new_event("a", "work", "a", "failed", **origin.caused_by("a", plain))
    kept, held = deliverable(own, [a, b])
    assert kept == [b] and held == [("a", "loop protection: the event is about this job's own activity")]
    chain = own
    for _ in range(origin.MAX_HOPS):
        chain = new_event("a", "work", "b", "failed", **origin.caused_by("b", chain))
    assert origin.hops(chain) == origin.MAX_HOPS + 1
    kept, held = deliverable(chain, [a, b])
    assert kept == [] and all("hops from a person" in why for _, why in held)
    test = new_event("a", "work", "x", "failed", **origin.mark("b", Kind.TEST))
    assert deliverable(test, [a, b])[0] == [b]
    spoofed = new_event("a", "work", "x", "failed", sysevents_origin={"hops": "many"})
    assert deliverable(spoofed, [a, b])[0] == [a, b]
