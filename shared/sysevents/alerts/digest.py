"""What every alert channel shares: the digest a group's notification is made of, its headline and text,
and the link about an event's subject.

A digest is `{job: {id, name}, account, group: {field: value}, reason: "grouped" | "rate_limited", count,
omitted, items: [{event, link, repeat}]}` (`count` events in all; `omitted` of them are not listed). Each
channel (sysevents.alerts.channel) renders it its own way: the webhook channel as a Slack, Teams,
PagerDuty or plain JSON body (sysevents.sinks.webhook.formats), the email channel as an email
(sysevents.sinks.email.render). Pure functions, linear in the digest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from sysevents.templates import SAMPLE_EVENT

Evaluate = Callable[..., Any]
"""`templates.render_value`'s signature: (template, variables, *, name) -> the template's JSON value."""

DEFAULT_LINK_TEMPLATE = (
    "https://activate.getlytics.com/data/integrations/{subject_type}/{subject_id}?aid={aid}"
)


SUMMARY_SUBJECTS = 3
"""Subjects named in a digest's headline; the rest are counted."""


def plural(word: str, n: int) -> str:
    if n == 1:
        return word
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def data_of(ce: dict[str, Any]) -> dict[str, Any]:
    return ce.get("data") or {}


def headline(digest: dict[str, Any]) -> str:
    """ "12 works failed in account acct-1: w-1, w-2, w-3 and 9 more" (or, held back by the rate limit,
    "12 alerts held back by the rate limit in account acct-1: ...")."""
    if isinstance(digest.get("condition"), dict):  # a threshold or absence (sysevents.alerts.watch)
        return str(digest["condition"].get("summary"))
    items = digest.get("items") or []
    count = int(digest.get("count") or len(items))
    datas = [data_of(i["event"]) for i in items]
    types = {d.get("subject_type") for d in datas}
    verbs = {d.get("verb") for d in datas}
    account = digest.get("account") or (datas[0].get("aid") if datas else "")
    if digest.get("reason") == "rate_limited":
        what = f"{count} {plural('alert', count)} held back by the rate limit"
    elif len(types) == 1 and len(verbs) == 1:
        what = f"{count} {plural(str(next(iter(types))), count)} {next(iter(verbs))}"
    else:
        what = f"{count} {plural('alert', count)}"
    subjects = list(dict.fromkeys(str(d.get("subject_id")) for d in datas))
    named = ", ".join(subjects[:SUMMARY_SUBJECTS])
    rest = count - min(len(subjects), SUMMARY_SUBJECTS)
    tail = f"{named} and {rest} more" if rest > 0 else named
    return f"{what} in account {account}: {tail}" if tail else f"{what} in account {account}"


def item_line(item: dict[str, Any]) -> str:
    d = data_of(item["event"])
    notes = f": {d['notes']}" if d.get("notes") not in (None, "") else ""
    repeat = " (repeat)" if item.get("repeat") else ""
    return f"{d.get('subject_type')} {d.get('subject_id')} {d.get('verb')}{notes}{repeat}"


def event_text(ce: dict[str, Any]) -> str:
    d = data_of(ce)
    notes = f": {d['notes']}" if d.get("notes") not in (None, "") else ""
    kind = str(d.get("subject_type", ""))
    return (
        f"{kind[:1].upper()}{kind[1:]} {d.get('subject_id')} {d.get('verb')} in account {d.get('aid')}{notes}"
    )


def resolved_text(ce: dict[str, Any], alert: dict[str, Any]) -> str:
    """ "Resolved: work w-1 completed in account acct-1 (it failed at <time>)": `ce` resolved `alert`."""
    d, a = data_of(ce), data_of(alert)
    if d.get("condition"):  # a threshold back below its count
        return f"Resolved: {d.get('notes')}"
    if a.get("condition"):  # an absence: the expected event came
        return (f"Resolved: {d.get('subject_type')} {d.get('subject_id')} {d.get('verb')} in account "
                f"{d.get('aid')} at {ce.get('time', '?')} ({a.get('condition_text')})")  # fmt: skip
    return (
        f"Resolved: {d.get('subject_type')} {d.get('subject_id')} {d.get('verb')} in account {d.get('aid')}"
        f" (it {a.get('verb', 'fired')} at {alert.get('time', '?')})"
    )


def link_for(event: dict[str, Any], link_template: str = DEFAULT_LINK_TEMPLATE) -> str:
    d = event.get("data") or {}
    return link_template.format(
        **{k: quote(str(d.get(k, "")), safe="") for k in ("aid", "subject_type", "subject_id", "verb")}
    )


def sample_digest(group: dict[str, str]) -> dict[str, Any]:
    return {
        "job": {"id": "job-1", "name": None},
        "account": SAMPLE_EVENT["data"]["aid"],
        "group": group,
        "reason": "grouped",
        "count": 2,
        "omitted": 1,
        "items": [{"event": SAMPLE_EVENT, "link": link_for(SAMPLE_EVENT), "repeat": False}],
    }
