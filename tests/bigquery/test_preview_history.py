"""A job previewed against the audit log (POST /accounts/{aid}/jobs/preview) reports what the live pipeline
did with the same events: the export job's deliveries and the alert job's notifications, through the real
stack (ingest -> webhook function -> receivers; the audit sink -> the BigQuery emulator -> the preview)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from bq_helpers import rows
from click.testing import CliRunner
from helpers import api_account, put_jobs, wait_until, webhook_job
from helpers import publish_events as publish

from sysevents.cli import main
from sysevents.events.model import new_event

pytestmark = pytest.mark.integration
WINDOW = 3000  # group_wait and group_interval: 1 s at the test stack's time scale (1/3000)
GROUPING = {
    "by": ["subject_id"],
    "group_wait": WINDOW,
    "group_interval": WINDOW,
    "repeat_interval": 2 * WINDOW,
}


def preview(stack, env, aid, **body):
    r = requests.post(
        f"{env['SYSEVENTS_API_URL']}/accounts/{aid}/jobs/preview",
        json=body,
        headers={"X-API-Key": env["SYSEVENTS_API_KEY"]},
        timeout=120,
    )
    return r.status_code, r.json()


def test_the_preview_counts_what_the_live_pipeline_delivered_and_notified(
    stack, store, publisher, receiver, bq, audit, aid
):
    env = api_account(stack, aid)
    export = webhook_job(f"{aid}-export", aid, receiver.url("/export"))
    alert = webhook_job(f"{aid}-alert", aid, receiver.url("/alert"), grouping=GROUPING)
    put_jobs(stack, store, export, alert)
    start = datetime.now(UTC) - timedelta(seconds=5)
    other = aid + "-other"  # a look-alike neighbour: never in this account's preview
    first = [new_event(aid, "work", "w-1", "failed") for _ in range(4)]
    first += [new_event(aid, "work", "w-2", "failed") for _ in range(2)]
    first += [new_event(aid, "work", "w-1", "completed"), new_event(other, "work", "w-1", "failed")]
    publish(stack, publisher, *first)
    time.sleep(4 * WINDOW / 3000)  # past group_wait and repeat_interval: w-1's group starts over
    second = [new_event(aid, "work", "w-1", "failed") for _ in range(3)]
    publish(stack, publisher, *second)
    mine = [e for e in first + second if e.aid == aid]

    assert len(receiver.wait_for("/export", 9, timeout=90)) == 9
    notified = receiver.wait_for("/alert", 3, timeout=90)
    assert wait_until(lambda: len(rows(bq, audit, "aid = @aid", aid=aid)) >= len(mine), timeout=90)
    time.sleep(2 * WINDOW / 3000)  # nothing more is due
    assert len(receiver.at("/alert")) == len(notified) == 3  # w-1, w-2, then w-1 again

    end = datetime.now(UTC).isoformat()
    status, saved = preview(stack, env, aid, job_id=export.id, start=start.isoformat(), end=end)
    assert status == 200, saved
    assert saved["scanned"] == len(mine) and saved["matched"] == saved["deliveries"] == 9
    assert saved["alerting"] is False and saved["truncated"] is False
    assert {e["data"]["aid"] for e in saved["sample"]} == {aid}

    status, grouped = preview(stack, env, aid, job_id=alert.id, start=start.isoformat(), end=end)
    assert status == 200, grouped
    assert grouped["matched"] == 9 and grouped["notifications"] == len(receiver.at("/alert")) == 3
    assert grouped["notifications_by_kind"] == {"digest": 3} and grouped["waiting_at_end"] == 0
    assert sorted(n["events"] for n in grouped["first_notifications"]) == [2, 3, 4]

    # the same job as an unsaved body (what a user previews before saving it) reports the same
    body = {"workflow": "webhook_system_events",
            "config": {"webhook_url": "https://8.8.8.8/hook", "system_event_type": "failed", "grouping": GROUPING}}  # fmt: skip
    status, unsaved = preview(stack, env, aid, job=body, start=start.isoformat(), end=end)
    assert status == 200, unsaved
    assert unsaved["notifications"] == 3 and unsaved["matched"] == 9 and unsaved["job"]["id"] is None

    status, err = preview(stack, env, aid, job=body, start="2020-01-01T00:00:00Z", end=end)
    assert status == 400 and err["error"]["field"] == "start"
    status, err = preview(stack, env, aid, job={"workflow": "webhook_system_events", "config": {}})
    assert status == 400 and err["error"]["field"].startswith("job.config")

    cli = CliRunner(env=env).invoke(
        main, ["jobs", "backtest", alert.id, "--start", start.isoformat(), "--end", end]
    )
    assert cli.exit_code == 0, cli.output
    assert "matched 9; would have sent 3 notification(s)" in cli.output and "digest: 3" in cli.output
