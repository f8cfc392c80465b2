"""`sysevents jobs ...`: manage jobs through the admin API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sysevents.cli.common import Api, echo, error_text, key_option, read_json, url_option


@click.group()
@url_option
@key_option
@click.option("--aid", envvar="SYSEVENTS_AID", help="Account id (default: the key's account).")
@click.pass_context
def jobs(ctx: click.Context, url: str | None, key: str | None, aid: str | None) -> None:
    """Manage export and alert jobs through the admin API."""
    ctx.obj = api = Api(url, key)
    api.aid = (
        aid or (api.dev_aid if api.key_from_dev else None) or api.call("GET", "/whoami").json().get("aid")
    )
    if not api.aid:
        raise click.UsageError("the operator key belongs to no account: pass --aid")


def _base(api: Api) -> str:
    return f"/accounts/{api.aid}/jobs"


filter_options = (
    click.option("--filter", "filter_", help="Set config.filter: a CEL expression (docs/filters.md)."),
    click.option("--exclude", multiple=True, help="Set config.exclude: a CEL expression (repeatable)."),
)


def _with_filters(body: Any, filter_: str | None, exclude: tuple[str, ...]) -> Any:
    """The body with --filter and --exclude set in its config (a patch's config, for `update`)."""
    if filter_ is None and not exclude:
        return body
    if not isinstance(body, dict):
        raise click.BadParameter("FILE must be a JSON object to take --filter or --exclude")
    config = body.setdefault("config", {})
    if filter_ is not None:
        config["filter"] = filter_
    if exclude:
        config["exclude"] = list(exclude)
    return body


def with_filter_options(command):
    for option in reversed(filter_options):
        command = option(command)
    return command


@jobs.command("create")
@click.argument("file")
@click.option("--id", "job_id", help="Job id (default: generated).")
@click.option("--dry-run", is_flag=True, help="Validate only; store nothing.")
@with_filter_options
@click.pass_obj
def create(
    api: Api, file: str, job_id: str | None, dry_run: bool, filter_: str | None, exclude: tuple[str, ...]
) -> None:
    """Create a job from a JSON FILE (the seed's shape; - reads stdin)."""
    body = _with_filters(read_json(file, "FILE"), filter_, exclude)
    if job_id:
        body["id"] = job_id
    echo(api.call("POST", _base(api), json=body, params={"dry_run": "true"} if dry_run else None).json())


@jobs.command("list")
@click.option("--workflow", help="Only jobs of this workflow.")
@click.option("--state", type=click.Choice(["active", "paused"]), help="Only jobs in this state.")
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
@click.pass_obj
def list_(api: Api, workflow: str | None, state: str | None, as_json: bool) -> None:
    """List the account's jobs (every page)."""
    found, token = [], None
    while True:
        params = {"workflow": workflow, "state": state, "page_size": 200, "page_token": token}
        page = api.call("GET", _base(api), params={k: v for k, v in params.items() if v}).json()
        found += page["jobs"]
        token = page["next_page_token"]
        if not token:
            break
    if as_json:
        echo(found)
        return
    for j in found:
        click.echo(
            f"{j['id']:<40} {j['state']:<7} v{j['version']:<4} {j['workflow']:<24} {j.get('name') or ''}"
        )


@jobs.command("get")
@click.argument("job_id")
@click.pass_obj
def get(api: Api, job_id: str) -> None:
    """Show one job (header values redacted)."""
    echo(api.call("GET", f"{_base(api)}/{job_id}").json())


@jobs.command("update")
@click.argument("job_id")
@click.argument("file")
@click.option("--replace", is_flag=True, help="FILE is the whole job (PUT), not a JSON merge patch.")
@click.option("--version", "version", type=int, help="Expected version (default: the one read just before).")
@click.option("--dry-run", is_flag=True, help="Validate only; store nothing.")
@with_filter_options
@click.pass_obj
def update(
    api: Api,
    job_id: str,
    file: str,
    replace: bool,
    version: int | None,
    dry_run: bool,
    filter_: str | None,
    exclude: tuple[str, ...],
) -> None:
    """Change a job: FILE is a JSON merge patch (or, with --replace, the whole job). Refused if the job
    changed since its version was read. --filter and --exclude set those config fields (FILE may be {})."""
    body = _with_filters(read_json(file, "FILE"), filter_, exclude)
    if version is None:
        version = api.call("GET", f"{_base(api)}/{job_id}").json()["version"]
    r = api.call(
        "PUT" if replace else "PATCH",
        f"{_base(api)}/{job_id}",
        json=body,
        headers={"If-Match": f'"{version}"'},
        params={"dry_run": "true"} if dry_run else None,
    )
    echo(r.json())


@jobs.command("delete")
@click.argument("job_id")
@click.option("--version", "version", type=int, help="Refuse unless the job is at this version.")
@click.pass_obj
def delete(api: Api, job_id: str, version: int | None) -> None:
    """Delete a job."""
    headers = {"If-Match": f'"{version}"'} if version is not None else {}
    echo(api.call("DELETE", f"{_base(api)}/{job_id}", headers=headers).json())


@jobs.command("pause")
@click.argument("job_id")
@click.pass_obj
def pause(api: Api, job_id: str) -> None:
    """Pause a job: it matches no events until resumed."""
    job = api.call("POST", f"{_base(api)}/{job_id}/pause").json()
    click.echo(f"{job['id']}: {job['state']} (version {job['version']})")


@jobs.command("resume")
@click.argument("job_id")
@click.option("--replay", is_flag=True, help="Also re-deliver what was dead-lettered while it was paused.")
@click.pass_obj
def resume(api: Api, job_id: str, replay: bool) -> None:
    """Resume a paused job."""
    job = api.call("POST", f"{_base(api)}/{job_id}/resume", json={"replay": True} if replay else None).json()
    again = f", {job['replayed']} replayed" if "replayed" in job else ""
    click.echo(f"{job['id']}: {job['state']} (version {job['version']}){again}")


@jobs.command("preview")
@click.argument("job_id")
@click.option("--event", "event_file", help="JSON file of an event (default: a sample event).")
@click.option("--template", "template_file", help="A Jsonnet file to try instead of the job's template.")
@click.pass_obj
def preview(api: Api, job_id: str, event_file: str | None, template_file: str | None) -> None:
    """Render the job's template against an event; prints the JSON, or the Jsonnet error with line/column."""
    body: dict[str, Any] = {}
    if event_file:
        body["event"] = read_json(event_file, "--event")
    if template_file:
        body["json_template"] = Path(template_file).read_text()
    r = api.call("POST", f"{_base(api)}/{job_id}/preview", json=body, expect_error=True)
    if r.status_code >= 400:
        raise click.ClickException(error_text(r))
    echo(r.json()["rendered"])


@jobs.command("test")
@click.argument("job_id")
@click.option("--notes", help="Notes of the test event.")
@click.pass_obj
def test(api: Api, job_id: str, notes: str | None) -> None:
    """Send a test event through the real pipeline to this job only."""
    r = api.call(
        "POST", f"{_base(api)}/{job_id}/test", json={"event": {"notes": notes} if notes else {}}
    ).json()
    click.echo(f"published test event {r['event']['id']} (message {r['message_id']})")


@jobs.command("backtest")
@click.argument("job")
@click.option("--start", help="ISO 8601 time, inclusive (default: --days before --end).")
@click.option("--end", help="ISO 8601 time, exclusive (default: now).")
@click.option("--days", type=float, help="The range's length when --start is not given (default: 7).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.pass_obj
def backtest(
    api: Api, job: str, start: str | None, end: str | None, days: float | None, as_json: bool
) -> None:
    """What JOB (a saved job's id, or a JSON file of a job body; - reads stdin) would have matched,
    delivered and notified over a past range of the account's audit log. Nothing is stored or sent."""
    from datetime import UTC, datetime, timedelta

    body: dict[str, Any] = (
        {"job": read_json(job, "JOB")} if job == "-" or Path(job).is_file() else {"job_id": job}
    )
    if days is not None and not start:
        until = datetime.fromisoformat(end.replace("Z", "+00:00")) if end else datetime.now(UTC)
        start = (until - timedelta(days=days)).isoformat()
    body.update({k: v for k, v in (("start", start), ("end", end)) if v})
    r = api.call("POST", f"{_base(api)}/preview", json=body, expect_error=True)
    if r.status_code >= 400:
        raise click.ClickException(error_text(r))
    report = r.json()
    if as_json:
        echo(report)
        return
    span = report["range"]
    click.echo(f"{span['start']} .. {span['end']}: {report['scanned']} event(s) read"
               + (" (truncated: the range's first ones only)" if report["truncated"] else ""))  # fmt: skip
    click.echo(f"matched {report['matched']}; would have sent {report['notifications']} "
               + ("notification(s)" if report["alerting"] else "delivery(ies)"))  # fmt: skip
    for kind, n in (report.get("notifications_by_kind") or {}).items():
        click.echo(f"  {kind}: {n}")
    for why, n in (report.get("filtered") or {}).items():
        click.echo(f"  filtered ({why}): {n}")
    for day, n in (report.get("notifications_per_day") or report.get("matched_per_day") or {}).items():
        click.echo(f"  {day[:10]}: {n}")
