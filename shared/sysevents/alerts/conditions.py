"""Alert conditions: a threshold on a count of events, or the absence of an expected event, and the pure
decisions they make. The live engine (sysevents.alerts.watch) and the preview against history
(`simulate`) make the same decisions from the same functions.

- `threshold`: `{"count": N, "within": "30m", "by": ["subject_id"]}`: fires once when the events of a
  group (equal values of the `by` fields) in the sliding window `(now - within, now]` reach N; resolves
  when they fall back below N, i.e. when the oldest events that made the count leave the window.
- `absence`: `{"expect": <filter>, "within": "2h"}` fires when `within` passes with no expected event
  (re-armed by each one); `{"expect": <filter>, "by": "06:00", "timezone": "Europe/Paris", "days": [...]}`
  fires when a calendar deadline passes with no expected event since the deadline before it. Either
  resolves on the next expected event.

Times are aware datetimes; durations are real seconds (the caller scales them: sysevents.config.scaled).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sysevents.alerts.fields import FIELD_NAME, WEEKDAYS, field_value
from sysevents.events.model import parse_subject_type, parse_verb
from sysevents.filters import FilterText

MIN_WITHIN = 60
MAX_WITHIN = 7 * 86400
MAX_COUNT = 10_000
MAX_BY = 8
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_duration(value: Any) -> int:
    """Seconds of "90s", "30m", "2h", "1d" or a number of seconds, within [MIN_WITHIN, MAX_WITHIN]."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    m = _DURATION.match(str(value)) if isinstance(value, str | int | float) else None
    if not m:
        raise ValueError(f'{value!r} is not a duration; write e.g. "90s", "30m", "2h" or "1d"')
    seconds = float(m[1]) * _UNIT[m[2]]
    if not MIN_WITHIN <= seconds <= MAX_WITHIN:
        raise ValueError(f"{value!r} is {seconds:g} s; it must be from 1 minute to 7 days")
    return int(seconds)


def _field_names(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list | tuple):
        raise ValueError('must be a list of event data field names, e.g. ["subject_id"] or ["actor"]')
    for i, name in enumerate(v):
        if not isinstance(name, str) or not FIELD_NAME.match(name):
            raise ValueError(f"entry {i}: {name!r} is not an event data field name (letters, digits, _)")
    if len(set(v)) != len(v):
        raise ValueError("lists a field twice")
    if len(v) > MAX_BY:
        raise ValueError(f"{len(v)} fields; at most {MAX_BY}")
    return tuple(v)


class Threshold(BaseModel):
    """Fire when `count` events of one group happen within `within` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(ge=1, le=MAX_COUNT, description="Events in the window that fire the alert.")
    within: int = Field(description='The sliding window: "30m", "2h", or seconds (1 minute to 7 days).')
    by: tuple[str, ...] = Field(default=(), description="Event data fields that make a group.")

    @field_validator("count", mode="before")
    @classmethod
    def _count(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"must be a whole number from 1 to {MAX_COUNT}")
        return v

    @field_validator("within", mode="before")
    @classmethod
    def _within(cls, v: Any) -> int:
        return parse_duration(v)

    @field_validator("by", mode="before")
    @classmethod
    def _by(cls, v: Any) -> tuple[str, ...]:
        return _field_names(v)

    def key(self, data: dict[str, Any]) -> dict[str, str]:
        return {name: field_value(data, name) for name in self.by}


class Expect(BaseModel):
    """The expected events: the job-style match (subject types and ids, verbs), and optionally a CEL
    `filter` over the event (sysevents.filters). Unset parts are the job's own filter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system_event_type: str | None = None
    system_event_multiple_types: tuple[str, ...] | None = None
    system_event_sources: dict[str, tuple[str, ...]] | None = None
    filter: FilterText | None = None
    """A CEL expression over the event (sysevents.filters), checked when the job is saved."""

    @field_validator("system_event_type", mode="before")
    @classmethod
    def _verb(cls, v: Any) -> Any:
        return None if v is None else parse_verb(v, "system_event_type").value

    @field_validator("system_event_multiple_types", mode="before")
    @classmethod
    def _verbs(cls, v: Any) -> Any:
        if v is None:
            return None
        if not isinstance(v, list | tuple) or not v:
            raise ValueError('must be a list of verbs, e.g. ["completed"]')
        return tuple(parse_verb(x, "system_event_multiple_types entry").value for x in v)

    @field_validator("system_event_sources", mode="before")
    @classmethod
    def _sources(cls, v: Any) -> Any:
        if v is None:
            return None
        if not isinstance(v, dict) or not v:
            raise ValueError('must be an object like {"work": ["nightly-export"]}')
        out = {}
        for key, ids in v.items():
            st = parse_subject_type(key, "system_event_sources key").value
            if not isinstance(ids, list | tuple) or not all(isinstance(i, str | int) for i in ids):
                raise ValueError(f"system_event_sources.{key} must be a list of subject ids ([] = all)")
            out[st] = tuple(str(i) for i in ids)
        return out

    def verbs(self) -> tuple[str, ...] | None:
        found = list(self.system_event_multiple_types or ())
        if self.system_event_type:
            found.insert(0, self.system_event_type)
        return tuple(dict.fromkeys(found)) or None


class Absence(BaseModel):
    """Fire when no expected event came within `within` seconds (re-armed by each), or by a calendar
    deadline: `by` ("HH:MM") in `timezone` on `days`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    expect: Expect = Field(default_factory=Expect)
    within: int | None = None
    by: str | None = None
    timezone: str = "UTC"
    days: tuple[str, ...] = WEEKDAYS

    @field_validator("within", mode="before")
    @classmethod
    def _within(cls, v: Any) -> int | None:
        return None if v is None else parse_duration(v)

    @field_validator("by")
    @classmethod
    def _by(cls, v: str | None) -> str | None:
        if v is not None and not _HHMM.match(v):
            raise ValueError(f"{v!r} is not a time of day HH:MM (00:00 to 23:59)")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name like Europe/Paris") from None
        return v

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list | tuple) or not v:
            raise ValueError('must be a list of weekdays, e.g. ["monday", "tuesday"]')
        out = []
        for i, day in enumerate(v):
            name = str(day).strip().lower()
            if name not in WEEKDAYS:
                raise ValueError(f"entry {i}: {day!r} is not a weekday ({', '.join(WEEKDAYS)})")
            out.append(name)
        return tuple(sorted(set(out), key=WEEKDAYS.index))

    @model_validator(mode="after")
    def _one_window(self) -> Absence:
        if (self.within is None) == (self.by is None):
            raise ValueError('set within ("2h": re-armed by each event) or by ("06:00": a daily deadline)')
        if self.within is not None and (self.timezone != "UTC" or self.days != WEEKDAYS):
            raise ValueError("timezone and days go with by (a calendar deadline), not within")
        return self

    def describe(self) -> str:
        if self.within is not None:
            return f"within {human(self.within)}"
        days = "" if len(self.days) == 7 else " on " + ", ".join(self.days)
        return f"by {self.by} {self.timezone}{days}"


def human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# -- threshold decisions ------------------------------------------------------------------------------------
def in_window(times: Iterable[datetime], now: datetime, within: timedelta) -> list[datetime]:
    """The times inside the sliding window `(now - within, now]`, oldest first."""
    return sorted(t for t in times if now - within < t <= now)


def resolves_at(window: list[datetime], count: int, within: timedelta) -> datetime | None:
    """When a window of these times (oldest first) falls below `count`, with no new event: when its
    (len - count + 1)-th oldest leaves it. None when it is below already."""
    if len(window) < count:
        return None
    return window[len(window) - count] + within


@dataclass(frozen=True)
class Step:
    """What a condition does now: fire, resolve or nothing (None), and when to look again (`check_at`)."""

    action: str | None
    check_at: datetime | None


def threshold_step(window: list[datetime], count: int, within: timedelta, firing: bool) -> Step:
    """A group's decision from the times in its window now: fire when it reaches `count`, resolve when it
    is below; look again when it would fall below."""
    at = resolves_at(window, count, within)
    if at is None:
        return Step("resolve" if firing else None, None)
    return Step(None if firing else "fire", at)


# -- absence decisions --------------------------------------------------------------------------------------
def _deadlines(cond: Absence, after: datetime) -> Iterable[datetime]:
    """The calendar deadlines from the day of `after` on, in order."""
    assert cond.by is not None
    zone = ZoneInfo(cond.timezone)
    hh, mm = (int(x) for x in cond.by.split(":"))
    day = after.astimezone(zone).date() - timedelta(days=1)
    for _ in range(9):
        if WEEKDAYS[day.weekday()] in cond.days:
            local = datetime.combine(day, time(hh, mm), tzinfo=zone)
            yield local.astimezone(UTC)  # a time skipped by DST maps to the instant after the gap
        day += timedelta(days=1)


def next_deadline(cond: Absence, after: datetime, *, inclusive: bool = False) -> datetime:
    """The first calendar deadline after `after` (at or after, with `inclusive`)."""
    for d in _deadlines(cond, after):
        if d > after or (inclusive and d == after):
            return d
    raise AssertionError("a week always has a deadline")


def armed_deadline(cond: Absence, within: timedelta | None, armed_at: datetime) -> datetime:
    """The first deadline of a condition armed at `armed_at` with no event seen yet."""
    return armed_at + within if within is not None else next_deadline(cond, armed_at)


def deadline_after_event(
    cond: Absence, within: timedelta | None, seen_at: datetime, *, late: bool = False
) -> datetime:
    """The deadline an expected event at `seen_at` arms: `within` after it; or the calendar deadline after
    the one it satisfies (an event at 05:00 satisfies today's 06:00; tomorrow's is next). A `late` event
    (it resolves a deadline missed) satisfies that missed one: the next deadline after it is armed."""
    if within is not None:
        return seen_at + within
    if late:
        return next_deadline(cond, seen_at)
    return next_deadline(cond, next_deadline(cond, seen_at, inclusive=True))


# -- the preview against history ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Transition:
    """A notification the condition sends: `kind` fire or resolve, `at`, its group, and what it knew."""

    kind: str
    at: datetime
    group: tuple[tuple[str, str], ...] = ()
    count: int = 0
    last_seen: datetime | None = None


Condition = Threshold | Absence


def simulate(
    cond: Condition,
    events: Iterable[tuple[datetime, dict[str, Any]]],
    start: datetime,
    end: datetime,
    scale: float = 1.0,
) -> list[Transition]:
    """The firings and resolutions `cond` makes over `[start, end]` given the matching events `(time, data)`
    in time order (for an absence: the expected events). `scale` scales its durations."""
    events = [(t, d) for t, d in events if start <= t <= end]
    if isinstance(cond, Threshold):
        return _simulate_threshold(cond, events, end, timedelta(seconds=cond.within * scale))
    within = None if cond.within is None else timedelta(seconds=cond.within * scale)
    return _simulate_absence(cond, [t for t, _ in events], start, end, within)


def _simulate_threshold(cond: Threshold, events: list, end: datetime, within: timedelta) -> list[Transition]:
    groups: dict[tuple, deque[datetime]] = {}
    firing: dict[tuple, bool] = {}
    out: list[Transition] = []
    for t, data in events:
        g = tuple(cond.key(data).items())
        window = groups.setdefault(g, deque())
        if firing.get(g):
            at = resolves_at(list(window), cond.count, within)
            if at is not None and at < t:  # an event at that very time keeps it firing
                out.append(Transition("resolve", at, g, cond.count - 1))
                firing[g] = False
        while window and window[0] <= t - within:
            window.popleft()
        window.append(t)
        if not firing.get(g) and len(window) >= cond.count:
            out.append(Transition("fire", t, g, len(window)))
            firing[g] = True
    for g, window in groups.items():
        at = resolves_at(list(window), cond.count, within) if firing.get(g) else None
        if at is not None and at <= end:
            out.append(Transition("resolve", at, g, cond.count - 1))
    return sorted(out, key=lambda x: (x.at, x.kind != "resolve"))


def _simulate_absence(
    cond: Absence, times: list[datetime], start: datetime, end: datetime, within: timedelta | None
) -> list[Transition]:
    out: list[Transition] = []
    deadline: datetime | None = armed_deadline(cond, within, start)
    last: datetime | None = None
    firing = False
    for t in [*times, None]:
        limit = end if t is None else t
        if deadline is not None and not firing and deadline <= limit and (t is None or deadline < t):
            out.append(Transition("fire", deadline, last_seen=last))
            firing, deadline = True, None
        if t is None:
            break
        late = firing
        if firing:
            out.append(Transition("resolve", t, last_seen=last))
            firing = False
        last = t
        deadline = deadline_after_event(cond, within, t, late=late)
    return out
