"""The names of alert state: what each document is keyed by (hashes of the job's key and what it is about),
and the event as it is kept while it waits."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sysevents.jobs.model import Job

OVERFLOW = "__rate_limited__"
MAX_FIELD_CHARS = 1000
MAX_FIELDS = 40


def hash_of(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def _trim(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_FIELD_CHARS else value[: MAX_FIELD_CHARS - 3] + "..."
    if value is None or isinstance(value, bool | int | float):
        return value
    return _trim(json.dumps(value, ensure_ascii=False, default=str))


def summary(ce: dict[str, Any]) -> dict[str, Any]:
    """The event as kept while pending: the envelope, data fields clipped, so it fits a Firestore document."""
    data = dict(list((ce.get("data") or {}).items())[:MAX_FIELDS])
    return {**ce, "data": {k: _trim(v) for k, v in data.items()}}


def group_id_of(job: Job, key: dict[str, str]) -> str:
    return hash_of(job.key, json.dumps(key, sort_keys=True))


def overflow_id(job: Job) -> str:
    return hash_of(job.key, OVERFLOW)


def subject_of(ce: dict[str, Any]) -> str:
    d = ce.get("data") or {}
    return f"{d.get('subject_type')}/{d.get('subject_id')}"
