"""The default alert formats per channel (pure): headlines, Slack, Teams, PagerDuty, generic bodies."""

from __future__ import annotations

from sysevents.sinks.webhook import formats


def item(subject_id, verb="failed", subject_type="work", notes=None, repeat=False):
    data = {"aid": "acct-1", "subject_type": subject_type, "subject_id": subject_id, "verb": verb}
    if notes:
        data["notes"] = notes
    return {"event": {"id": f"e-{subject_id}", "time": "2031-01-01T00:00:00Z", "data": data},
            "link": f"https://x.test/{subject_id}", "repeat": repeat}  # fmt: skip


def digest(items, count=None, reason="grouped"):
    return {"job": {"id": "j", "name": None}, "account": "acct-1", "group": {"subject_type": "work"},
            "reason": reason, "count": count or len(items), "omitted": (count or len(items)) - len(items),
            "items": items}  # fmt: skip


def test_headlines_name_the_first_subjects_and_count_the_rest():
    d = digest([item(f"w-{i}") for i in range(12)])
    assert formats.headline(d) == "12 works failed in account acct-1: w-0, w-1, w-2 and 9 more"
    assert (
        formats.headline(digest([item("q-1", subject_type="query")]))
        == "1 query failed in account acct-1: q-1"
    )
    assert formats.headline(
        digest([item("q-1", subject_type="query"), item("q-2", subject_type="query")])
    ) == ("2 queries failed in account acct-1: q-1, q-2")
    mixed = digest([item("a"), item("b", verb="completed")])
    assert formats.headline(mixed) == "2 alerts in account acct-1: a, b"
    held = digest([item("a")], count=5, reason="rate_limited")
    assert formats.headline(held).startswith(
        "5 alerts held back by the rate limit in account acct-1: a and 4 more"
    )


def test_slack_and_teams_digests_list_each_event_with_its_link():
    d = digest([item("w-1", notes="disk full"), item("w-2", repeat=True)], count=3)
    text = formats.digest_body("slack", d)["text"].splitlines()
    assert text[0] == "3 works failed in account acct-1: w-1, w-2 and 1 more"
    assert text[1] == "• <https://x.test/w-1|work w-1 failed: disk full>"
    assert text[2] == "• <https://x.test/w-2|work w-2 failed (repeat)>" and text[3] == "… and 1 more"
    card = formats.digest_body("teams", d)["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard" and card["body"][0]["text"] == text[0]


def test_pagerduty_triggers_and_resolves_with_one_dedup_key_per_group():
    d = digest([item("w-1"), item("w-2")])
    trigger = formats.digest_body("pagerduty", d, dedup_key="group-1")
    resolve = formats.resolved_body("pagerduty", item("w-1", "completed")["event"], item("w-1")["event"],
                                    dedup_key="group-1")  # fmt: skip
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] != formats.dedup_of("group-2")
    assert len(trigger["dedup_key"]) <= 255 and trigger["routing_key"] == ""  # added only at send time
    p = trigger["payload"]
    assert (p["severity"], p["source"], p["component"], p["class"]) == (
        "error",
        "sysevents/acct-1",
        "work",
        "failed",
    )
    assert p["summary"] == "2 works failed in account acct-1: w-1, w-2"
    assert p["custom_details"]["subjects"] == ["work w-1 failed", "work w-2 failed"]


def test_generic_bodies_carry_the_digest_and_the_resolution():
    d = digest([item("w-1")])
    body = formats.digest_body("webhook", d)
    assert body["type"] == "sysevents.alert.digest" and body["items"] == d["items"]
    resolved = formats.resolved_body("webhook", item("w-1", "completed")["event"], item("w-1")["event"])
    assert resolved["type"] == "sysevents.alert.resolved" and resolved["summary"].startswith(
        "Resolved: work w-1"
    )
