"""The /audit route: the account's own audit log, searched through the admin API."""

from __future__ import annotations

import time

from sysevents.events.model import new_event


def test_audit_search_finds_own_events_only(stack, admin, publisher, account, other):
    event = new_event(account.aid, "segment", "seg-audit", "updated", notes="audited")
    publisher.publish_all([(stack.topology.ingest_topic, event.to_json(), {})])
    found, deadline = [], time.monotonic() + 60
    while not found and time.monotonic() < deadline:
        r = admin.get(
            f"/accounts/{account.aid}/audit",
            query_string={"subject_type": "segment"},
            headers=account.headers,
        )
        assert r.status_code == 200, r.json
        found = [e for e in r.json["events"] if e["id"] == event.id]
        time.sleep(0.2)
    assert found and found[0]["data"]["notes"] == "audited"
    theirs = admin.get(f"/accounts/{other.aid}/audit", headers=other.headers).json["events"]
    assert event.id not in {e["id"] for e in theirs}
    r = admin.get(
        f"/accounts/{account.aid}/audit", query_string={"verb": "exploded"}, headers=account.headers
    )
    assert r.status_code == 400 and "unknown verb 'exploded'" in r.json["error"]["message"]
