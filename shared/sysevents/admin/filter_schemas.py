"""The admin API's schemas of content filters (sysevents.filters): a job's `filter` and `exclude`, and the
validation route's input and answer."""

from __future__ import annotations

from sysevents.filters import MAX_EXCLUDES, MAX_FILTER_CHARS

OBJ = {"type": "object"}
CONTENT_FILTER = {
    "filter": {
        "type": "string",
        "maxLength": MAX_FILTER_CHARS,
        "description": "A CEL expression over the event (event.verb, event.data.notes, ...): the job gets the "
        "events it is true for. Errors name the line and column. See docs/filters.md.",
    },
    "exclude": {
        "type": "array",
        "items": {"type": "string", "maxLength": MAX_FILTER_CHARS},
        "maxItems": MAX_EXCLUDES,
        "description": "CEL expressions: the job never gets an event any of them is true for.",
    },
}
FILTER_INPUT = {
    "type": "object",
    "properties": {
        "filter": CONTENT_FILTER["filter"],
        "exclude": CONTENT_FILTER["exclude"],
        "event": {
            **OBJ,
            "description": "A CloudEvents envelope or flat event to try the filter on (optional).",
        },
    },
}
POSITION = {"type": "object", "properties": {"line": {"type": "integer"}, "column": {"type": "integer"}}}
FILTER_CHECK = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "matches": {"type": "boolean", "description": "With an event: whether the job would get it."},
    },
}
