"""System events: the model, its CloudEvents 1.0 wire format, and validation with clear errors."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_EVENT_BYTES = 64 * 1024
"""Largest accepted serialized event. Pub/Sub allows 10 MB; audit events are small, so keep them so."""

MAX_ID_CHARS = 256
CLOUDEVENT_TYPE_PREFIX = "com.sysevents"


class SubjectType(StrEnum):
    ACCOUNT = "account"
    AUTH = "auth"
    USER = "user"
    CAMPAIGN = "campaign"
    DATA = "data"
    ENTITY = "entity"
    EXPERIENCE = "experience"
    JOURNEY = "journey"
    PROGRAM = "program"
    PROVIDER = "provider"
    QUERY = "query"
    REPORT = "report"
    ROLLUP = "rollup"
    SCHEMA = "schema"
    SCHEMATABLE = "schematable"
    SCORING = "scoring"
    SEGMENT = "segment"
    SEGMENTCOLLECTION = "segmentcollection"
    SEGMENTML = "segmentml"
    STREAM = "stream"
    SUBSCRIPTION = "subscription"
    TOPIC_DOCUMENT = "topic-document"
    VARIATION = "variation"
    WORK = "work"
    WORKFLOW = "workflow"


class Verb(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    STARTED = "started"
    SYNCING = "syncing"
    SYNCED = "synced"
    SYNCCOMPLETE = "synccomplete"
    COMPLETED = "completed"
    FAILED = "failed"


VERB_ALIASES = {"update": Verb.UPDATED}
SUBJECT_TYPES = tuple(s.value for s in SubjectType)
VERBS = tuple(v.value for v in Verb)


class InvalidEvent(ValueError):
    """An event that cannot be accepted; `reason` says why in one line a user can act on."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def parse_subject_type(value: Any, field: str = "subject_type") -> SubjectType:
    if isinstance(value, SubjectType):
        return value
    if isinstance(value, str):
        try:
            return SubjectType(value.strip().lower())
        except ValueError:
            pass
    raise ValueError(f"unknown {field} {value!r}; valid values: {', '.join(SUBJECT_TYPES)}")


def parse_verb(value: Any, field: str = "verb") -> Verb:
    if isinstance(value, Verb):
        return value
    if isinstance(value, str):
        v = value.strip().lower()
        if v in VERB_ALIASES:
            return VERB_ALIASES[v]
        try:
            return Verb(v)
        except ValueError:
            pass
    raise ValueError(
        f"unknown {field} {value!r}; valid values: {', '.join(VERBS)} ('update' is read as 'updated')"
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EventData(BaseModel):
    """What happened: the event's `data`. Free-form fields (`notes`, ...) are kept as given."""

    model_config = ConfigDict(extra="allow", frozen=True)

    aid: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    subject_type: SubjectType
    subject_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    verb: Verb
    actor: str | None = Field(default=None, max_length=MAX_ID_CHARS)

    @field_validator("aid", "subject_id", mode="before")
    @classmethod
    def _id_as_text(cls, v: Any) -> Any:
        # Account and subject ids are often numeric upstream; keep them as text.
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        return v

    @field_validator("subject_type", mode="before")
    @classmethod
    def _subject_type(cls, v: Any) -> SubjectType:
        return parse_subject_type(v)

    @field_validator("verb", mode="before")
    @classmethod
    def _verb(cls, v: Any) -> Verb:
        return parse_verb(v)


class SystemEvent(BaseModel):
    """One system event. `id` is stable and unique: redeliveries of the same event share it."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    time: datetime
    data: EventData

    @field_validator("time")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v if v.tzinfo else v.replace(tzinfo=UTC)

    @property
    def aid(self) -> str:
        return self.data.aid

    @property
    def subject_type(self) -> SubjectType:
        return self.data.subject_type

    @property
    def subject_id(self) -> str:
        return self.data.subject_id

    @property
    def verb(self) -> Verb:
        return self.data.verb

    def to_cloudevent(self) -> dict[str, Any]:
        """The CloudEvents 1.0 JSON envelope: what travels on Pub/Sub and what templates see as `event`."""
        return {
            "specversion": "1.0",
            "id": self.id,
            "source": f"//sysevents/accounts/{self.aid}",
            "type": f"{CLOUDEVENT_TYPE_PREFIX}.{self.subject_type.value}.{self.verb.value}",
            "subject": f"{self.subject_type.value}/{self.subject_id}",
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": self.data.model_dump(mode="json", exclude_none=True),
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_cloudevent(), separators=(",", ":"), ensure_ascii=False).encode()


def new_event(
    aid: str,
    subject_type: str,
    subject_id: str,
    verb: str,
    *,
    actor: str | None = None,
    time: datetime | None = None,
    event_id: str | None = None,
    **extra: Any,
) -> SystemEvent:
    """Build a valid event (raises InvalidEvent), e.g. for `sysevents publish` and lifecycle events."""
    return event_from_dict(
        {
            "id": event_id or str(uuid.uuid4()),
            "time": (time or _utcnow()).isoformat(),
            "data": {
                "aid": aid,
                "subject_type": subject_type,
                "subject_id": subject_id,
                "verb": verb,
                "actor": actor,
                **extra,
            },
        }
    )


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"]) or "event"
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def event_from_dict(doc: Any, *, fallback_id: str | None = None) -> SystemEvent:
    """Read an event from a CloudEvents envelope, or from a flat producer dict
    (`{"aid", "subject_type", "subject_id", "verb", ...}`): producers may send either.

    A flat event without `id` takes `fallback_id` (the Pub/Sub message id, stable across redeliveries).
    """
    if not isinstance(doc, dict):
        raise InvalidEvent(f"event must be a JSON object, got {type(doc).__name__}")
    if "specversion" in doc or "data" in doc:
        if "specversion" in doc and doc["specversion"] != "1.0":
            raise InvalidEvent(f"specversion: unsupported {doc['specversion']!r}; expected '1.0'")
        data = doc.get("data")
        if not isinstance(data, dict):
            raise InvalidEvent("data: must be a JSON object carrying aid, subject_type, subject_id and verb")
        fields = {"id": doc.get("id") or fallback_id, "time": doc.get("time") or _utcnow(), "data": data}
    else:
        data = {k: v for k, v in doc.items() if k not in ("id", "time")}
        fields = {"id": doc.get("id") or fallback_id, "time": doc.get("time") or _utcnow(), "data": data}
    if not fields["id"]:
        raise InvalidEvent("id: missing; events need a stable unique id")
    try:
        return SystemEvent.model_validate(fields)
    except ValidationError as err:
        raise InvalidEvent(_describe(err)) from None


def event_from_bytes(
    raw: bytes, *, fallback_id: str | None = None, max_bytes: int = MAX_EVENT_BYTES
) -> SystemEvent:
    """Validate raw bytes off the wire; raises InvalidEvent with a reason naming the field."""
    if len(raw) > max_bytes:
        raise InvalidEvent(f"event is {len(raw)} bytes; the limit is {max_bytes} bytes")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidEvent(f"event is not valid JSON: {err}") from None
    return event_from_dict(doc, fallback_id=fallback_id)


_JSON_TYPES = {"NoneType": "null", "dict": "object", "list": "array", "tuple": "array", "str": "string",
               "int": "number", "float": "number", "bool": "boolean", "bytes": "bytes"}  # fmt: skip


def plain_types(text: str) -> str:
    """Say JSON type names (object, array, string, number, boolean, null) where Python's would show."""
    import re

    return re.sub(
        r"\b(got|got an?|type) (NoneType|dict|list|tuple|str|int|float|bool)\b",
        lambda m: f"{m.group(1)} {_JSON_TYPES[m.group(2)]}",
        text,
    )
