"""Email text from a job's Jsonnet templates (or the defaults below), for one event or a digest.

Single email: `subject_template` and `body_template` each evaluate to a string, with `event` (the
CloudEvents envelope) and `link` (a URL about the event's subject) in scope.
Digest: `digest_template` evaluates to `{subject: ..., body: ...}` with `digest` (sysevents.alerts.digest) in
scope.

A job's own templates are evaluated in the template sandbox (`sysevents.templates.sandbox`: workers with
bounded time and memory), at delivery and at save time (`check`, from the admin API) alike; a runaway one fails with a TemplateError
that says so. The built-in defaults below are evaluated in-process (they are ours and linear in the event).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sysevents.alerts.digest import Evaluate, link_for, sample_digest
from sysevents.templates import SAMPLE_EVENT, TemplateError, render_value

MAX_SUBJECT_CHARS = 250
MAX_BODY_BYTES = 256 * 1024
DEFAULT_SUBJECT_TEMPLATE = """\
local d = event.data;
"[sysevents] %s %s %s (account %s)" % [d.subject_type, d.subject_id, d.verb, d.aid]
"""

DEFAULT_BODY_TEMPLATE = """\
local d = event.data;
local has(f) = std.objectHas(d, f) && d[f] != null;
std.join("\\n", [
  "%s %s %s" % [std.asciiUpper(d.subject_type[0:1]) + d.subject_type[1:], d.subject_id, d.verb],
  "",
  "Account:  " + d.aid,
  "Subject:  %s %s" % [d.subject_type, d.subject_id],
  "Verb:     " + d.verb,
] + (if has("actor") then ["Actor:    " + d.actor] else [])
  + ["Time:     " + event.time]
  + (if has("notes") then ["Notes:    " + std.toString(d.notes)] else [])
  + ["", "Details: " + link, "", "Event id: " + event.id, ""])
"""

DEFAULT_DIGEST_TEMPLATE = """\
local g = digest.group;
local what = std.join(", ", ["%s=%s" % [k, g[k]] for k in std.objectFields(g)]);
local line(i) = local d = i.event.data;
  "- %s  %s %s %s%s%s\\n  %s" % [i.event.time, d.subject_type, d.subject_id, d.verb,
    if std.objectHas(d, "notes") then ": " + std.toString(d.notes) else "",
    if i.repeat then " (repeat)" else "", i.link];
if std.objectHas(digest, "condition") then {
  subject: "[sysevents] " + digest.condition.summary,
  body: std.join("\\n", [digest.condition.summary, ""] + [line(i) for i in digest.items]
    + (if digest.omitted > 0 then ["", "... and %d more not listed." % digest.omitted] else []) + [""]),
} else {
  subject: if digest.reason == "rate_limited"
    then "[sysevents] %d alert(s) held back by the rate limit" % digest.count
    else "[sysevents] %d alert(s): %s" % [digest.count, what],
  body: std.join("\\n", [
    if digest.reason == "rate_limited"
    then "The job %s reached its email rate limit; these alerts were held back:" % digest.job.id
    else "%d alert(s) for %s (job %s):" % [digest.count, what, digest.job.id],
    "",
  ] + [line(i) for i in digest.items]
    + (if digest.omitted > 0 then ["", "... and %d more not listed." % digest.omitted] else [])
    + [""]),
}
"""


@dataclass(frozen=True)
class Email:
    subject: str
    body: str


def _subject(value: Any) -> str:
    if not isinstance(value, str):
        raise TemplateError(f"the subject must be a string, got {type(value).__name__}")
    text = re.sub(r"\s+", " ", value).strip()
    if not text:
        raise TemplateError("the subject is empty")
    return text if len(text) <= MAX_SUBJECT_CHARS else text[: MAX_SUBJECT_CHARS - 3] + "..."


def _body(value: Any) -> str:
    if not isinstance(value, str):
        raise TemplateError(f"the body must be a string, got {type(value).__name__}")
    if len(value.encode()) > MAX_BODY_BYTES:
        raise TemplateError(f"the body is {len(value.encode())} bytes; the limit is {MAX_BODY_BYTES}")
    return value


def _value(
    template: str | None, default: str, variables: dict[str, Any], name: str, evaluate: Evaluate | None
) -> Any:
    if template is None or not template.strip():
        return render_value(default, variables, name=name)
    if evaluate is None:  # a job's own template never runs unbounded in-process
        raise TemplateError(f"{name}: no template sandbox to render it with")
    return evaluate(template, variables, name=name)


def render_single(
    subject_template: str | None,
    body_template: str | None,
    event: dict[str, Any],
    link: str,
    *,
    evaluate: Evaluate | None = None,
) -> Email:
    """The email for one event. `evaluate` runs the job's own templates: the template sandbox's
    `render_value` (Runtime.sandbox)."""
    scope = {"event": event, "link": link}
    subject = _value(subject_template, DEFAULT_SUBJECT_TEMPLATE, scope, "subject_template", evaluate)
    body = _value(body_template, DEFAULT_BODY_TEMPLATE, scope, "body_template", evaluate)
    return Email(subject=_subject(subject), body=_body(body))


def render_digest(
    digest_template: str | None, digest: dict[str, Any], *, evaluate: Evaluate | None = None
) -> Email:
    """The digest email of a group. `evaluate` runs the job's own template (the template sandbox)."""
    out = _value(digest_template, DEFAULT_DIGEST_TEMPLATE, {"digest": digest}, "digest_template", evaluate)
    if not isinstance(out, dict) or set(out) != {"subject", "body"}:
        raise TemplateError("digest_template must evaluate to {subject: <string>, body: <string>}")
    return Email(subject=_subject(out["subject"]), body=_body(out["body"]))


class InvalidTemplate(TemplateError):
    """The save-time check failed; `field` is the job config field whose template failed."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check(
    subject_template: str | None,
    body_template: str | None,
    digest_template: str | None,
    group_by: tuple[str, ...] = (),
    *,
    evaluate: Evaluate | None = None,
) -> None:
    """The save-time check (the admin API runs it; loading a job does not): render every template against
    a sample event (in the sandbox, so a runaway template is refused in bounded time); raises
    InvalidTemplate naming the field."""
    scope = {"event": SAMPLE_EVENT, "link": link_for(SAMPLE_EVENT)}
    grouped = sample_digest({k: "x" for k in group_by})
    held = {**sample_digest({}), "reason": "rate_limited"}
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("subject_template", lambda: _subject(
            _value(subject_template, DEFAULT_SUBJECT_TEMPLATE, scope, "subject_template", evaluate))),
        ("body_template", lambda: _body(
            _value(body_template, DEFAULT_BODY_TEMPLATE, scope, "body_template", evaluate))),
        ("digest_template", lambda: render_digest(digest_template, grouped, evaluate=evaluate)),
        ("digest_template", lambda: render_digest(digest_template, held, evaluate=evaluate)),
    ]  # fmt: skip
    for field, step in steps:
        try:
            step()
        except TemplateError as err:
            raise InvalidTemplate(field, str(err)) from None
