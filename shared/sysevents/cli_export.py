"""`sysevents export ...`: BigQuery export jobs (create, run a backfill with a progress bar, status),
webhook batch exports, and audit-log search."""

from __future__ import annotations

import json
from datetime import datetime

import click

from .events import SUBJECT_TYPES, VERBS
from .jobs import ExportMode, InvalidJob


def _runtime():
    from .cli import use_dev_stack_env
    from .runtime import Runtime

    use_dev_stack_env()
    return Runtime()


def _backfill(rt, job) -> None:
    from .bigquery.export import run_backfill
    from .functions.audit import audit_table, writer

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
        result = run_backfill(rt, job, writer=writer(rt), audit=audit_table(rt), progress=progress)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    click.echo(
        f"{job.id}: {result.state.value}: {result.written} row(s) written, {result.refused} refused "
        f"(dead-lettered with their reason), {result.scanned} scanned"
    )


@click.group("export")
def export() -> None:
    """BigQuery export jobs and the audit log."""


@export.command("create")
@click.option("--aid", required=True, help="Account id.")
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
def create(
    aid, dataset, table, target_project, mode, start_time, end_time, verbs, sources, no_create, name, run
) -> None:
    """Create a BigQuery export job; for backfill modes, run its backfill with a progress bar."""
    from .bigquery.export import new_export_job

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
        found: dict[str, list[str]] = {}
        for s in sources:
            kind, _, sid = s.partition(":")
            found.setdefault(kind, [])
            if sid:
                found[kind].append(sid)
        config["system_event_sources"] = found
    rt = _runtime()
    try:
        job = new_export_job(aid, config, handover_seconds=rt.settings.export_handover_seconds, name=name)
    except InvalidJob as err:
        raise click.UsageError(err.reason) from None
    job = rt.jobs.put(job)
    click.echo(
        f"created job {job.id} ({mode}) exporting to {job.config.project or rt.settings.project}."
        f"{dataset}.{table}"
    )
    if mode != ExportMode.CONTINUOUS.value and run:
        _backfill(rt, job)


@export.command("webhook")
@click.option("--aid", required=True, help="Account id.")
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
def webhook(aid, webhook_url, start_time, end_time, fmt, max_events, verbs, sources, name, run) -> None:
    """Create a one-time batch export of the audit log's [start, end) to a webhook; send it now with a
    progress bar (or leave it to the scheduled ticks with --no-run). Signing secrets and headers: create
    the job through the admin API instead, which seals them."""
    import uuid

    from .jobs import job_from_dict

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
        found: dict[str, list[str]] = {}
        for s in sources:
            kind, _, sid = s.partition(":")
            found.setdefault(kind, []).extend([sid] if sid else [])
        config["system_event_sources"] = found
    rt = _runtime()
    try:
        job = job_from_dict(
            {"workflow": "webhook_system_events", "config": config, "name": name},
            job_id=f"wh-batch-{uuid.uuid4().hex[:12]}",
            aid=aid,
        )
    except InvalidJob as err:
        raise click.UsageError(err.reason) from None
    job = rt.jobs.put(job)
    click.echo(f"created job {job.id} (webhook batch export, {fmt}, up to {max_events} events per POST)")
    if run:
        _backfill(rt, job)


@export.command("run")
@click.argument("job_id")
def run_(job_id) -> None:
    """Run (or resume) a job's backfill, with a progress bar."""
    rt = _runtime()
    job = rt.jobs.get(job_id)
    if job is None:
        raise click.UsageError(f"job {job_id!r} not found")
    from .bigquery.export import NothingToBackfill

    try:
        _backfill(rt, job)
    except (NothingToBackfill, ValueError) as err:
        raise click.UsageError(str(err)) from None


@export.command("status")
@click.argument("job_id")
def status(job_id) -> None:
    """Show a job's backfill run (state, range, counts, cursor) as JSON."""
    from .bigquery.export import Runs

    rt = _runtime()
    run = Runs(rt.firestore, rt.settings.exports_collection).get(job_id)
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
    from .bigquery.search import InvalidSearch, search_audit

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
            table=_audit(rt),
        )
    except InvalidSearch as err:
        raise click.UsageError(err.reason) from None
    for event in page.events:
        click.echo(json.dumps(event, ensure_ascii=False))
    if page.next_page_token:
        click.echo(f"next page: --page-token {page.next_page_token}", err=True)


def _audit(rt):
    from .functions.audit import audit_table

    return audit_table(rt)
