"""Each class of bad job input gets a 400 naming the field, with a message saying what is valid."""

from __future__ import annotations

import pytest
from admin_helpers import PUBLIC_URL, webhook_job

from sysevents.admin.errors import ApiError
from sysevents.admin.validation import parse_job
from sysevents.config import Settings
from sysevents.jobs.model import WORKFLOWS


def post(admin, account, body, **kw):
    return admin.post(f"/accounts/{account.aid}/jobs", headers=account.headers, **({"json": body} | kw))


def error(r, status: int = 400) -> dict:
    assert r.status_code == status, r.json
    return r.json["error"]


def test_body_not_json(admin, account):
    r = admin.post(
        f"/accounts/{account.aid}/jobs",
        data=b"{nope",
        headers={**account.headers, "Content-Type": "application/json"},
    )
    assert error(r)["message"].startswith("request body is not valid JSON")


def test_body_not_an_object(admin, account):
    assert error(post(admin, account, ["a"]))["message"] == "request body must be a JSON object"


def test_unknown_workflow_lists_valid_values(admin, account):
    e = error(post(admin, account, {**webhook_job(), "workflow": "fax_system_events"}))
    assert e == {
        "field": "workflow",
        "message": f"unknown workflow 'fax_system_events'; valid values: {', '.join(WORKFLOWS)}",
    }
    assert "webhook_system_events" in WORKFLOWS


def test_unknown_verb_lists_valid_values(admin, account):
    job = webhook_job()
    job["config"]["system_event_type"] = "exploded"
    e = error(post(admin, account, job))
    assert e["field"] == "config.system_event_type"
    assert e["message"].startswith(
        "unknown system_event_type 'exploded'; valid values: created, updated, deleted"
    )


def test_unknown_subject_type_lists_valid_values(admin, account):
    job = webhook_job()
    job["config"]["system_event_sources"] = {"planet": []}
    e = error(post(admin, account, job))
    assert e["field"] == "config.system_event_sources"
    assert "unknown system_event_sources key 'planet'; valid values: account, auth, user" in e["message"]


def test_missing_verb(admin, account):
    job = webhook_job()
    del job["config"]["system_event_type"]
    e = error(post(admin, account, job))
    assert e["field"] == "config"
    assert e["message"] == "set system_event_type (one verb) or system_event_multiple_types (several)"


def test_unknown_fields_are_refused(admin, account):
    e = error(post(admin, account, {**webhook_job(), "owner": "me"}))
    assert e == {
        "field": "owner",
        "message": "unknown field; allowed: id, name, workflow, config, state, version",
    }
    job = webhook_job()
    job["config"]["webhook_uri"] = PUBLIC_URL
    e = error(post(admin, account, job))
    assert e["field"] == "config.webhook_uri" and e["message"].startswith("unknown field; allowed: ")


def test_missing_config(admin, account):
    assert error(post(admin, account, {"workflow": "webhook_system_events"})) == {
        "field": "config",
        "message": "missing or not a JSON object",
    }


def test_bad_job_id(admin, account):
    e = error(post(admin, account, {**webhook_job(), "id": "../etc"}))
    assert e["field"] == "id" and "letters, digits" in e["message"]


def test_template_syntax_error_names_line_and_column(admin, account):
    e = error(post(admin, account, webhook_job(json_template='{\n  "text": event.data.notes +\n}')))
    assert e["field"] == "config.json_template"
    assert "json_template:3:" in e["message"]


def test_template_runtime_error_against_the_sample_event(admin, account):
    e = error(post(admin, account, webhook_job(json_template="{ text: event.data.no_such_field }")))
    assert e["field"] == "config.json_template" and "no_such_field" in e["message"]


def test_template_imports_are_refused(admin, account):
    e = error(post(admin, account, webhook_job(json_template='importstr "/etc/passwd"')))
    assert e["field"] == "config.json_template" and "imports are not allowed" in e["message"]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://10.1.2.3/hook", "destination '10.1.2.3' is not a public address"),
        (
            "https://169.254.169.254/computeMetadata/v1/",
            "destination '169.254.169.254' is not a public address",
        ),
        ("https://metadata.google.internal/", "is the metadata server"),
        ("https://[::1]:8443/", "destination '::1' is not a public address"),
        ("https://user:pw@8.8.8.8/", "must not carry credentials"),
    ],
)
def test_private_and_metadata_destinations_are_refused(admin, account, url, why):
    e = error(post(admin, account, webhook_job(url)))
    assert e["field"] == "config.webhook_url" and why in e["message"]


def test_http_is_refused_unless_allowed():
    strict = Settings(allow_http=False, destination_allowlist=(), sealing_keys=None)
    with pytest.raises(ApiError) as err:
        parse_job(webhook_job("http://8.8.8.8/hook"), aid="a", job_id="j", settings=strict, sandbox=None)
    assert (err.value.status, err.value.field) == (400, "config.webhook_url")
    assert err.value.message == "destination must use https, not 'http'"


def test_loopback_is_refused_without_the_development_allowlist():
    strict = Settings(allow_http=True, destination_allowlist=(), sealing_keys=None)
    with pytest.raises(ApiError) as err:
        parse_job(webhook_job("http://127.0.0.1:9/hook"), aid="a", job_id="j", settings=strict, sandbox=None)
    assert err.value.message == "destination '127.0.0.1' is not a public address"


@pytest.mark.parametrize(
    ("headers", "field", "message"),
    [
        ({"Bad Name": "x"}, "config.headers", "header name 'Bad Name' is not a valid token"),
        ({"Content-Type": "text/plain"}, "config.headers.Content-Type", "is set by sysevents or by HTTP"),
        ({"Webhook-Signature": "v1,x"}, "config.headers.Webhook-Signature", "is set by sysevents or by HTTP"),
        ({"X-Token": "a\r\nInjected: yes"}, "config.headers.X-Token", "printable ASCII"),
        ({"X-Token": 42}, "config.headers.X-Token", "header value must be a string"),
        ({"X-Token": "sealed:v1:abc"}, "config.headers.X-Token", "sealed values cannot be supplied"),
    ],
)
def test_header_names_and_values_are_checked(admin, account, headers, field, message):
    e = error(post(admin, account, webhook_job(headers=headers)))
    assert e["field"] == field and message in e["message"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": "n" * 201}, "name", "at most 200 characters"),
        (
            {"config": {"json_template": "{}" + " " * 33000}},
            "config.json_template",
            "at most 32768 characters",
        ),
        (
            {"config": {"webhook_url": "https://8.8.8.8/" + "a" * 2100}},
            "config.webhook_url",
            "at most 2048 characters",
        ),
        (
            {"config": {"headers": {"X-Long": "v" * 2049}}},
            "config.headers.X-Long",
            "longer than 2048 characters",
        ),
        ({"config": {"headers": {f"X-{i}": "v" for i in range(33)}}}, "config.headers", "at most 32 headers"),
        (
            {"config": {"system_event_sources": {"work": [str(i) for i in range(1001)]}}},
            "config.system_event_sources",
            "the limit is 1000",
        ),
        (
            {"config": {"system_event_sources": {"work": ["x" * 257]}}},
            "config.system_event_sources.work",
            "longer than 256 characters",
        ),
    ],
)
def test_size_limits_on_every_field(admin, account, body, field, message):
    job = webhook_job()
    job["config"].update(body.pop("config", {}))
    e = error(post(admin, account, {**job, **body}))
    assert e["field"] == field and message in e["message"]


def test_whole_body_size_limit(admin, account):
    r = post(admin, account, {**webhook_job(), "name": "x" * 300_000})
    assert error(r, 413)["message"].endswith("the limit is 262144 bytes")


def test_bad_state_and_version_values(admin, account):
    e = error(post(admin, account, {**webhook_job(), "state": "sleeping"}))
    assert e == {"field": "state", "message": "unknown state 'sleeping'; valid values: active, paused"}
    job = admin.post(f"/accounts/{account.aid}/jobs", json=webhook_job(), headers=account.headers).json
    r = admin.patch(
        f"/accounts/{account.aid}/jobs/{job['id']}",
        json={"name": "x"},
        headers={**account.headers, "If-Match": "latest"},
    )
    assert error(r) == {"field": "If-Match", "message": "must be a job version number, got 'latest'"}


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "message"),
    [
        ("post", "/jobs", b"[" * 2000 + b"]" * 2000, None, "nested 2000 levels deep; the limit is 16"),
        ("put", "/jobs/{job}", b'{"version": 1e400}', "version", "number 1e400 is out of range"),
        ("put", "/jobs/{job}", b'{"version": 1.5}', "version", "must be a job version number"),
        ("post", "/jobs", b'{"name": "\\ud800"}', "name", "unpaired surrogate"),
        ("post", "/jobs/{job}/replay", b"[1]", None, "request body must be a JSON object"),
        ("post", "/jobs/{job}/test", b'{"event": {"time": "2020-01-01T00:00:00Z"}}', "event.time", "cannot be overridden"),
        ("post", "/jobs/{job}/test", b'{"event": {"event_id": "x"}}', "event.event_id", "cannot be overridden"),
        ("post", "/jobs/{job}/test", b'{"event": {"sysevents_origin": {}}}', "event.sysevents_origin", "cannot be overridden"),
    ],
)  # fmt: skip
def test_malformed_requests_get_a_400_naming_the_field(admin, account, method, path, body, field, message):
    """Each of these answered 500 before (RecursionError, OverflowError, TypeError, AttributeError)."""
    job = admin.post(f"/accounts/{account.aid}/jobs", json=webhook_job(), headers=account.headers).json["id"]
    url = f"/accounts/{account.aid}" + path.format(job=job)
    r = getattr(admin, method)(
        url, data=body, headers={**account.headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 400, r.json
    assert r.json["error"]["field"] == field and message in r.json["error"]["message"]


@pytest.mark.parametrize("token", ["a/b", "..", "__x__", "x" * 300])
def test_page_tokens_that_were_never_handed_out_are_refused(admin, account, token):
    r = admin.get(
        f"/accounts/{account.aid}/jobs", query_string={"page_token": token}, headers=account.headers
    )
    assert r.status_code == 400 and r.json["error"]["field"] == "page_token"


def test_path_parameters_that_name_nothing_are_404(admin, operator):
    r = admin.get("/accounts/a%2Fb/jobs", headers=operator)
    assert r.status_code in (404, 400)
    r = admin.get("/accounts/__x__/jobs/..", headers=operator)
    assert r.status_code == 404
