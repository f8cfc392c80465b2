"""`sysevents status`: backlogs, the delay queue, waiting and dead-lettered deliveries, failing and
auto-disabled jobs, quarantine (sysevents.obs.status), for the local stack (`sysevents dev`) or a deployment
(the project's Firestore, Cloud Tasks and Cloud Monitoring, with the operator's credentials)."""

from __future__ import annotations

import json

import click

from sysevents.cli.common import use_dev_stack_env


@click.command()
@click.option("--aid", help="Only this account's jobs (default: every account's).")
@click.option("--json", "as_json", is_flag=True, help="The whole report as JSON (every job listed).")
@click.option("--limit", default=20, show_default=True, help="Jobs shown per list in the text report.")
def status(aid: str | None, as_json: bool, limit: int) -> None:
    """What needs attention: backlogs, waits, dead letters, failing and auto-disabled jobs.

    Against the local stack when `sysevents dev` runs, else the project of SYSEVENTS_PROJECT (or
    GOOGLE_CLOUD_PROJECT) with application default credentials. Exits 1 when a job is failing or
    auto-disabled (or a part could not be read), so that scripts can check it."""
    from sysevents.obs.status import collect, render
    from sysevents.runtime import Runtime

    use_dev_stack_env()
    rt = Runtime()
    try:
        report = collect(rt, aid)
    finally:
        rt.close()
    click.echo(json.dumps(report, indent=2, default=str) if as_json else render(report, limit=limit))
    j = report["jobs"]
    if any("error" in (report[k] or {}) for k in ("jobs", "delay_queue", "quarantine")) or (
        j["failing"] or j["disabled"]
    ):
        raise SystemExit(1)
