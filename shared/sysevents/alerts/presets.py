"""Ready-made alert jobs, in the seed's job shape (`{"name", "workflow", "config"}`), validated.

- `slack_alert`: a webhook_system_events job posting the seed's Slack template to a Slack incoming webhook
  (optionally grouped into digests, and resolved).
- `pagerduty_alert`: a webhook job triggering PagerDuty incidents per group, resolved on completion.
- `export_failures_email`: email when any export job (work) fails, grouped per job so a failing job
  sends one email, then digests, not one email per failure.
- `threshold_alert`, `absence_alert`: conditions (sysevents.alerts.conditions) on a webhook or by email.
"""

from __future__ import annotations

from typing import Any

SLACK_TEMPLATE = (
    'local note = if std.objectHas(event.data, "notes") then event.data.notes else "A work failed"; '
    '{"text": "Alert notification: " + note + ". For more info go to: '
    'https://activate.getlytics.com/data/integrations/work/%s?aid=%s" % [event.data.subject_id, event.data.aid] }'
)
"""The seed's Slack template, verbatim."""


def _checked(doc: dict[str, Any]) -> dict[str, Any]:
    from sysevents.jobs.registry import job_from_dict

    job_from_dict(doc, job_id="preset", aid="preset")  # raises InvalidJob with the reason
    return doc


def slack_alert(webhook_url: str, *, subject_ids: list[str] | tuple[str, ...] = (), verbs: tuple[str, ...] = ("failed",),
                subject_type: str = "work", name: str | None = None, group_by: tuple[str, ...] = (),
                group_wait: int = 30, group_interval: int = 300, resolve_on: tuple[str, ...] = ()) -> dict[str, Any]:  # fmt: skip
    """Post "Alert notification: <notes>..." to Slack when a work (all, or these ids) fails. With
    `group_by`, a burst becomes one digest per group ("12 works failed in account ..."); with `resolve_on`,
    a "resolved" message follows when the subject later emits one of those verbs."""
    config: dict[str, Any] = {"system_event_multiple_types": list(verbs),
                              "system_event_sources": {subject_type: list(subject_ids)},
                              "webhook_url": webhook_url, "json_template": SLACK_TEMPLATE}  # fmt: skip
    if group_by:
        config["grouping"] = {"by": list(group_by), "group_wait": group_wait, "group_interval": group_interval,
                              "repeat_interval": max(4 * 3600, group_interval)}  # fmt: skip
    if resolve_on:
        config["resolve_on"] = list(resolve_on)
    return _checked({
        "name": name or "Slack alert when " + (", ".join(subject_ids) if subject_ids else f"any {subject_type}")
        + " " + "/".join(verbs),
        "workflow": "webhook_system_events",
        "config": config,
    })  # fmt: skip


def pagerduty_alert(routing_key: str, *, verbs: tuple[str, ...] = ("failed",), subject_type: str = "work",
                    group_by: tuple[str, ...] = ("subject_type",), resolve_on: tuple[str, ...] = ("completed",),
                    group_wait: int = 30) -> dict[str, Any]:  # fmt: skip
    """PagerDuty Events API v2: one incident per group (dedup_key), resolved when every subject that
    failed has completed."""
    return _checked({
        "name": f"PagerDuty when any {subject_type} " + "/".join(verbs),
        "workflow": "webhook_system_events",
        "config": {"system_event_multiple_types": list(verbs), "system_event_sources": {subject_type: []},
                   "webhook_url": "https://events.pagerduty.com/v2/enqueue", "routing_key": routing_key,
                   "grouping": {"by": list(group_by), "group_wait": group_wait}, "resolve_on": list(resolve_on)},
    })  # fmt: skip


def export_failures_email(recipients: list[str] | tuple[str, ...], *, group_wait: int = 30,
                          group_interval: int = 300, repeat_interval: int = 4 * 3600,
                          rate_limit_per_hour: int | None = 20) -> dict[str, Any]:  # fmt: skip
    """Email when any export job fails: work/failed lifecycle events, grouped per job."""
    config: dict[str, Any] = {
        "system_event_type": "failed",
        "system_event_sources": {"work": []},
        "recipients": list(recipients),
        "grouping": {"by": ["subject_type", "subject_id"], "group_wait": group_wait,
                     "group_interval": group_interval, "repeat_interval": repeat_interval},
    }  # fmt: skip
    if rate_limit_per_hour:
        config["rate_limit"] = {"max_emails": rate_limit_per_hour, "per_seconds": 3600}
    return _checked({"name": "Email me when any export job fails", "workflow": "email_system_events",
                     "config": config})  # fmt: skip


def _destination(
    webhook_url: str | None, recipients: tuple[str, ...] | list[str]
) -> tuple[str, dict[str, Any]]:
    """(workflow, config fields) of an alert's destination: a webhook (Slack, Teams, PagerDuty, any) or
    email recipients."""
    from sysevents.jobs.model import InvalidJob

    if bool(webhook_url) == bool(recipients):
        raise InvalidJob("give --webhook-url or --to (one or more recipients), not both")
    if webhook_url:
        return "webhook_system_events", {"webhook_url": webhook_url}
    return "email_system_events", {"recipients": list(recipients)}


def threshold_alert(count: int, within: str, *, webhook_url: str | None = None, recipients: tuple[str, ...] = (),
                    verbs: tuple[str, ...] = ("failed",), subject_type: str = "work",
                    subject_ids: tuple[str, ...] = (), by: tuple[str, ...] = ("subject_id",),
                    name: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Alert once when `count` events of one group (`by`) happen within `within`: "one work fails 3 times
    within 30 minutes" (the defaults), "more than 20 deletes by one actor in 5 minutes" (count 21,
    verbs deleted, by actor); resolved when the count falls back below."""
    workflow, config = _destination(webhook_url, recipients)
    config.update({"system_event_multiple_types": list(verbs), "system_event_sources": {subject_type: list(subject_ids)},
                   "threshold": {"count": count, "within": within, "by": list(by)}})  # fmt: skip
    per = f" per {', '.join(by)}" if by else ""
    return _checked({"name": name or f"{count} {subject_type} {'/'.join(verbs)} within {within}{per}",
                     "workflow": workflow, "config": config})  # fmt: skip


def absence_alert(subject_type: str, verbs: tuple[str, ...], *, subject_ids: tuple[str, ...] = (),
                  within: str | None = None, by: str | None = None, timezone: str = "UTC",
                  days: tuple[str, ...] = (), cel: str | None = None, webhook_url: str | None = None,
                  recipients: tuple[str, ...] = (), name: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Alert when an expected event does not come: "work nightly-export has not emitted completed by 06:00
    Europe/Paris" (`by`, `timezone`, `days`), "no synccomplete for 2 hours" (`within`); resolved by the
    next expected event."""
    workflow, config = _destination(webhook_url, recipients)
    expect: dict[str, Any] = {"system_event_multiple_types": list(verbs),
                              "system_event_sources": {subject_type: list(subject_ids)}}  # fmt: skip
    if cel:
        expect["filter"] = cel
    window: dict[str, Any] = {"within": within} if within else {"by": by, "timezone": timezone}
    if days:
        window["days"] = list(days)
    config["absence"] = {"expect": expect, **window}
    what = f"{subject_type} {', '.join(subject_ids) or '(any)'} {'/'.join(verbs)}"
    when = f"within {within}" if within else f"by {by} {timezone}"
    return _checked({"name": name or f"No {what} {when}", "workflow": workflow, "config": config})
