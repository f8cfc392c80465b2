"""`sysevents jobs ...` and `sysevents keys ...`: the admin API from the command line.

Against the local stack by default: `sysevents dev` writes the admin function's URL to
`.sysevents-dev/stack.json` and the demo account's key to `.sysevents-dev/admin.json`. Any deployment:
`--url` and `--key` (or SYSEVENTS_API_URL / SYSEVENTS_API_KEY).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import requests

DEV_DIR = Path(".sysevents-dev")
ADMIN_FILE = DEV_DIR / "admin.json"
"""Written by `sysevents dev` (mode 0600): the local admin URL, the demo account and its keys."""


def _dev() -> dict[str, Any]:
    state: dict[str, Any] = {}
    stack = DEV_DIR / "stack.json"
    if stack.exists():
        state["url"] = json.loads(stack.read_text()).get("functions", {}).get("admin")
    if ADMIN_FILE.exists():
        state.update({k: v for k, v in json.loads(ADMIN_FILE.read_text()).items() if v})
    return state


class Api:
    def __init__(self, url: str | None, key: str | None, *, operator: bool = False):
        dev = _dev()
        self.url = (url or dev.get("url") or "").rstrip("/")
        self.key = key or dev.get("operator_key" if operator else "key")
        if not self.url:
            raise click.UsageError(
                "no admin API URL: pass --url, set SYSEVENTS_API_URL, or run `sysevents dev`"
            )
        if not self.key:
            raise click.UsageError("no API key: pass --key or set SYSEVENTS_API_KEY")
        self.dev_aid = dev.get("aid")

    def call(self, method: str, path: str, *, expect_error: bool = False, **kw) -> requests.Response:
        headers = {"X-API-Key": self.key, **kw.pop("headers", {})}
        try:
            r = requests.request(method, self.url + path, headers=headers, timeout=60, **kw)
        except requests.RequestException as err:
            raise click.ClickException(f"cannot reach {self.url}: {type(err).__name__}") from None
        if r.status_code >= 400 and not expect_error:
            raise click.ClickException(_error_text(r))
        return r


def _error_text(r: requests.Response) -> str:
    try:
        err = r.json()["error"]
        return f"HTTP {r.status_code}: " + (f"{err['field']}: " if err.get("field") else "") + err["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {r.status_code}: {r.text[:500]}"


def _echo(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False))


def _read_json(path: str, what: str) -> Any:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise click.BadParameter(f"{what} is not JSON: {err}") from None


_url = click.option("--url", envvar="SYSEVENTS_API_URL", help="Admin API URL (default: the local stack's).")
_key = click.option("--key", envvar="SYSEVENTS_API_KEY", help="API key (default: the local demo account's).")


@click.group()
@_url
@_key
@click.option("--aid", envvar="SYSEVENTS_AID", help="Account id (default: the key's account).")
@click.pass_context
def jobs(ctx: click.Context, url: str | None, key: str | None, aid: str | None) -> None:
    """Manage export and alert jobs through the admin API."""
    ctx.obj = api = Api(url, key)
    api.aid = aid or (api.dev_aid if not key else None) or api.call("GET", "/whoami").json().get("aid")
    if not api.aid:
        raise click.UsageError("the operator key belongs to no account: pass --aid")


def _base(api: Api) -> str:
    return f"/accounts/{api.aid}/jobs"


@jobs.command("create")
@click.argument("file")
@click.option("--id", "job_id", help="Job id (default: generated).")
@click.option("--dry-run", is_flag=True, help="Validate only; store nothing.")
@click.pass_obj
def create(api: Api, file: str, job_id: str | None, dry_run: bool) -> None:
    """Create a job from a JSON FILE (the seed's shape; - reads stdin)."""
    body = _read_json(file, "FILE")
    if job_id:
        body["id"] = job_id
    _echo(api.call("POST", _base(api), json=body, params={"dry_run": "true"} if dry_run else None).json())


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
        _echo(found)
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
    _echo(api.call("GET", f"{_base(api)}/{job_id}").json())


@jobs.command("update")
@click.argument("job_id")
@click.argument("file")
@click.option("--replace", is_flag=True, help="FILE is the whole job (PUT), not a JSON merge patch.")
@click.option("--version", "version", type=int, help="Expected version (default: the one read just before).")
@click.option("--dry-run", is_flag=True, help="Validate only; store nothing.")
@click.pass_obj
def update(api: Api, job_id: str, file: str, replace: bool, version: int | None, dry_run: bool) -> None:
    """Change a job: FILE is a JSON merge patch (or, with --replace, the whole job). Refused if the job
    changed since its version was read."""
    body = _read_json(file, "FILE")
    if version is None:
        version = api.call("GET", f"{_base(api)}/{job_id}").json()["version"]
    r = api.call(
        "PUT" if replace else "PATCH",
        f"{_base(api)}/{job_id}",
        json=body,
        headers={"If-Match": f'"{version}"'},
        params={"dry_run": "true"} if dry_run else None,
    )
    _echo(r.json())


@jobs.command("delete")
@click.argument("job_id")
@click.option("--version", "version", type=int, help="Refuse unless the job is at this version.")
@click.pass_obj
def delete(api: Api, job_id: str, version: int | None) -> None:
    """Delete a job."""
    headers = {"If-Match": f'"{version}"'} if version is not None else {}
    _echo(api.call("DELETE", f"{_base(api)}/{job_id}", headers=headers).json())


def _state_command(verb: str) -> click.Command:
    @click.argument("job_id")
    @click.pass_obj
    def command(api: Api, job_id: str) -> None:
        job = api.call("POST", f"{_base(api)}/{job_id}/{verb}").json()
        click.echo(f"{job['id']}: {job['state']} (version {job['version']})")

    command.__doc__ = f"{verb.capitalize()} a job."
    return jobs.command(verb)(command)


pause = _state_command("pause")
resume = _state_command("resume")


@jobs.command("preview")
@click.argument("job_id")
@click.option("--event", "event_file", help="JSON file of an event (default: a sample event).")
@click.option("--template", "template_file", help="A Jsonnet file to try instead of the job's template.")
@click.pass_obj
def preview(api: Api, job_id: str, event_file: str | None, template_file: str | None) -> None:
    """Render the job's template against an event; prints the JSON, or the Jsonnet error with line/column."""
    body: dict[str, Any] = {}
    if event_file:
        body["event"] = _read_json(event_file, "--event")
    if template_file:
        body["json_template"] = Path(template_file).read_text()
    r = api.call("POST", f"{_base(api)}/{job_id}/preview", json=body, expect_error=True)
    if r.status_code >= 400:
        raise click.ClickException(_error_text(r))
    _echo(r.json()["rendered"])


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


@click.group()
@_url
@click.option(
    "--key", envvar="SYSEVENTS_OPERATOR_KEY", help="Operator key (or an account's key for its own keys)."
)
@click.pass_context
def keys(ctx: click.Context, url: str | None, key: str | None) -> None:
    """Accounts and API keys (operator)."""
    if ctx.invoked_subcommand != "operator":
        ctx.obj = Api(url, key, operator=True)


@keys.command("add-account")
@click.argument("aid")
@click.option("--name", help="A readable name.")
@click.pass_obj
def add_account(api: Api, aid: str, name: str | None) -> None:
    """Create an account."""
    _echo(api.call("POST", "/accounts", json={"aid": aid, "name": name}).json())


@keys.command("create")
@click.argument("aid")
@click.option("--name", required=True, help="Who or what uses the key.")
@click.pass_obj
def create_key(api: Api, aid: str, name: str) -> None:
    """Create a key for an account; it is printed once."""
    r = api.call("POST", f"/accounts/{aid}/keys", json={"name": name}).json()
    click.echo(f"{r['key']}\n(prefix {r['prefix']}; store it now: it is not shown again)")


@keys.command("list")
@click.argument("aid")
@click.pass_obj
def list_keys(api: Api, aid: str) -> None:
    """List an account's keys by prefix."""
    for k in api.call("GET", f"/accounts/{aid}/keys").json()["keys"]:
        state = f"revoked {k['revoked_at']}" if k.get("revoked_at") else "active"
        click.echo(f"{k['prefix']}  {state:<40} {k['name']}")


@keys.command("revoke")
@click.argument("aid")
@click.argument("prefix")
@click.pass_obj
def revoke(api: Api, aid: str, prefix: str) -> None:
    """Revoke a key by its prefix."""
    api.call("DELETE", f"/accounts/{aid}/keys/{prefix}")
    click.echo(f"revoked {prefix}")


@keys.command("operator")
def operator() -> None:
    """Make a new operator key: keep the key, deploy its hash (SYSEVENTS_OPERATOR_KEY_HASH)."""
    from .admin.keys import key_hash, new_key

    key = new_key()
    click.echo(
        f"operator key (keep it secret):        {key}\nSYSEVENTS_OPERATOR_KEY_HASH (deploy it): {key_hash(key)}"
    )
