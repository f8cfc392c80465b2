"""`sysevents quarantine list`: the events ingest refused, with their reasons (operator key)."""

from __future__ import annotations

import json

import click

from sysevents.cli.common import Api, url_option


@click.group()
@url_option
@click.option("--key", envvar="SYSEVENTS_OPERATOR_KEY", help="Operator key (default: the local stack's).")
@click.pass_context
def quarantine(ctx: click.Context, url: str | None, key: str | None) -> None:
    """Events that were not accepted (invalid, or impossible to process), each with its reason."""
    ctx.obj = Api(url, key, operator=True)


@quarantine.command("list")
@click.option("--aid", help="Only events naming this account.")
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
@click.pass_obj
def list_(api: Api, aid: str | None, limit: int, as_json: bool) -> None:
    """Newest first: when, why, and the refused bytes (cut to one line)."""
    params = {"page_size": limit, **({"aid": aid} if aid else {})}
    items = api.call("GET", "/quarantine", params=params).json()["events"]
    if as_json:
        click.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    for item in items:
        data = item.get("data", "(binary)")
        data = data if len(data) <= 100 else data[:97] + "..."
        click.echo(f"{item['quarantined_at']}  {item.get('aid') or '-':<16} {item['reason']}")
        click.echo(f"    {data!r}")
    if not items:
        click.echo("(the quarantine is empty)")
