"""The job preview's request and response schemas (JSON Schema, merged into the OpenAPI document's)."""

from __future__ import annotations

from typing import Any

OBJ: dict[str, Any] = {"type": "object"}
STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
COUNTS: dict[str, Any] = {"type": "object", "additionalProperties": INT}
TIME: dict[str, Any] = {"type": "string", "format": "date-time"}

PREVIEW_SCHEMAS: dict[str, Any] = {
    "JobPreviewInput": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "job": {
                "$ref": "#/components/schemas/JobInput",
                "description": "A job body, as for creating it.",
            },
            "job_id": {**STR, "description": "Or a saved job of the account."},
            "start": {**TIME, "description": "Inclusive; default: end minus SYSEVENTS_PREVIEW_DEFAULT_DAYS."},
            "end": {**TIME, "description": "Exclusive; default and latest: now."},
        },
    },
    "JobPreview": {
        "type": "object",
        "properties": {
            "job": OBJ,
            "range": {"type": "object", "properties": {"start": TIME, "end": TIME}},
            "scanned": {**INT, "description": "Audit-log events read in the range."},
            "truncated": {
                "type": "boolean",
                "description": "More than SYSEVENTS_PREVIEW_MAX_EVENTS: only the range's first ones were read.",
            },
            "matched": {**INT, "description": "Events the job would have received."},
            "matched_per_day": COUNTS,
            "first_match": {"type": ["string", "null"], "format": "date-time"},
            "last_match": {"type": ["string", "null"], "format": "date-time"},
            "alerting": {"type": "boolean", "description": "The job goes through the alert engine."},
            "deliveries": {**INT, "description": "Deliveries the job's sink would have made."},
            "notifications": {**INT, "description": "Notifications (alerting jobs), else deliveries."},
            "notifications_by_kind": COUNTS,
            "notifications_per_day": COUNTS,
            "filtered": {
                **COUNTS,
                "description": "Matched events the alert engine would have dropped, by why.",
            },
            "waiting_at_end": {**INT, "description": "Events still waiting for their group's notification."},
            "first_notifications": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"at": TIME, "kind": STR, "events": INT, "group": OBJ},
                },
            },
            "sample": {"type": "array", "items": OBJ, "description": "The first matched events."},
        },
    },
}
