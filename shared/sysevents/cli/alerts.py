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


def _to(webhook_url, recipients):
    if not webhook_url and not recipients:
        raise click.UsageError("give --webhook-url URL or --to ADDRESS")


@alerts.command("threshold")
@click.option("--count", type=int, required=True, help="Events in the window that fire the alert.")
@click.option("--within", required=True, help='The sliding window, e.g. "30m", "5m", "2h".')
@click.option("--by", "by", multiple=True, default=["subject_id"], show_default=True,
              help="Event fields that make a group (repeatable), e.g. subject_id or actor.")  # fmt: skip
@click.option(
    "--verb", "verbs", multiple=True, default=["failed"], show_default=True, help="Verbs (repeatable)."
)
@click.option("--subject-type", default="work", show_default=True, help="The subject type counted.")
@click.option(
    "--subject-id", "subject_ids", multiple=True, help="Only these subjects (repeatable; default: all)."
)
@click.option("--webhook-url", help="Post to this webhook (Slack, Teams, PagerDuty or any receiver).")
@click.option("--to", "recipients", multiple=True, help="Or email these recipients (repeatable).")
def threshold(count, within, by, verbs, subject_type, subject_ids, webhook_url, recipients) -> None:
    """A threshold alert: "one work fails 3 times within 30 minutes" (--count 3 --within 30m), "more than
    20 deletes by one actor in 5 minutes" (--count 21 --within 5m --verb deleted --by actor)."""
    _to(webhook_url, recipients)
    try:
        _echo(presets.threshold_alert(count, within, webhook_url=webhook_url, recipients=recipients, verbs=verbs,
                                      subject_type=subject_type, subject_ids=subject_ids, by=by))  # fmt: skip
    except InvalidJob as err:
        raise click.UsageError(err.reason) from None


@alerts.command("absence")
@click.option("--subject-type", default="work", show_default=True, help="The expected events' subject type.")
@click.option(
    "--subject-id", "subject_ids", multiple=True, help="The expected subjects (repeatable; default: any)."
)
@click.option("--verb", "verbs", multiple=True, default=["completed"], show_default=True,
              help="The expected verbs (repeatable).")  # fmt: skip
@click.option("--within", help='Fire when none came for this long, e.g. "2h" (re-armed by each).')
@click.option("--by", "by", help='Or fire when none came by this time of day, e.g. "06:00".')
@click.option(
    "--timezone", default="UTC", show_default=True, help="The time zone of --by, e.g. Europe/Paris."
)
@click.option("--day", "days", multiple=True, help="Days --by applies to (repeatable; default: every day).")
@click.option("--filter", "cel", help="A CEL expression the expected events must also match.")
@click.option("--webhook-url", help="Post to this webhook (Slack, Teams, PagerDuty or any receiver).")
@click.option("--to", "recipients", multiple=True, help="Or email these recipients (repeatable).")
def absence(
    subject_type, subject_ids, verbs, within, by, timezone, days, cel, webhook_url, recipients
) -> None:
    """An absence alert: "work nightly-export has not emitted completed by 06:00 Europe/Paris"
    (--subject-id nightly-export --by 06:00 --timezone Europe/Paris), "no synccomplete for 2 hours"
    (--verb synccomplete --within 2h)."""
    _to(webhook_url, recipients)
    if bool(within) == bool(by):
        raise click.UsageError("give --within (e.g. 2h) or --by (e.g. 06:00)")
    try:
        _echo(presets.absence_alert(subject_type, verbs, subject_ids=subject_ids, within=within, by=by,
                                    timezone=timezone, days=days, cel=cel, webhook_url=webhook_url,
                                    recipients=recipients))  # fmt: skip
    except InvalidJob as err:
        raise click.UsageError(err.reason) from None
