"""`sysevents export ...`: BigQuery export jobs and webhook batch exports (created through the admin API,
like every job), running a backfill here with a progress bar, its status, and audit-log search.

`create` and `webhook` go through the admin API (`--url`, `--key`, as `sysevents jobs`): the job is
validated, its secrets sealed and its lifecycle events published like any other. `run`, `status` and
`search` work on the deployment's Firestore and BigQuery directly (the local stack's emulators when
`sysevents dev` runs), as an operator tool.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from sysevents.cli.common import Api, error_text, key_option, url_option, use_dev_stack_env
from sysevents.events.model import SUBJECT_TYPES, VERBS
from sysevents.sinks.bigquery.config import ExportMode


def _runtime():
    from sysevents.runtime import Runtime

    use_dev_stack_env()
    return Runtime()


def _account(api: Api, aid: str | None) -> str:
    aid = aid or (api.dev_aid if api.key_from_dev else None) or api.call("GET", "/whoami").json().get("aid")
    if not aid:
        raise click.UsageError("the operator key belongs to no account: pass --aid")
    return aid


def _create(api: Api, aid: str, body: dict[str, Any]) -> dict[str, Any]:
    r = api.call("POST", f"/accounts/{aid}/jobs", json=body, expect_error=True)
    if r.status_code == 400:
        raise click.UsageError(error_text(r))
    if r.status_code >= 400:
        raise click.ClickException(error_text(r))
    return r.json()


def _sources(sources: tuple[str, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for s in sources:
        kind, _, sid = s.partition(":")
        found.setdefault(kind, []).extend([sid] if sid else [])
    return found


def _backfill(rt, job) -> None:
    from sysevents.backfill.engine import run_backfill

    bar = None
    done = 0

    def progress(p) -> None:
        nonlocal bar, done
        if bar is None:
            bar = click.progressbar(length=max(p.total, 1), label=f"backfilling {job.id}", show_pos=True)
            bar.__enter__()
        bar.update(p.scanned - done)
        done = p.scanned

    try:
        result = run_backfill(rt, job, progress=progress)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    click.echo(
        f"{job.id}: {result.state.value}: {result.written} row(s) written, {result.refused} refused "
        f"(dead-lettered with their reason), {result.scanned} scanned"
    )


@click.group("export")
@url_option
@key_option
@click.pass_context
def export(ctx: click.Context, url: str | None, key: str | None) -> None:
    """BigQuery export jobs, webhook batch exports and the audit log."""
    ctx.obj = {"url": url, "key": key}


def _api(ctx_obj: dict) -> Api:
    return Api(ctx_obj["url"], ctx_obj["key"])


@export.command("create")
@click.option("--aid", help="Account id (default: the key's account).")
@click.option("--dataset", required=True, help="Target BigQuery dataset.")
@click.option("--table", required=True, help="Target BigQuery table.")
@click.option("--project", "target_project", help="Target project (default: the deployment's).")
@click.option(
    "--mode",
    type=click.Choice([m.value for m in ExportMode]),
    default=ExportMode.CONTINUOUS.value,
    show_default=True,
)
@click.option(
    "--start", "start_time", help="one_time / backfill_then_continuous: from (ISO 8601, inclusive)."
)
@click.option("--end", "end_time", help="one_time: to (ISO 8601, exclusive).")
@click.option(
    "--verb",
    "verbs",
    multiple=True,
    required=True,
    type=click.Choice(VERBS),
    help="Verb to export (repeat for several).",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="TYPE[:ID]",
    help="Subject type, optionally one id (repeatable; none: every subject). One of: "
    + ", ".join(SUBJECT_TYPES)
    + ".",
)
@click.option("--no-create", is_flag=True, help="Fail instead of creating the table when it is missing.")
@click.option("--name", help="Job name.")
@click.option(
    "--run/--no-run", default=True, show_default=True, help="Run the backfill now (backfill modes)."
)
@click.pass_obj
def create(
    obj, aid, dataset, table, target_project, mode, start_time, end_time, verbs, sources, no_create, name, run
) -> None:
    """Create a BigQuery export job; for backfill modes, run its backfill with a progress bar."""
    api = _api(obj)
    aid = _account(api, aid)
    config: dict = {
        "dataset": dataset,
        "table": table,
        "mode": mode,
        "create_if_missing": not no_create,
        "system_event_multiple_types": list(verbs),
    }
    for key, value in (("project", target_project), ("start_time", start_time), ("end_time", end_time)):
        if value:
            config[key] = value
    if sources:
        config["system_event_sources"] = _sources(sources)
    view = _create(api, aid, {"workflow": "bigquery_system_events", "config": config, "name": name})
    target = f"{view['config'].get('project') or 'the deployment project'}.{dataset}.{table}"
    click.echo(f"created job {view['id']} ({mode}) exporting to {target}")
    if mode != ExportMode.CONTINUOUS.value and run:
        rt = _runtime()
        _backfill(rt, rt.jobs.find(aid, view["id"]))


@export.command("webhook")
@click.option("--aid", help="Account id (default: the key's account).")
@click.option("--url", "webhook_url", required=True, help="Receiver URL (https).")
@click.option("--start", "start_time", required=True, help="From (ISO 8601, inclusive).")
@click.option("--end", "end_time", required=True, help="To (ISO 8601, exclusive).")
@click.option("--format", "fmt", type=click.Choice(["ndjson", "json"]), default="ndjson", show_default=True)
@click.option("--max-events", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option(
    "--verb", "verbs", multiple=True, required=True, type=click.Choice(VERBS), help="Verb (repeatable)."
)
@click.option(
    "--source", "sources", multiple=True, metavar="TYPE[:ID]", help="Subject type[:id] (repeatable)."
)
@click.option("--name", help="Job name.")
@click.option("--run/--no-run", default=True, show_default=True, help="Send now (else the next ticks do).")
@click.pass_obj
def webhook(obj, aid, webhook_url, start_time, end_time, fmt, max_events, verbs, sources, name, run) -> None:
    """Create a one-time batch export of the audit log's [start, end) to a webhook; send it now with a
    progress bar (or leave it to the scheduled ticks with --no-run). Signing secrets and headers: create
    the job with `sysevents jobs create` (the API seals them)."""
    api = _api(obj)
    aid = _account(api, aid)
    config: dict = {
        "webhook_url": webhook_url,
        "system_event_multiple_types": list(verbs),
        "batch_export": {
            "start_time": start_time,
            "end_time": end_time,
            "format": fmt,
            "max_events": max_events,
        },
    }
    if sources:
        config["system_event_sources"] = _sources(sources)
    view = _create(api, aid, {"workflow": "webhook_system_events", "config": config, "name": name})
    click.echo(f"created job {view['id']} (webhook batch export, {fmt}, up to {max_events} events per POST)")
    if run:
        rt = _runtime()
        _backfill(rt, rt.jobs.find(aid, view["id"]))


def _job(obj: dict, aid: str | None, job_id: str):
    rt = _runtime()
    job = rt.jobs.get(_account(_api(obj), aid), job_id)
    if job is None:
        raise click.UsageError(f"job {job_id!r} not found")
    return rt, job


@export.command("run")
@click.argument("job_id")
@click.option("--aid", help="Account id (default: the key's account).")
@click.pass_obj
def run_(obj, job_id, aid) -> None:
    """Run (or resume) a job's backfill, with a progress bar."""
    rt, job = _job(obj, aid, job_id)
    try:
        _backfill(rt, job)
    except ValueError as err:
        raise click.UsageError(str(err)) from None


@export.command("status")
@click.argument("job_id")
@click.option("--aid", help="Account id (default: the key's account).")
@click.pass_obj
def status(obj, job_id, aid) -> None:
    """Show a job's backfill run (state, range, counts, cursor) as JSON."""
    rt, job = _job(obj, aid, job_id)
    run = rt.runs.get(job.key)
    if run is None:
        raise click.UsageError(f"no backfill run for job {job_id!r}")
    click.echo(
        json.dumps(run, indent=2, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))
    )


@export.command("search")
@click.option("--aid", required=True, help="Account id (search never leaves it).")
@click.option("--subject-type", type=click.Choice(SUBJECT_TYPES), metavar="TYPE")
@click.option("--subject-id")
@click.option("--verb", type=click.Choice([*VERBS, "update"]), metavar="VERB")
@click.option("--start", help="From (ISO 8601, inclusive).")
@click.option("--end", help="To (ISO 8601, exclusive).")
@click.option("--page-size", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--page-token", help="Continue where the previous page ended.")
def search(aid, subject_type, subject_id, verb, start, end, page_size, page_token) -> None:
    """Search the audit log: one event (CloudEvents JSON) per line, newest first, then the next page token."""
    from sysevents.auditlog.schema import audit_table
    from sysevents.auditlog.search import InvalidSearch, search_audit

    rt = _runtime()
    try:
        page = search_audit(
            aid,
            subject_type=subject_type,
            subject_id=subject_id,
            verb=verb,
            start=start,
            end=end,
            page_size=page_size,
            page_token=page_token,
            client=rt.bigquery,
            table=audit_table(rt.settings),
        )
    except InvalidSearch as err:
        raise click.UsageError(err.reason) from None
    for event in page.events:
        click.echo(json.dumps(event, ensure_ascii=False))
    if page.next_page_token:
        click.echo(f"next page: --page-token {page.next_page_token}", err=True)
