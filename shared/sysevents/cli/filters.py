"""`sysevents filters check EXPR`: compile a content filter here, as saving a job would (no API needed)."""

from __future__ import annotations

import sys

import click

from sysevents.cli.common import read_json
from sysevents.events.model import InvalidEvent, event_from_dict
from sysevents.filters import FilterError, compile_filter


@click.group()
def filters() -> None:
    """Content filters (CEL expressions over an event; docs/filters.md)."""


@filters.command("check")
@click.argument("expr")
@click.option("--event", "event_file", help="JSON file of an event (flat or CloudEvents) to evaluate it on.")
def check(expr: str, event_file: str | None) -> None:
    """Compile EXPR; print 'ok' (and, with --event, 'matches' or 'no match'), or the error with where it is.
    Exit status 1 on an error."""
    try:
        f = compile_filter(expr)
    except FilterError as err:
        click.echo(f"error: {err}", err=True)
        if err.position:
            line, column = err.position
            click.echo(f"  {expr.splitlines()[line - 1] if expr.splitlines() else ''}", err=True)
            click.echo("  " + " " * (column - 1) + "^", err=True)
        sys.exit(1)
    click.echo("ok")
    if event_file:
        try:
            event = event_from_dict(read_json(event_file, "--event"), fallback_id="check")
        except InvalidEvent as err:
            raise click.BadParameter(err.reason, param_hint="--event") from None
        click.echo("matches" if f.matches(event) else "no match")
