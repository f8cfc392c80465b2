"""`sysevents alerts`: print ready-made alert jobs, to pipe into `sysevents jobs create -`."""

from __future__ import annotations

import json

import click

from sysevents.alerts import presets
from sysevents.jobs.model import InvalidJob


@click.group()
def alerts() -> None:
    """Ready-made alert jobs (Slack, PagerDuty, export failures by email)."""


def _echo(doc: dict) -> None:
    click.echo(json.dumps(doc, indent=2))


@alerts.command("slack")
@click.option("--webhook-url", required=True, help="The Slack incoming webhook URL.")
@click.option(
    "--subject-id", "subject_ids", multiple=True, help="Only these works (repeatable; default: all)."
)
@click.option(
    "--verb", "verbs", multiple=True, default=["failed"], show_default=True, help="Verbs (repeatable)."
)
@click.option("--group-by", "group_by", multiple=True,
              help="Group a burst into one digest per value of these event fields (e.g. subject_type).")  # fmt: skip
@click.option("--group-wait", default=30, show_default=True, help="Seconds a new group waits for more.")
@click.option(
    "--resolve-on", "resolve_on", multiple=True, help="Verbs that resolve an alert (e.g. completed)."
)
def slack(webhook_url: str, subject_ids: tuple[str, ...], verbs: tuple[str, ...], group_by, group_wait,
          resolve_on) -> None:  # fmt: skip
    """A webhook job posting the seed's Slack message when a work fails (grouped and resolved, if asked)."""
    try:
        _echo(presets.slack_alert(webhook_url, subject_ids=subject_ids, verbs=verbs, group_by=group_by,
                                  group_wait=group_wait, resolve_on=resolve_on))  # fmt: skip
    except InvalidJob as err:
        raise click.UsageError(err.reason) from None


@alerts.command("pagerduty")
@click.option("--routing-key", required=True, help="The PagerDuty service's Events API v2 integration key.")
@click.option(
    "--verb", "verbs", multiple=True, default=["failed"], show_default=True, help="Verbs (repeatable)."
)
@click.option("--resolve-on", "resolve_on", multiple=True, default=["completed"], show_default=True,
              help="Verbs that resolve the incident.")  # fmt: skip
def pagerduty(routing_key: str, verbs: tuple[str, ...], resolve_on: tuple[str, ...]) -> None:
    """A webhook job opening one PagerDuty incident per group of failing works, resolved on completion."""
    try:
        _echo(presets.pagerduty_alert(routing_key, verbs=verbs, resolve_on=resolve_on))
    except InvalidJob as err:
        raise click.UsageError(err.reason) from None


@alerts.command("export-failures")
@click.option("--to", "recipients", multiple=True, required=True, help="Recipient address (repeatable).")
@click.option(
    "--group-wait", default=30, show_default=True, help="Seconds a new group waits for more failures."
)
@click.option("--group-interval", default=300, show_default=True, help="Seconds between a group's digests.")
@click.option("--repeat-interval", default=4 * 3600, show_default=True,
              help="Seconds before the same failure is emailed again.")  # fmt: skip
@click.option("--rate-limit", default=20, show_default=True, help="Most emails per hour (0: no limit).")
def export_failures(recipients, group_wait, group_interval, repeat_interval, rate_limit) -> None:
    """An email job: "email me when any export job fails" (work failed events), grouped per job."""
    try:
        _echo(presets.export_failures_email(recipients, group_wait=group_wait, group_interval=group_interval,
                                            repeat_interval=repeat_interval,
                                            rate_limit_per_hour=rate_limit or None))  # fmt: skip
    except InvalidJob as err:
        raise click.UsageError(err.reason) from None
