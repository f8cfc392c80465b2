"""Header values sealed at rest and redacted on the way out; template preview; the OpenAPI document."""

from __future__ import annotations

import logging
import math
import os

import pytest
from admin_helpers import SLACK, webhook_job

from sysevents.admin.api import URL_MAP
from sysevents.admin.openapi import openapi_path
from sysevents.jobs import secrets

TOKEN = "Bearer s3cr3t-token-value-42"


def test_header_values_are_sealed_at_rest_and_redacted(admin, account, firestore_client, caplog):
    caplog.set_level(logging.DEBUG)
    r = admin.post(
        f"/accounts/{account.aid}/jobs",
        json=webhook_job(headers={"Authorization": TOKEN}),
        headers=account.headers,
    )
    assert r.status_code == 201
    job_id = r.json["id"]
    assert r.json["config"]["headers"] == {"Authorization": "****42"}
    for view in (
        admin.get(f"/accounts/{account.aid}/jobs/{job_id}", headers=account.headers).json,
        admin.get(f"/accounts/{account.aid}/jobs", headers=account.headers).json["jobs"][0],
    ):
        assert view["config"]["headers"] == {"Authorization": "****42"}
    stored = (
        firestore_client.document(f"accounts/{account.aid}/jobs/{job_id}")
        .get()
        .to_dict()["config"]["headers"]["Authorization"]
    )
    assert stored.startswith(secrets.SEALED_PREFIX) and "s3cr3t" not in stored
    assert secrets.unseal(stored, os.environ["SYSEVENTS_SEALING_KEYS"]) == TOKEN
    assert "s3cr3t" not in caplog.text


def test_redacted_values_sent_back_keep_the_secret(admin, account, firestore_client):
    base = f"/accounts/{account.aid}/jobs"
    job = admin.post(
        base, json=webhook_job(headers={"Authorization": TOKEN, "X-Other": "one"}), headers=account.headers
    ).json
    redacted = job["config"]["headers"]
    r = admin.put(
        f"{base}/{job['id']}",
        json=webhook_job(headers={**redacted, "X-Other": "two"}),
        headers=account.headers,
    )
    assert r.status_code == 200
    r = admin.patch(f"{base}/{job['id']}", json={"name": "patched"}, headers=account.headers)
    assert r.status_code == 200
    stored = (
        firestore_client.document(f"accounts/{account.aid}/jobs/{job['id']}")
        .get()
        .to_dict()["config"]["headers"]
    )
    assert secrets.unseal_all(stored, os.environ["SYSEVENTS_SEALING_KEYS"]) == {
        "Authorization": TOKEN,
        "X-Other": "two",
    }


def test_sealing_round_trip_rotation_and_tampering():
    old, new = secrets.generate_key(), secrets.generate_key()
    sealed = secrets.seal("value", old)
    assert secrets.unseal(sealed, f"{new},{old}") == "value"  # rotation: new key first, old still unseals
    assert secrets.unseal(secrets.seal("v2", f"{new},{old}"), new) == "v2"
    with pytest.raises(secrets.SealingError):
        secrets.unseal(sealed, new)
    with pytest.raises(secrets.SealingError):
        secrets.unseal(sealed[:-4] + "AAAA", old)
    with pytest.raises(secrets.SealingError, match="no sealing key configured"):
        secrets.seal("x", "")
    assert secrets.unseal("plain") == "plain"
    assert (secrets.redact("short"), secrets.redact("a-long-secret-xy")) == ("****", "****xy")


def test_preview_renders_the_jobs_template_against_a_sample_or_given_event(admin, account):
    base = f"/accounts/{account.aid}/jobs"
    job = admin.post(base, json=webhook_job(json_template=SLACK), headers=account.headers).json
    r = admin.post(f"{base}/{job['id']}/preview", headers=account.headers)
    assert r.status_code == 200
    assert r.json["rendered"]["text"].startswith("Alert notification: Export to warehouse failed.")
    assert f"aid={account.aid}" in r.json["rendered"]["text"]
    event = {
        "aid": account.aid,
        "subject_type": "work",
        "subject_id": "w-9",
        "verb": "failed",
        "notes": "disk full",
    }
    r = admin.post(f"{base}/{job['id']}/preview", json={"event": event}, headers=account.headers)
    assert r.json["rendered"]["text"] == (
        f"Alert notification: disk full. For more info go to: "
        f"https://activate.getlytics.com/data/integrations/work/w-9?aid={account.aid}"
    )
    r = admin.post(
        f"{base}/{job['id']}/preview", json={"json_template": "{a: event.data.verb}"}, headers=account.headers
    )
    assert r.json["rendered"] == {"a": "failed"}


def test_preview_returns_the_jsonnet_error_with_line_and_column(admin, account):
    base = f"/accounts/{account.aid}/jobs"
    job = admin.post(base, json=webhook_job(), headers=account.headers).json
    r = admin.post(
        f"{base}/{job['id']}/preview",
        json={"json_template": "{\n  a: 1,\n  b: ]\n}"},
        headers=account.headers,
    )
    assert r.status_code == 422 and r.json["error"]["field"] == "json_template"
    assert "json_template:3:" in r.json["error"]["message"]
    r = admin.post(
        f"{base}/{job['id']}/preview",
        json={"event": {"aid": account.aid, "verb": "exploded"}},
        headers=account.headers,
    )
    assert r.status_code == 400 and r.json["error"]["field"] == "event"


def test_every_route_is_in_the_openapi_document(admin):
    r = admin.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json
    assert doc["openapi"].startswith("3.")
    rules = [(rule.rule, m) for rule in URL_MAP.iter_rules() for m in rule.methods - {"HEAD", "OPTIONS"}]
    assert len(rules) >= 18
    for path, method in rules:
        op = doc["paths"][openapi_path(path)][method.lower()]
        assert op["summary"] and op["responses"], (path, method)
        for ref in [v["content"]["application/json"]["schema"].get("$ref") for v in op["responses"].values()]:
            if ref:
                assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]


def test_signing_secrets_are_sealed_at_rest_shown_as_set_and_kept_on_round_trip(
    admin, account, firestore_client
):
    import base64

    from sysevents.jobs.secrets import is_sealed

    secret = "whsec_" + base64.b64encode(b"s" * 32).decode()
    body = webhook_job(signing_secrets=[secret])
    r = admin.post(f"/accounts/{account.aid}/jobs", json=body, headers=account.headers)
    assert r.status_code == 201, r.json
    job = r.json
    assert job["config"]["signing_secrets"] == "(set)" and secret not in r.get_data(as_text=True)
    stored = firestore_client.document(f"accounts/{account.aid}/jobs/{job['id']}").get().to_dict()
    assert [is_sealed(v) for v in stored["config"]["signing_secrets"]] == [True]

    # GET, change the name, PUT back what GET showed: the secret is kept, not replaced by "(set)"
    shown = admin.get(f"/accounts/{account.aid}/jobs/{job['id']}", headers=account.headers).json
    put = {
        "workflow": shown["workflow"],
        "config": shown["config"],
        "name": "renamed",
        "version": shown["version"],
    }
    r = admin.put(f"/accounts/{account.aid}/jobs/{job['id']}", json=put, headers=account.headers)
    assert r.status_code == 200, r.json
    again = firestore_client.document(f"accounts/{account.aid}/jobs/{job['id']}").get().to_dict()
    assert again["config"]["signing_secrets"] == stored["config"]["signing_secrets"]

    forged = {
        **put,
        "version": r.json["version"],
        "config": {**shown["config"], "signing_secrets": ["sealed:v1:forged"]},
    }
    r = admin.put(f"/accounts/{account.aid}/jobs/{job['id']}", json=forged, headers=account.headers)
    assert r.status_code == 400 and r.json["error"]["field"] == "config.signing_secrets"
    assert "sealed values cannot be supplied" in r.json["error"]["message"]


RUNAWAY = {
    "local f(n) = if n == 0 then 1 else f(n - 1) + f(n - 1); f(26)": "did not finish within",
    "std.length(std.makeArray(1e8, function(i) i))": ("memory limit", "did not finish within"),
}


@pytest.mark.parametrize("template", sorted(RUNAWAY))
def test_runaway_templates_are_bounded_on_save_and_in_both_previews(admin, account, template):
    """Every render of the admin API runs in the template sandbox: save (and dry run), the template
    preview and the job preview all stop a runaway template and say so; the API keeps serving."""
    want = RUNAWAY[template]
    want = want if isinstance(want, tuple) else (want,)
    base = f"/accounts/{account.aid}"
    r = admin.post(f"{base}/templates/preview", json={"json_template": template}, headers=account.headers)
    assert r.status_code == 422 and any(w in r.json["error"]["message"] for w in want), r.json
    r = admin.post(f"{base}/jobs", json=webhook_job(json_template=template), headers=account.headers,
                   query_string={"dry_run": "1"})  # fmt: skip
    assert r.status_code == 400 and r.json["error"]["field"] == "config.json_template"
    assert any(w in r.json["error"]["message"] for w in want)
    job = admin.post(f"{base}/jobs", json=webhook_job(), headers=account.headers).json["id"]
    r = admin.post(f"{base}/jobs/{job}/preview", json={"json_template": template}, headers=account.headers)
    assert r.status_code == 422 and any(w in r.json["error"]["message"] for w in want)
    assert admin.get(f"{base}/jobs/{job}", headers=account.headers).status_code == 200


def test_a_preview_while_every_template_worker_is_busy_answers_503_to_try_again(admin, account, monkeypatch):
    # Another account's slow renders hold every worker: this preview waits max_wait, then 503 with
    # Retry-After, instead of waiting behind all of them (and without blaming the template: not a 422).
    from sysevents import runtime

    sandbox = runtime.instance().sandbox
    monkeypatch.setattr(sandbox, "max_wait", 0.2)
    held = [sandbox._idle.get() for _ in range(sandbox.size)]
    try:
        r = admin.post(f"/accounts/{account.aid}/templates/preview", json={"json_template": "{a: 1}"},
                       headers=account.headers)  # fmt: skip
    finally:
        for worker in held:
            sandbox._idle.put(worker)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert "every template worker stayed busy" in r.json["error"]["message"]
    ok = admin.post(f"/accounts/{account.aid}/templates/preview", json={"json_template": "{a: 1}"},
                    headers=account.headers)  # fmt: skip
    assert ok.status_code == 200


def test_a_preview_past_the_accounts_render_cap_answers_429_to_try_again(admin, account, monkeypatch):
    # The account's own renders already fill its share of the sandbox on this instance: this one is refused
    # at once with 429 and Retry-After (its cap; not the template's fault, and no worker is waited for).
    from sysevents import runtime

    sandbox = runtime.instance().sandbox
    monkeypatch.setattr(sandbox, "per_account", 1)
    sandbox._enter(account.aid)
    try:
        r = admin.post(f"/accounts/{account.aid}/templates/preview", json={"json_template": "{a: 1}"},
                       headers=account.headers)  # fmt: skip
    finally:
        sandbox._leave(account.aid)
    assert r.status_code == 429 and r.headers["Retry-After"] == str(math.ceil(max(1.0, sandbox.timeout)))
    assert f"account {account.aid} already has 1 template renders" in r.json["error"]["message"]
    ok = admin.post(f"/accounts/{account.aid}/templates/preview", json={"json_template": "{a: 1}"},
                    headers=account.headers)  # fmt: skip
    assert ok.status_code == 200
