"""Content filters through the admin API: refused at save with the field and position, checked live."""

from __future__ import annotations

import json

from admin_helpers import webhook_job
from click.testing import CliRunner

from sysevents.cli import main


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


def test_cli_sets_filters_on_create_and_update(stack, account, tmp_path):
    jobs = ["jobs", "--url", stack.function_urls["admin"], "--key", account.headers["X-API-Key"]]
    job_file, empty = tmp_path / "job.json", tmp_path / "patch.json"
    job_file.write_text(json.dumps(webhook_job()))
    empty.write_text("{}")
    run = CliRunner().invoke
    r = run(main, [*jobs, "create", str(job_file), "--id", "cel", "--filter", 'event.data.actor == "ana"'])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["config"]["filter"] == 'event.data.actor == "ana"'
    r = run(
        main, [*jobs, "update", "cel", str(empty), "--exclude", "event.data.x == 1", "--exclude", "false"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["config"]["exclude"] == ["event.data.x == 1", "false"]
    r = run(main, [*jobs, "update", "cel", str(empty), "--filter", "event.verb =="])
    assert r.exit_code != 0 and "config.filter: line 1, column 14: Syntax error" in r.output


def test_preview_refuses_bad_input_naming_the_field(admin, account):
    def preview(body):
        return admin.post(f"/accounts/{account.aid}/jobs/preview", headers=account.headers, json=body)

    def job(**config):
        return {"workflow": "webhook_system_events", "config": {"webhook_url": "https://8.8.8.8/h", **config}}

    e = preview({"job": job(system_event_type="failed", filter="event.verb ==")}).json["error"]
    assert e["field"] == "job.config.filter" and e["position"] == {"line": 1, "column": 14}
    assert preview({"job": job()}).json["error"]["field"].startswith("job.config")  # no verb
    r = preview(
        {"job": job(system_event_type="failed"), "start": "2026-02-01T00:00:00Z", "end": "2026-01-01"}
    )
    assert r.status_code == 400 and r.json["error"]["field"] == "end"
    assert preview({"job": job(system_event_type="failed"), "sample": 500}).json["error"]["field"] == "sample"


def test_a_test_event_the_filter_drops_is_refused_not_lost(admin, account, receiver):
    body = {
        **webhook_job(receiver.url("/tested"), filter='event.data.notes.contains("permission")'),
        "id": "tested",
    }
    body["config"]["system_event_type"] = "failed"
    assert post_job(admin, account, body).status_code == 201
    test = f"/accounts/{account.aid}/jobs/tested/test"
    r = admin.post(test, headers=account.headers, json={})
    assert r.status_code == 422 and r.json["error"]["field"] == "event"
    assert "filter or exclude drops this test event" in r.json["error"]["message"]
    r = admin.post(test, headers=account.headers, json={"event": {"notes": "no permission"}})
    assert r.status_code == 202, r.json
