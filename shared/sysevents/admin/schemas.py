"""The admin API's request and response schemas (JSON Schema, as the OpenAPI document lists them)."""

from __future__ import annotations

from typing import Any

from sysevents.admin.condition_schemas import CONDITION_STATE, CONDITIONS
from sysevents.admin.filter_schemas import CONTENT_FILTER, FILTER_SCHEMAS, POSITION
from sysevents.admin.keys import SCOPE_DOCS, SCOPES
from sysevents.admin.preview_schemas import PREVIEW_SCHEMAS
from sysevents.events.model import SUBJECT_TYPES, VERBS
from sysevents.jobs.model import WORKFLOWS
from sysevents.jobs.origin import FIELD as ORIGIN_FIELD

OBJ = {"type": "object"}
STR = {"type": "string"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


FILTER = {
    "system_event_type": {
        "type": "string",
        "enum": list(VERBS),
        "description": "One verb ('update' = 'updated').",
    },
    "system_event_multiple_types": {"type": "array", "items": {"type": "string", "enum": list(VERBS)}},
    "system_event_sources": {
        "type": "object",
        "description": "Subject type -> subject ids ([] = every subject); absent = every type.",
        "propertyNames": {"enum": list(SUBJECT_TYPES)},
        "additionalProperties": {
            "type": "array",
            "items": {"type": "string", "maxLength": 256},
            "maxItems": 1000,
        },
    },
    **CONTENT_FILTER,
}
WEBHOOK_CONFIG = {
    "type": "object",
    "additionalProperties": False,
    "required": ["webhook_url"],
    "properties": {
        **FILTER,
        "webhook_url": {
            "type": "string",
            "maxLength": 2048,
            "description": "https only; private, loopback, link-local and metadata addresses refused.",
        },
        "headers": {
            "type": "object",
            "maxProperties": 32,
            "additionalProperties": {"type": "string", "maxLength": 2048},
            "description": "Sent with each delivery. Values are sealed at rest and shown redacted "
            "('****' + last 2 characters); sending back the redacted value keeps it.",
        },
        "json_template": {
            "type": "string",
            "maxLength": 32768,
            "description": "Jsonnet with `event` in scope; checked against a sample event on save.",
        },
        "channel": {
            "type": "string",
            "enum": ["auto", "slack", "teams", "pagerduty", "webhook"],
            "description": "The receiver's kind, for the default alert formats (auto: from the URL's host).",
        },
        "grouping": {
            "type": "object",
            "description": "Alert grouping: {by: [fields], group_wait, group_interval, repeat_interval, "
            "max_events} (seconds), as Alertmanager's.",
        },
        "resolve_on": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Verbs that resolve an alert fired for the same subject.",
        },
        "digest_template": {"type": "string", "maxLength": 32768, "description": "Jsonnet with `digest`."},
        "resolve_template": {
            "type": "string",
            "maxLength": 32768,
            "description": "Jsonnet with `event` (resolving) and `alert` (the one that fired).",
        },
        "routing_key": {
            "type": "string",
            "description": "PagerDuty integration key; sealed, shown redacted.",
        },
        "notify_limit": {
            "type": "object",
            "description": "{max_notifications, per_seconds}: the rest goes out as one held-back digest.",
        },
        **CONDITIONS,
    },
}
SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "properties": {"field": {"type": ["string", "null"]}, "message": STR, "position": POSITION},
            }
        },
    },
    "JobInput": {
        "type": "object",
        "required": ["workflow", "config"],
        "properties": {
            "id": {
                "type": "string",
                "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
                "description": "create only",
            },
            "name": {"type": "string", "maxLength": 200},
            "workflow": {"type": "string", "enum": list(WORKFLOWS)},
            "state": {"type": "string", "enum": ["active", "paused"]},
            "version": {"type": "integer", "description": "Expected current version (or If-Match)."},
            "config": WEBHOOK_CONFIG,
        },
    },
    "JobPatch": {"type": "object", "description": "JSON merge patch (RFC 7386) of JobInput (not id)."},
    "ResumeInput": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "replay": {
                "type": "boolean",
                "description": "Also re-deliver what was dead-lettered while the job was paused (since it was "
                "auto-disabled; every dead letter when a person paused it).",
            },
            "version": {"type": "integer", "description": "Expected current version (or If-Match)."},
        },
    },
    "Job": {
        "type": "object",
        "properties": {
            "id": STR,
            "aid": STR,
            "name": {"type": ["string", "null"]},
            "workflow": STR,
            "state": STR,
            "version": {"type": "integer"},
            "config": OBJ,
            "created_at": STR,
            "updated_at": STR,
            "dry_run": {"type": "boolean"},
            "replayed": {"type": "integer", "description": "resume with replay: dead letters re-delivered"},
            "condition_state": CONDITION_STATE,
            "recipients": {
                "type": "array",
                "description": "Email jobs: each recipient's consent state (confirmed, allowed_domain: "
                "receive alerts; pending: asked at invited_at; unconfirmed; unsubscribed: held).",
                "items": {
                    "type": "object",
                    "properties": {"address": STR, "state": STR, "invited_at": {"type": ["string", "null"]}},
                },
            },
        },
    },
    "JobList": {
        "type": "object",
        "properties": {
            "jobs": {"type": "array", "items": ref("Job")},
            "next_page_token": {"type": ["string", "null"]},
        },
    },
    "AuditPage": {
        "type": "object",
        "properties": {
            "events": {"type": "array", "items": {**OBJ, "description": "CloudEvents 1.0 envelope"}},
            "next_page_token": {"type": ["string", "null"]},
        },
    },
    "Deleted": {
        "type": "object",
        "properties": {"id": STR, "deleted": {"type": "boolean"}, "version": {"type": "integer"}},
    },
    "PreviewInput": {
        "type": "object",
        "properties": {
            "event": {
                **OBJ,
                "description": "A CloudEvents envelope or flat event; default: a sample event.",
            },
            "json_template": {**STR, "description": "Try this template instead of the job's."},
        },
    },
    "Preview": {"type": "object", "properties": {"rendered": {}, "event": OBJ}},
    **FILTER_SCHEMAS,
    "Deliveries": {
        "type": "object",
        "properties": {
            "attempts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "at": STR,
                        "attempt": {"type": "integer"},
                        "outcome": {"enum": ["delivered", "retry", "dead_lettered"]},
                        "status": {"type": ["integer", "null"]},
                        "latency_ms": {"type": ["number", "null"]},
                        "error": {"type": ["string", "null"]},
                        "event_id": STR,
                        "webhook_id": STR,
                    },
                },
            },
            "dead_letters": {"type": "array", "items": OBJ},
            "next_before": {"type": ["string", "null"]},
        },
    },
    "Stats": {
        "type": "object",
        "description": "received = delivered + filtered + dead_lettered + pending",
        "properties": {
            k: {"type": "integer"}
            for k in (
                "received",
                "delivered",
                "filtered",
                "dead_lettered",
                "pending",
                "failed_attempts",
                "consecutive_failures",
                "pushed_back",
            )
        }
        | {
            "disabled_reason": {"type": ["string", "null"]},
            "learned_pace": {
                "type": ["object", "null"],
                "description": "the pace learned from the receiver's 429s (requests per second, since when); "
                "null when it has not pushed back in the last ten minutes",
            },
        },
    },
    "ReplayInput": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "since": {**STR, "format": "date-time", "description": "only deliveries dead-lettered since"},
            "template_version": {
                "type": "integer",
                "minimum": 1,
                "description": "render with this job version's "
                "template (one the sink has delivered with); default: the current one",
            },
        },
    },
    "Replayed": {
        "type": "object",
        "properties": {"replayed": {"type": "integer"}, "webhook_ids": {"type": "array", "items": STR}},
    },
    "TestInput": {
        "type": "object",
        "properties": {
            "event": {
                **OBJ,
                "description": "Event data fields to override (subject_type, subject_id, verb, notes...).",
            }
        },
    },
    "TestSent": {
        "type": "object",
        "properties": {
            "event": {**OBJ, "description": f"Marked with data.{ORIGIN_FIELD}: delivered to this job only."},
            "message_id": STR,
        },
    },
    "EmailPolicy": {
        "type": "object",
        "properties": {
            "aid": STR,
            "allowed_domains": {
                "type": "array",
                "maxItems": 100,
                "items": STR,
                "description": "Addresses in these domains (or their subdomains) need no confirmation.",
            },
            "daily_quota": {
                "type": ["integer", "null"],
                "minimum": 1,
                "description": "Emails per UTC day; null: the deployment's SYSEVENTS_EMAIL_DAILY_QUOTA.",
            },
        },
    },
    "Principal": {
        "type": "object",
        "properties": {
            "operator": {"type": "boolean"},
            "aid": {"type": ["string", "null"]},
            "prefix": STR,
            "name": STR,
            "scope": {"type": "string", "enum": list(SCOPES)},
        },
    },
    "AccountInput": {
        "type": "object",
        "required": ["aid"],
        "properties": {
            "aid": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
            "name": STR,
        },
    },
    "Account": {
        "type": "object",
        "properties": {"aid": STR, "name": {"type": ["string", "null"]}, "created_at": STR},
    },
    "AccountList": {
        "type": "object",
        "properties": {
            "accounts": {"type": "array", "items": ref("Account")},
            "next_page_token": {"type": ["string", "null"]},
        },
    },
    "Quarantine": {
        "type": "object",
        "properties": {
            "events": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": STR,
                        "reason": STR,
                        "aid": {"type": ["string", "null"]},
                        "size": {"type": "integer"},
                        "truncated": {"type": "boolean"},
                        "quarantined_at": STR,
                        "data": STR,
                        "data_base64": STR,
                    },
                },
            },
            "next_before": {"type": ["string", "null"]},
        },
    },
    "KeyInput": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "maxLength": 100},
            "scope": {
                "type": "string",
                "enum": list(SCOPES),
                "description": "; ".join(f"{k}: {v}" for k, v in SCOPE_DOCS.items()),
            },
            "expires_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When the key stops working (ISO 8601; no offset: UTC). Absent or null, and "
                "no expires_in_days: never, or when the key minting it expires.",
            },
            "expires_in_days": {
                "type": "integer",
                "minimum": 1,
                "description": "Or: this many days from now. At most SYSEVENTS_API_KEY_MAX_DAYS (365).",
            },
        },
    },
    "Key": {
        "type": "object",
        "properties": {
            "aid": STR,
            "name": STR,
            "prefix": STR,
            "scope": {"type": "string", "enum": list(SCOPES)},
            "created_at": STR,
            "created_by": {**STR, "description": "The minting key's name and prefix, or the operator."},
            "expires_at": {"type": ["string", "null"], "description": "null: never expires"},
            "revoked_at": {"type": ["string", "null"]},
            "state": {"enum": ["active", "expired", "revoked"]},
            "revoked_minted": {
                "type": "integer",
                "description": "Revoke: keys minted from this one (at any depth) revoked with it.",
            },
            "cascade_complete": {
                "type": "boolean",
                "description": "Revoke: false when more minted keys remain than one revocation marks "
                "(SYSEVENTS_API_KEY_REVOKE_MAX); they are refused anyway; revoke again to mark them.",
            },
        },
    },
    "NewKey": {
        "allOf": [
            ref("Key"),
            {
                "type": "object",
                "properties": {"key": {**STR, "description": "The key itself: shown only in this response."}},
            },
        ]
    },
    "KeyList": {"type": "object", "properties": {"keys": {"type": "array", "items": ref("Key")}}},
    **PREVIEW_SCHEMAS,
}
ERRORS = {
    "400": "Invalid input; `error.field` names the field (`error.position`: line and column in a filter)",
    "401": "Missing, unknown, revoked or expired key, or one minted from a revoked key",
    "403": "Key of another account, a key without the route's scope, or not the operator key",
    "404": "No such route, account, key or job",
    "409": "Conflict: stale version, id already taken, or the account at its job limit",
    "413": "Request body too large",
    "422": "Template did not render, or filter did not compile (line and column in message and position), "
    "or a preview's range holds more than one preview may read",
}
