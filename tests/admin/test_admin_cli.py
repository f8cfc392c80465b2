"""`sysevents jobs ...` and `sysevents keys ...` against the admin function the stack runs."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sysevents.cli import main


def run(*args: str, input: str | None = None) -> str:
    r = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def test_jobs_commands_end_to_end(stack, aid, tmp_path):
    url, op = stack.function_urls["admin"], stack.operator_key
    run("keys", "--url", url, "--key", op, "add-account", aid)
    key = run("keys", "--url", url, "--key", op, "create", aid, "--name", "cli").split()[0]
    assert key.startswith("sek_")
    assert "cli" in run("keys", "--url", url, "--key", op, "list", aid)
    jobs = ["jobs", "--url", url, "--key", key]
    job_file = tmp_path / "job.json"
    job_file.write_text(
        json.dumps(
            {
                "workflow": "webhook_system_events",
                "config": {
                    "system_event_type": "synccomplete",
                    "webhook_url": "https://8.8.8.8/hook",
                    "headers": {"Authorization": "Bearer cli-secret-77"},
                    "json_template": "{v: event.data.verb}",
                },
            }
        )
    )
    created = json.loads(run(*jobs, "create", str(job_file), "--id", f"{aid}-cli"))
    assert created["version"] == 1 and created["config"]["headers"]["Authorization"] == "****77"
    assert f"{aid}-cli" in run(*jobs, "list")
    patch = tmp_path / "patch.json"
    patch.write_text('{"name": "from the CLI"}')
    assert json.loads(run(*jobs, "update", f"{aid}-cli", str(patch)))["version"] == 2
    assert "paused (version 3)" in run(*jobs, "pause", f"{aid}-cli")
    assert "active (version 4)" in run(*jobs, "resume", f"{aid}-cli")
    assert json.loads(run(*jobs, "preview", f"{aid}-cli")) == {"v": "failed"}
    assert json.loads(run(*jobs, "get", f"{aid}-cli"))["name"] == "from the CLI"
    stale = CliRunner().invoke(main, [*jobs, "update", f"{aid}-cli", str(patch), "--version", "1"])
    assert stale.exit_code == 1 and "HTTP 409: version: job" in stale.output
    bad = tmp_path / "bad.jsonnet"
    bad.write_text("{\n  a: ]\n}")
    err = CliRunner().invoke(main, [*jobs, "preview", f"{aid}-cli", "--template", str(bad)])
    assert (
        err.exit_code == 1 and "HTTP 422: json_template: " in err.output and "json_template:2:" in err.output
    )
    assert json.loads(run(*jobs, "delete", f"{aid}-cli"))["deleted"] is True
    assert f"{aid}-cli" not in run(*jobs, "list")


def test_publish_raw_needs_only_data_and_plain_publish_names_what_is_missing(stack):
    env = {k: v for k, v in stack.env.items()}
    ok = CliRunner(env=env).invoke(main, ["publish", "--raw", "--data", "not json"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("published message ")
    missing = CliRunner(env=env).invoke(main, ["publish", "--aid", "12", "--verb", "failed"])
    assert missing.exit_code == 2 and "missing option(s) --subject-type, --subject-id" in missing.output
