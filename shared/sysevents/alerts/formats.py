"""What an alert notification says on each webhook channel, by default: Slack, Microsoft Teams, PagerDuty
Events API v2, and any other receiver (a JSON document).

Three notifications, each a JSON body:
- a *single* alert (one event, no grouping) -- only when the job has no `json_template` of its own;
- a *digest* of a group: `digest` = {job: {id, name}, account, group: {field: value}, reason: "grouped" |
  "rate_limited", count, omitted, items: [{event, link, repeat}]} -- unless the job's `digest_template`
  (Jsonnet, `digest` in scope) says otherwise;
- a *resolved* alert: the resolving event and the alert it resolves (`resolve_template`, Jsonnet with
  `event` and `alert` in scope, overrides it).
A Slack digest reads like "12 works failed in account acct-1: w-1, w-2, w-3 and 9 more", followed by up
to `max_events` lines with links. PagerDuty events carry a `dedup_key` per group (or per alert when
ungrouped), so PagerDuty folds a group's notifications into one incident and `resolve` closes it.
Pure functions; the defaults are ours and linear in the digest, so they run in-process.
"""

from __future__ import annotations

import hashlib
from typing import Any

SUMMARY_SUBJECTS = 3
"""Subjects named in a digest's headline; the rest are counted."""
PAGERDUTY_SUMMARY_CHARS = 1024


def plural(word: str, n: int) -> str:
    if n == 1:
        return word
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _data(ce: dict[str, Any]) -> dict[str, Any]:
    return ce.get("data") or {}


def headline(digest: dict[str, Any]) -> str:
    """ "12 works failed in account acct-1: w-1, w-2, w-3 and 9 more" (or, held back by the rate limit,
    "12 alerts held back by the rate limit in account acct-1: ...")."""
    items = digest.get("items") or []
    count = int(digest.get("count") or len(items))
    datas = [_data(i["event"]) for i in items]
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


def _line(item: dict[str, Any]) -> str:
    d = _data(item["event"])
    notes = f": {d['notes']}" if d.get("notes") not in (None, "") else ""
    repeat = " (repeat)" if item.get("repeat") else ""
    return f"{d.get('subject_type')} {d.get('subject_id')} {d.get('verb')}{notes}{repeat}"


def event_text(ce: dict[str, Any]) -> str:
    d = _data(ce)
    notes = f": {d['notes']}" if d.get("notes") not in (None, "") else ""
    kind = str(d.get("subject_type", ""))
    return (
        f"{kind[:1].upper()}{kind[1:]} {d.get('subject_id')} {d.get('verb')} in account {d.get('aid')}{notes}"
    )


def _teams(title: str, lines: list[str]) -> dict[str, Any]:
    body: list[dict[str, Any]] = [{"type": "TextBlock", "text": title, "weight": "Bolder", "wrap": True}]
    if lines:
        body.append({"type": "TextBlock", "text": "\n\n".join(lines), "wrap": True})
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                },
            }
        ],
    }


def dedup_of(key: str) -> str:
    """A PagerDuty dedup_key (at most 255 characters) for an alert's or a group's key."""
    return "sysevents-" + hashlib.sha256(key.encode()).hexdigest()[:40]


def _pagerduty(routing_key: str, action: str, dedup_key: str, summary: str | None = None,
               **details: Any) -> dict[str, Any]:  # fmt: skip
    doc: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_of(dedup_key),
    }
    if action == "trigger":
        doc["payload"] = {
            "summary": (summary or "sysevents alert")[:PAGERDUTY_SUMMARY_CHARS],
            "source": details.pop("source", "sysevents"),
            "severity": details.pop("severity", "error"),
            **({"component": details.pop("component")} if details.get("component") else {}),
            **({"class": details.pop("class_")} if details.get("class_") else {}),
            "custom_details": {k: v for k, v in details.items() if v is not None},
        }
        if details.get("links"):
            doc["links"] = details["links"]
    return doc


def _severity(verb: Any) -> str:
    return "error" if verb == "failed" else "warning"


def digest_body(channel: str, digest: dict[str, Any], *, routing_key: str = "", dedup_key: str = "") -> Any:
    """The default JSON body of a group's digest on `channel`."""
    title = headline(digest)
    items = digest.get("items") or []
    omitted = int(digest.get("omitted") or 0)
    if channel == "slack":
        lines = [f"• <{i['link']}|{_line(i)}>" for i in items]
        if omitted:
            lines.append(f"… and {omitted} more")
        return {"text": "\n".join([title, *lines])}
    if channel == "teams":
        lines = [f"- [{_line(i)}]({i['link']})" for i in items]
        return _teams(title, lines + ([f"... and {omitted} more"] if omitted else []))
    if channel == "pagerduty":
        first = _data(items[0]["event"]) if items else {}
        return _pagerduty(
            routing_key, "trigger", dedup_key, title,
            source=f"sysevents/{digest.get('account', '')}", severity=_severity(first.get("verb")),
            component=first.get("subject_type"), class_=first.get("verb"), count=digest.get("count"),
            group=digest.get("group"), subjects=[_line(i) for i in items], omitted=omitted or None,
            links=[{"href": i["link"], "text": _line(i)} for i in items[:5]],
        )  # fmt: skip
    return {"type": "sysevents.alert.digest", "summary": title, **digest}


def single_body(
    channel: str, ce: dict[str, Any], link: str, *, routing_key: str = "", dedup_key: str = ""
) -> Any:
    """The default JSON body of one alert (no grouping, no json_template of the job's)."""
    text = event_text(ce)
    if channel == "slack":
        return {"text": f"{text}\n<{link}|Details>"}
    if channel == "teams":
        return _teams(text, [f"[Details]({link})"])
    if channel == "pagerduty":
        d = _data(ce)
        return _pagerduty(
            routing_key, "trigger", dedup_key, text, source=f"sysevents/{d.get('aid', '')}",
            severity=_severity(d.get("verb")), component=d.get("subject_type"), class_=d.get("verb"),
            event_id=ce.get("id"), time=ce.get("time"), links=[{"href": link, "text": "Details"}],
        )  # fmt: skip
    return ce


def resolved_body(channel: str, ce: dict[str, Any], alert: dict[str, Any], *, routing_key: str = "",
                  dedup_key: str = "") -> Any:  # fmt: skip
    """The default JSON body of a resolved alert: `ce` resolved `alert` (the event that fired it)."""
    d, a = _data(ce), _data(alert)
    text = (
        f"Resolved: {d.get('subject_type')} {d.get('subject_id')} {d.get('verb')} in account {d.get('aid')}"
        f" (it {a.get('verb', 'fired')} at {alert.get('time', '?')})"
    )
    if channel == "slack":
        return {"text": text}
    if channel == "teams":
        return _teams(text, [])
    if channel == "pagerduty":
        return _pagerduty(routing_key, "resolve", dedup_key)
    return {"type": "sysevents.alert.resolved", "summary": text, "event": ce, "alert": alert}
