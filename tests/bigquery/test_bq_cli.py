"""`sysevents export ...` against the session stack (in-process, through click's runner)."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from bq_helpers import rows
from click.testing import CliRunner
from helpers import api_account, wait_until

from sysevents.cli import main
from sysevents.events.model import new_event

pytestmark = pytest.mark.integration


def test_one_time_export_and_search_from_the_cli(stack, publisher, bq, audit, target, aid):
    t0 = datetime(2026, 4, 1, tzinfo=UTC)
    events = [new_event(aid, "work", f"w-{i}", "failed", time=t0 + timedelta(minutes=i)) for i in range(4)]
    publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in events])
    assert wait_until(lambda: len(rows(bq, audit, "aid = @aid", aid=aid)) >= 4)
    runner = CliRunner(env=api_account(stack, aid))

    out = runner.invoke(
        main,
        [
            "export",
            "create",
            "--aid",
            aid,
            "--dataset",
            target.dataset,
            "--table",
            target.table,
            "--mode",
            "one_time",
            "--start",
            t0.isoformat(),
            "--end",
            (t0 + timedelta(minutes=3)).isoformat(),
            "--verb",
            "failed",
            "--source",
            "work",
        ],
    )
    assert out.exit_code == 0, out.output
    assert "done: 3 row(s) written, 0 refused" in out.output
    job_id = out.output.split()[2]
    assert sorted(r["event_id"] for r in rows(bq, target)) == sorted(e.id for e in events[:3])

    status = runner.invoke(main, ["export", "status", job_id])
    assert status.exit_code == 0 and json.loads(status.output)["state"] == "done"

    found = runner.invoke(main, ["export", "search", "--aid", aid, "--verb", "failed", "--page-size", "2"])
    assert found.exit_code == 0, found.output
    lines = [json.loads(line) for line in found.stdout.splitlines()]
    assert [e["id"] for e in lines] == [events[3].id, events[2].id]
    assert "next page: --page-token" in found.stderr

    bad = runner.invoke(
        main,
        [
            "export",
            "create",
            "--aid",
            aid,
            "--dataset",
            "d",
            "--table",
            "t",
            "--mode",
            "one_time",
            "--verb",
            "failed",
        ],
    )
    assert bad.exit_code == 2 and "mode one_time needs start_time and end_time" in bad.output


def test_webhook_batch_export_from_the_cli(stack, publisher, bq, audit, receiver, aid):
    t0 = datetime(2026, 4, 2, tzinfo=UTC)
    events = [new_event(aid, "work", f"w-{i}", "failed", time=t0 + timedelta(minutes=i)) for i in range(3)]
    publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in events])
    assert wait_until(lambda: len(rows(bq, audit, "aid = @aid", aid=aid)) >= 3)

    args = ["export", "webhook", "--aid", aid, "--url", receiver.url("/cli"), "--verb", "failed"]
    args += ["--start", t0.isoformat(), "--end", (t0 + timedelta(minutes=2)).isoformat(), "--format", "json"]
    out = CliRunner(env=api_account(stack, aid)).invoke(main, args)
    assert out.exit_code == 0, out.output
    assert "done: 2 row(s) written" in out.output
    [batch] = receiver.at("/cli")
    assert [e["id"] for e in batch.json()] == [e.id for e in events[:2]]


def test_the_cli_writes_jobs_only_through_the_admin_api(stack, aid):
    """What the API refuses, the CLI cannot store: a metadata-server URL, another account's dataset."""
    runner = CliRunner(env=api_account(stack, aid))
    args = ["export", "webhook", "--url", "http://169.254.169.254/computeMetadata/v1/", "--verb", "failed"]
    out = runner.invoke(main, [*args, "--start", "2026-01-01T00:00:00Z", "--end", "2026-01-02T00:00:00Z"])
    assert (
        out.exit_code == 2
        and "config.webhook_url: destination '169.254.169.254' is not a public" in out.output
    )
    out = runner.invoke(
        main, ["export", "create", "--dataset", "somebody_else", "--table", "t", "--verb", "failed"]
    )
    assert out.exit_code == 2 and "config.dataset: must be this account's dataset" in out.output
