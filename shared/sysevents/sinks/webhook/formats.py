"""What an alert notification says on each webhook channel, by default: Slack, Microsoft Teams, PagerDuty
Events API v2, and any other receiver (a JSON document).

Three notifications, each a JSON body:
- a *single* alert (one event, no grouping) -- only when the job has no `json_template` of its own;
- a *digest* of a group (sysevents.alerts.digest) -- unless the job's `digest_template` (Jsonnet, `digest`
  in scope) says otherwise;
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

from sysevents.alerts.digest import data_of, event_text, headline, item_line, plural, resolved_text

__all__ = ["dedup_of", "digest_body", "headline", "plural", "resolved_body", "single_body"]

PAGERDUTY_SUMMARY_CHARS = 1024


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
        lines = [f"• <{i['link']}|{item_line(i)}>" for i in items]
        if omitted:
            lines.append(f"… and {omitted} more")
        return {"text": "\n".join([title, *lines])}
    if channel == "teams":
        lines = [f"- [{item_line(i)}]({i['link']})" for i in items]
        return _teams(title, lines + ([f"... and {omitted} more"] if omitted else []))
    if channel == "pagerduty":
        first = data_of(items[0]["event"]) if items else {}
        return _pagerduty(
            routing_key, "trigger", dedup_key, title,
            source=f"sysevents/{digest.get('account', '')}", severity=_severity(first.get("verb")),
            component=first.get("subject_type"), class_=first.get("verb"), count=digest.get("count"),
            group=digest.get("group"), subjects=[item_line(i) for i in items], omitted=omitted or None,
            links=[{"href": i["link"], "text": item_line(i)} for i in items[:5]],
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
        d = data_of(ce)
        return _pagerduty(
            routing_key, "trigger", dedup_key, text, source=f"sysevents/{d.get('aid', '')}",
            severity=_severity(d.get("verb")), component=d.get("subject_type"), class_=d.get("verb"),
            event_id=ce.get("id"), time=ce.get("time"), links=[{"href": link, "text": "Details"}],
        )  # fmt: skip
    return ce


def resolved_body(channel: str, ce: dict[str, Any], alert: dict[str, Any], *, routing_key: str = "",
                  dedup_key: str = "") -> Any:  # fmt: skip
    """The default JSON body of a resolved alert: `ce` resolved `alert` (the event that fired it)."""
    text = resolved_text(ce, alert)
    if channel == "slack":
        return {"text": text}
    if channel == "teams":
        return _teams(text, [])
    if channel == "pagerduty":
        return _pagerduty(routing_key, "resolve", dedup_key)
    return {"type": "sysevents.alert.resolved", "summary": text, "event": ce, "alert": alert}
