"""The admin API's schemas of alert conditions (sysevents.alerts.conditions): a job's `threshold` or
`absence`, and the condition's state shown with the job."""

from __future__ import annotations

from sysevents.alerts.conditions import MAX_BY, MAX_COUNT
from sysevents.alerts.fields import WEEKDAYS
from sysevents.filters import MAX_FILTER_CHARS

DURATION = {
    "type": ["string", "integer"],
    "description": 'A duration: "90s", "30m", "2h", "1d" or seconds; from 1 minute to 7 days.',
}
FIELDS = {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
          "maxItems": MAX_BY}  # fmt: skip
EXPECT = {
    "type": "object",
    "additionalProperties": False,
    "description": "The expected events: the job-style match (its own when unset) and a CEL filter.",
    "properties": {
        "system_event_type": {"type": "string"},
        "system_event_multiple_types": {"type": "array", "items": {"type": "string"}},
        "system_event_sources": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "filter": {"type": "string", "maxLength": MAX_FILTER_CHARS},
    },
}
CONDITIONS = {
    "threshold": {
        "type": "object",
        "additionalProperties": False,
        "required": ["count", "within"],
        "description": "Fire once when `count` of the job's events of one group (equal `by` fields) happen "
        "within the sliding window; resolved when they fall back below. See docs/alerts.md.",
        "properties": {
            "count": {"type": "integer", "minimum": 1, "maximum": MAX_COUNT},
            "within": DURATION,
            "by": FIELDS,
        },  # fmt: skip
    },
    "absence": {
        "type": "object",
        "additionalProperties": False,
        "description": "Fire when no expected event came `within` (re-armed by each) or by the calendar "
        "deadline `by` (HH:MM in `timezone` on `days`); resolved by the next expected event.",
        "properties": {
            "expect": EXPECT,
            "within": DURATION,
            "by": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
            "timezone": {"type": "string", "description": "IANA time zone, e.g. Europe/Paris (default UTC)."},
            "days": {"type": "array", "items": {"type": "string", "enum": list(WEEKDAYS)}},
        },
    },
}
CONDITION_STATE = {
    "type": "array",
    "description": "Jobs with a condition: each group's state (armed or firing), since when it fires, when "
    "it last saw an expected event (absence), and when its timer is due.",
    "items": {
        "type": "object",
        "properties": {
            "group": {"type": "object", "additionalProperties": {"type": "string"}},
            "state": {"type": "string", "enum": ["armed", "firing"]},
            "firing_since": {"type": ["string", "null"]},
            "last_seen": {"type": ["string", "null"]},
            "next_check": {"type": ["string", "null"]},
        },
    },
}
