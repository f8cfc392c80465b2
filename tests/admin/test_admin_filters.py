"""Content filters through the admin API: refused at save with the field and position, checked live."""

from __future__ import annotations

from admin_helpers import webhook_job


def post_job(admin, account, body):
    return admin.post(f"/accounts/{account.aid}/jobs", headers=account.headers, json=body)


def validate(admin, account, body):
    return admin.post(f"/accounts/{account.aid}/filters/validate", headers=account.headers, json=body)


def test_a_job_with_filters_is_stored_and_shown(admin, account):
    body = webhook_job(
        filter='event.data.notes.contains("permission")', exclude=['event.data.actor == "sync-bot"']
    )
    r = post_job(admin, account, body)
    assert r.status_code == 201, r.json
    shown = admin.get(f"/accounts/{account.aid}/jobs/{r.json['id']}", headers=account.headers).json
    assert shown["config"]["filter"] == 'event.data.notes.contains("permission")'
    assert shown["config"]["exclude"] == ['event.data.actor == "sync-bot"']


def test_a_bad_filter_is_refused_naming_the_field_and_position(admin, account):
    r = post_job(
        admin, account, webhook_job(filter='event.verb == "failed" &&\n  event.data.notes.contains(1)')
    )
    assert r.status_code == 400
    e = r.json["error"]
    assert e["field"] == "config.filter"
    assert e["position"] == {"line": 2, "column": 28}
    assert e["message"].startswith("line 2, column 28: found no matching overload for 'contains'")

    excludes = ["true", "false", 'event.verb == "x"', "event.data.a.exists(x, event.data.b == x)"]
    e = post_job(admin, account, webhook_job(exclude=excludes)).json["error"]
    assert e["field"] == "config.exclude[3]"
    assert e["position"] == {"line": 1, "column": 24}
    assert "only its own variables" in e["message"]

    e = post_job(admin, account, webhook_job(exclude=["true"] * 51)).json["error"]
    assert e["field"] == "config.exclude" and "at most 50" in e["message"]


def test_validate_endpoint(admin, account):
    assert validate(admin, account, {"filter": 'event.verb == "failed"'}).json == {"ok": True}
    r = validate(admin, account, {"filter": "event.verb =="})
    assert r.status_code == 422
    assert r.json["error"]["field"] == "filter" and r.json["error"]["position"] == {"line": 1, "column": 14}
    r = validate(admin, account, {"exclude": ["true", "1"]})
    assert r.status_code == 422 and r.json["error"]["field"] == "exclude[1]"
    assert "must be true or false" in r.json["error"]["message"] and "position" not in r.json["error"]
    event = {
        "aid": account.aid,
        "subject_type": "work",
        "subject_id": "w1",
        "verb": "failed",
        "actor": "sync-bot",
        "notes": "x",
    }
    check = {
        "filter": 'event.verb == "failed"',
        "exclude": ['event.data.actor == "sync-bot"'],
        "event": event,
    }
    assert validate(admin, account, check).json == {"ok": True, "matches": False}
    check["event"] = {**event, "actor": "ana"}
    assert validate(admin, account, check).json == {"ok": True, "matches": True}
    assert validate(admin, account, {}).status_code == 400
