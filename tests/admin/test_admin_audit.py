"""The /audit route: the account's own audit log, searched through the admin API."""

from __future__ import annotations

from helpers import wait_until

from sysevents.events.model import new_event


def test_audit_search_finds_own_events_only(stack, admin, publisher, account, other):
    event = new_event(account.aid, "segment", "seg-audit", "updated", notes="audited")
    publisher.publish_all([(stack.topology.ingest_topic, event.to_json(), {})])

    def search() -> list[dict]:
        r = admin.get(
            f"/accounts/{account.aid}/audit",
            query_string={"subject_type": "segment"},
            headers=account.headers,
        )
        assert r.status_code == 200, r.json
        return [e for e in r.json["events"] if e["id"] == event.id]

    found = wait_until(search, timeout=60)
    assert found and found[0]["data"]["notes"] == "audited"
    theirs = admin.get(f"/accounts/{other.aid}/audit", headers=other.headers).json["events"]
    assert event.id not in {e["id"] for e in theirs}
    r = admin.get(
        f"/accounts/{account.aid}/audit", query_string={"verb": "exploded"}, headers=account.headers
    )
    assert r.status_code == 400 and "unknown verb 'exploded'" in r.json["error"]["message"]
