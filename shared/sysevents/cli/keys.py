"""`sysevents keys ...`: accounts and API keys through the admin API (operator)."""

from __future__ import annotations

import click

from sysevents.cli.common import Api, echo, url_option


@click.group()
@url_option
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
    echo(api.call("POST", "/accounts", json={"aid": aid, "name": name}).json())


@keys.command("create")
@click.argument("aid")
@click.option("--name", required=True, help="Who or what uses the key.")
@click.option(
    "--scope",
    type=click.Choice(["read", "jobs", "admin"]),
    default="jobs",
    show_default=True,
    help="read: GETs only; jobs: the account's jobs; admin: its jobs and its keys.",
)
@click.option("--expires-in-days", type=click.IntRange(min=1), help="The key stops working after this.")
@click.pass_obj
def create_key(api: Api, aid: str, name: str, scope: str, expires_in_days: int | None) -> None:
    """Create a key for an account; it is printed once."""
    body = {"name": name, "scope": scope, "expires_in_days": expires_in_days}
    r = api.call("POST", f"/accounts/{aid}/keys", json=body).json()
    expiry = f"expires {r['expires_at']}" if r.get("expires_at") else "never expires"
    click.echo(
        f"{r['key']}\n(prefix {r['prefix']}, scope {r['scope']}, {expiry}; store it now: not shown again)"
    )


@keys.command("list")
@click.argument("aid")
@click.pass_obj
def list_keys(api: Api, aid: str) -> None:
    """List an account's keys by prefix."""
    for k in api.call("GET", f"/accounts/{aid}/keys").json()["keys"]:
        state = f"revoked {k['revoked_at']}" if k.get("revoked_at") else k.get("state", "active")
        if state != "revoked" and k.get("expires_at"):
            state += f" (expires {k['expires_at']})"
        click.echo(f"{k['prefix']}  {state:<48} {k.get('scope', 'jobs'):<6} {k['name']}")


@keys.command("revoke")
@click.argument("aid")
@click.argument("prefix")
@click.pass_obj
def revoke(api: Api, aid: str, prefix: str) -> None:
    """Revoke a key by its prefix, and every key minted from it."""
    r = api.call("DELETE", f"/accounts/{aid}/keys/{prefix}").json()
    click.echo(f"revoked {prefix} and {r.get('revoked_minted', 0)} keys minted from it")
    if r.get("cascade_complete") is False:
        click.echo("more keys minted from it remain (refused all the same): run this again to revoke them")


@keys.command("operator")
def operator() -> None:
    """Make a new operator key: keep the key, deploy its hash (SYSEVENTS_OPERATOR_KEY_HASH)."""
    from sysevents.admin.keys import key_hash, new_key

    key = new_key()
    click.echo(
        f"operator key (keep it secret):        {key}\nSYSEVENTS_OPERATOR_KEY_HASH (deploy it): {key_hash(key)}"
    )
