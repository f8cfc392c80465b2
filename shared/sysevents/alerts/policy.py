"""Noise-control settings of an alert job (email, or a webhook: Slack, Teams, PagerDuty, any receiver), and
the pure decisions built on them.

Semantics follow Prometheus Alertmanager where it has the concept:
- `grouping.by`: events with equal values of these fields share a group, and so an email (a digest).
- `group_wait`: how long a new group waits for more events before its first email.
- `group_interval`: how long after a group's last email to wait before emailing its new events.
- `repeat_interval`: an alert (subject type, subject id, verb) already emailed is not emailed again for
  this long; its repeats are held and reported in the group's next email, at the latest after this long.
- `silences`: events matching every matcher are dropped while the silence is active.
- `mute_windows`: recurring times (weekdays, times of day, a time zone) when events are dropped,
  like Alertmanager's `mute_time_intervals`.
- `resolve_on`: verbs that resolve an alert: an alert on `work failed` resolves when the same subject later
  emits `completed` (Alertmanager's resolved notifications, driven by the events themselves).
Alertmanager has no rate limit: `rate_limit` (email) / `notify_limit` (webhooks) caps the notifications a
job sends per fixed window; what it holds back is sent as one "held back" digest when the window ends.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sysevents.alerts.conditions import Absence, Threshold
from sysevents.alerts.fields import FIELD_NAME, WEEKDAYS, field_value
from sysevents.events.model import parse_verb
from sysevents.jobs.model import MAX_TEMPLATE_CHARS

MAX_SILENCES = 100
MAX_MUTE_WINDOWS = 20
DAY = 86400


def _field_name(name: str) -> str:
    if not isinstance(name, str) or not FIELD_NAME.match(name):
        raise ValueError(f"{name!r} is not an event data field name (letters, digits, _)")
    return name


def alert_key(data: dict[str, Any]) -> str:
    """An alert's identity for repeat_interval: what happened to which subject."""
    return (
        f"{field_value(data, 'subject_type')}/{field_value(data, 'subject_id')}/{field_value(data, 'verb')}"
    )


class Grouping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    by: tuple[str, ...] = Field(min_length=1, max_length=8)
    group_wait: int = Field(
        default=30, ge=0, le=DAY, description="Seconds a new group waits for more events."
    )
    group_interval: int = Field(
        default=300, ge=1, le=DAY, description="Seconds between a group's emails about new events."
    )
    repeat_interval: int = Field(
        default=4 * 3600,
        ge=1,
        le=30 * DAY,
        description="Seconds before an alert already emailed is emailed again.",
    )
    max_events: int = Field(
        default=20, ge=1, le=100, description="Events listed in one digest; more are counted."
    )

    @field_validator("by", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list | tuple):
            raise ValueError('must be a list of event data field names, e.g. ["subject_type", "verb"]')
        names = tuple(_field_name(n) for n in v)
        if len(set(names)) != len(names):
            raise ValueError("lists a field twice")
        return names

    @model_validator(mode="after")
    def _intervals(self) -> Grouping:
        if self.repeat_interval < self.group_interval:
            raise ValueError("repeat_interval must be at least group_interval")
        return self

    def key(self, data: dict[str, Any]) -> dict[str, str]:
        return {name: field_value(data, name) for name in self.by}


class RateLimit(BaseModel):
    """At most `max_notifications` notifications (emails, posts) per fixed window of `per_seconds`; what
    it holds back goes out as one "held back" digest when the window ends. `max_emails` is the email
    jobs' name for the same number."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_emails: int = Field(ge=1, le=100_000)
    per_seconds: int = Field(default=3600, ge=60, le=DAY)

    @model_validator(mode="before")
    @classmethod
    def _alias(cls, v: Any) -> Any:
        if isinstance(v, dict) and "max_notifications" in v:
            v = dict(v)
            if "max_emails" in v:
                raise ValueError("set max_notifications or max_emails, not both")
            v["max_emails"] = v.pop("max_notifications")
        return v

    @property
    def max_notifications(self) -> int:
        return self.max_emails

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        start = int(now.timestamp()) // self.per_seconds * self.per_seconds
        begin = datetime.fromtimestamp(start, UTC)
        return begin, begin + timedelta(seconds=self.per_seconds)


def _aware(v: datetime) -> datetime:
    return v if v.tzinfo else v.replace(tzinfo=UTC)


class Silence(BaseModel):
    """Mute events matching every matcher (field -> value, or list of values) until `ends_at`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    matchers: dict[str, str | tuple[str, ...]] = Field(min_length=1, max_length=16)
    ends_at: datetime
    starts_at: datetime | None = None
    comment: str | None = Field(default=None, max_length=500)
    created_by: str | None = Field(default=None, max_length=256)

    @field_validator("matchers", mode="before")
    @classmethod
    def _matchers(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            raise ValueError('must be an object like {"subject_id": "work-1", "verb": "failed"}')
        out = {}
        for name, value in v.items():
            _field_name(name)
            if isinstance(value, list | tuple):
                if not value or not all(isinstance(x, str | int) for x in value):
                    raise ValueError(f"matcher {name!r}: a list needs one or more text values")
                out[name] = tuple(str(x) for x in value)
            elif isinstance(value, str | int) and not isinstance(value, bool):
                out[name] = str(value)
            else:
                raise ValueError(f"matcher {name!r}: value must be text or a list of texts")
        return out

    @field_validator("ends_at", "starts_at")
    @classmethod
    def _tz(cls, v: datetime | None) -> datetime | None:
        return None if v is None else _aware(v)

    @model_validator(mode="after")
    def _order(self) -> Silence:
        if self.starts_at is not None and self.starts_at >= self.ends_at:
            raise ValueError("starts_at must be before ends_at")
        return self

    def active(self, now: datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and now < self.ends_at

    def matches(self, data: dict[str, Any]) -> bool:
        for name, want in self.matchers.items():
            have = field_value(data, name)
            if have not in (want if isinstance(want, tuple) else (want,)):
                return False
        return True


_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


class TimeRange(BaseModel):
    """[start_time, end_time) in the window's time zone, "HH:MM" (end may be "24:00"), as in Alertmanager."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_time: str
    end_time: str

    @field_validator("start_time", "end_time")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"{v!r} is not a time of day HH:MM (00:00 to 24:00)")
        return v

    @model_validator(mode="after")
    def _order(self) -> TimeRange:
        if _minutes(self.start_time) >= _minutes(self.end_time):
            raise ValueError(
                f"start_time {self.start_time} must be before end_time {self.end_time} "
                "(split ranges that cross midnight in two)"
            )
        return self

    def contains(self, t: time) -> bool:
        m = t.hour * 60 + t.minute
        return _minutes(self.start_time) <= m < _minutes(self.end_time)


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _weekday_set(items: tuple[str, ...]) -> frozenset[int]:
    days: set[int] = set()
    for item in items:
        lo, _, hi = item.partition(":")
        a, b = WEEKDAYS.index(lo), WEEKDAYS.index(hi or lo)
        if b < a:
            raise ValueError(f"weekday range {item!r} runs backwards")
        days.update(range(a, b + 1))
    return frozenset(days)


class MuteWindow(BaseModel):
    """A recurring window when the job sends nothing: weekdays ("monday:friday" ranges allowed), times of
    day, in a time zone (`location`, IANA name). An absent field means "every"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weekdays: tuple[str, ...] | None = None
    times: tuple[TimeRange, ...] | None = None
    location: str = "UTC"
    name: str | None = Field(default=None, max_length=200)

    @field_validator("weekdays", mode="before")
    @classmethod
    def _weekdays(cls, v: Any) -> Any:
        if v is None:
            return None
        if not isinstance(v, list | tuple) or not v:
            raise ValueError('must be a list like ["saturday", "sunday"] or ["monday:friday"]')
        out = []
        for item in v:
            text = str(item).strip().lower()
            parts = text.split(":")
            if len(parts) > 2 or any(p not in WEEKDAYS for p in parts):
                raise ValueError(
                    f"{item!r} is not a weekday or range; use names like monday or monday:friday"
                )
            out.append(text)
        _weekday_set(tuple(out))
        return tuple(out)

    @field_validator("location")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name like Europe/Paris") from None
        return v

    @model_validator(mode="after")
    def _something(self) -> MuteWindow:
        if self.weekdays is None and self.times is None:
            raise ValueError("set weekdays, times or both (an empty window would mute everything)")
        return self

    def contains(self, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.location))
        if self.weekdays is not None and local.weekday() not in _weekday_set(self.weekdays):
            return False
        return self.times is None or any(r.contains(local.time()) for r in self.times)


def muted_by(
    silences: tuple[Silence, ...], windows: tuple[MuteWindow, ...], data: dict[str, Any], now: datetime
) -> str | None:
    """Why an event arriving now is dropped (an active matching silence, or a mute window), or None."""
    for i, s in enumerate(silences):
        if s.active(now) and s.matches(data):
            return f"silenced by silence {i}" + (f" ({s.comment})" if s.comment else "")
    for i, w in enumerate(windows):
        if w.contains(now):
            return f"in mute window {w.name or i}"
    return None


class AlertOptions(BaseModel):
    """The alert fields every alerting workflow's config has (email jobs; webhook jobs that alert)."""

    grouping: Grouping | None = None
    silences: tuple[Silence, ...] = Field(default=(), max_length=MAX_SILENCES)
    mute_windows: tuple[MuteWindow, ...] = Field(default=(), max_length=MAX_MUTE_WINDOWS)
    resolve_on: tuple[str, ...] = Field(default=(), max_length=9)
    """Verbs that resolve an alert fired for the same subject (e.g. ["completed", "synccomplete"])."""
    digest_template: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARS)
    threshold: Threshold | None = None
    """Fire when `count` of the job's events of one group happen `within` a sliding window."""
    absence: Absence | None = None
    """Fire when no expected event came within a window, or by a calendar deadline."""

    @model_validator(mode="before")
    @classmethod
    def _expected_events(cls, v: Any) -> Any:
        """An absence job is fed its expected events: `absence.expect`'s match is the job's filter."""
        absence = v.get("absence") if isinstance(v, dict) else None
        expect = absence.get("expect") if isinstance(absence, dict) else None
        if not isinstance(expect, dict):
            return v
        v = dict(v)
        for name in ("system_event_type", "system_event_multiple_types", "system_event_sources"):
            if expect.get(name) is not None and v.get(name) is None:
                v[name] = expect[name]
        if v.get("system_event_type") is not None and expect.get("system_event_multiple_types") is not None:
            v.pop("system_event_type")  # the expect's verbs, given as a list
        return v

    @field_validator("resolve_on", mode="before")
    @classmethod
    def _resolve_verbs(cls, v: Any) -> Any:
        if v is None:
            return ()
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list | tuple):
            raise ValueError('must be a list of verbs, e.g. ["completed", "synccomplete"]')
        return tuple(dict.fromkeys(parse_verb(x, "resolve_on entry").value for x in v))

    @model_validator(mode="after")
    def _resolve_not_fire(self) -> AlertOptions:
        verbs = getattr(self, "verbs", None)
        both = sorted(set(self.resolve_on) & {v.value for v in verbs()}) if verbs else []
        if both:
            raise ValueError(f"resolve_on: {', '.join(both)} both fires and resolves alerts")
        return self._condition_fits()

    def _condition_fits(self) -> AlertOptions:
        if self.threshold is None and self.absence is None:
            return self
        if self.threshold is not None and self.absence is not None:
            raise ValueError("set threshold or absence, not both (make two jobs)")
        which = "threshold" if self.threshold is not None else "absence"
        if self.grouping is not None:
            raise ValueError(f"{which}: a condition groups by itself (threshold.by); remove grouping")
        if self.resolve_on:
            raise ValueError(f"{which}: a condition resolves by itself; remove resolve_on")
        if self.absence is not None:
            expect = self.absence.expect
            want = {str(v) for v in self.verbs()} if hasattr(self, "verbs") else set()
            if expect.verbs() is not None and set(expect.verbs()) != want:
                raise ValueError("absence.expect: its verbs differ from the job's system_event_* verbs; set them "
                                 "in one place")  # fmt: skip
            sources = getattr(self, "system_event_sources", None)
            mine = {str(k): tuple(v) for k, v in (sources or {}).items()}
            if expect.system_event_sources is not None and expect.system_event_sources != mine:
                raise ValueError("absence.expect: its system_event_sources differ from the job's; set them in "
                                 "one place")  # fmt: skip
        return self

    def condition(self) -> Threshold | Absence | None:
        """The job's condition (sysevents.alerts.conditions), or None: an alert per event."""
        return self.threshold or self.absence

    def limit(self) -> RateLimit | None:
        """The notification rate limit in force (email: rate_limit; webhooks: notify_limit)."""
        return None

    def alerting(self) -> bool:
        """True when the job goes through the alert engine (always for email)."""
        return True
