"""System events: the model, its CloudEvents 1.0 wire format, and validation with clear errors."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sysevents.events.strictjson import InvalidJSON, TooDeep, check, json_type, loads, plain, show

MAX_EVENT_BYTES = 64 * 1024
"""Largest accepted serialized event. Pub/Sub allows 10 MB; audit events are small, so keep them so."""

MAX_ID_CHARS = 256
CLOUDEVENT_TYPE_PREFIX = "com.sysevents"

MAX_DEPTH = 32
"""Deepest accepted nesting of objects and arrays, counted in the whole CloudEvents envelope: the envelope
is level 1 and `data` level 2, so `data` may hold 30 more levels. A flat event's fields become `data`, so a
flat event may be nested at most MAX_DEPTH - 1 levels. Far below what the JSON parser and the serializers
manage (deeper input made them fail: RecursionError, "Maximum serialization depth exceeded")."""


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


class InvalidEvent(InvalidJSON):
    """An event that cannot be accepted; `reason` says why in one line a user can act on."""


def parse_subject_type(value: Any, field: str = "subject_type") -> SubjectType:
    if isinstance(value, SubjectType):
        return value
    if isinstance(value, str):
        try:
            return SubjectType(value.strip().lower())
        except ValueError:
            pass
        raise ValueError(f"unknown {field} {show(value)}; valid values: {', '.join(SUBJECT_TYPES)}")
    raise ValueError(
        f"{field} must be a string, got {json_type(value)}; valid values: {', '.join(SUBJECT_TYPES)}"
    )


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
            f"unknown {field} {show(value)}; valid values: {', '.join(VERBS)} ('update' is read as 'updated')"
        )
    raise ValueError(f"{field} must be a string, got {json_type(value)}; valid values: {', '.join(VERBS)}")


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
        v = v if v.tzinfo else v.replace(tzinfo=UTC)
        try:
            v.astimezone(UTC)  # what the audit log stores; BigQuery TIMESTAMPs have the same range
        except OverflowError:
            raise ValueError(
                f"{v.isoformat()} is out of range; times must lie between 0001-01-01 and 9999-12-31 UTC"
            ) from None
        return v

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


MAX_ORDERING_KEY_BYTES = 512
"""Pub/Sub takes ordering keys up to 1,024 bytes; longer keys are hashed to stay well inside it."""


def ordering_key(*parts: str) -> str:
    """A Pub/Sub ordering key of these parts ('/'-joined), hashed (SHA-256, hex) when it would be long: ids
    of 256 characters of 4-byte UTF-8 must not make a publish fail."""
    key = "/".join(parts)
    if len(key.encode()) <= MAX_ORDERING_KEY_BYTES:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def event_ordering_key(event: SystemEvent) -> str:
    """The ordering key producers publish an event with when its subject's events must stay in order all the
    way (the ingest subscription is ordering-enabled): one key per account and subject."""
    return ordering_key(event.aid, event.subject_id)


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
            msg = msg[len("Value error, ") :]  # ours: already in JSON terms, and may quote the input
        else:
            msg = plain(msg)
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def _depth_reason(depth: int) -> str:
    return (
        f"event is nested {depth} levels deep; the limit is {MAX_DEPTH} "
        f"({MAX_DEPTH - 1} for a flat event, whose fields become the CloudEvents data)"
    )


def _load_event_json(raw: bytes) -> Any:
    try:
        return loads(raw, what="event", max_depth=MAX_DEPTH)
    except TooDeep as err:
        raise InvalidEvent(_depth_reason(err.depth)) from None
    except InvalidJSON as err:
        raise InvalidEvent(err.reason) from None


_TIME_EXAMPLE = "an RFC 3339 timestamp such as 2026-01-02T03:04:05Z"


def _validate(
    doc: Any, fallback_id: str | None, fallback_time: str | None = None
) -> tuple[SystemEvent, bytes]:
    """The event `doc` describes and its canonical wire form (SystemEvent.to_json)."""
    if not isinstance(doc, dict):
        raise InvalidEvent(f"event must be a JSON object, got {json_type(doc)}")
    flat = "specversion" not in doc and "data" not in doc
    if flat:
        data = {k: v for k, v in doc.items() if k not in ("id", "time")}
    else:
        if "specversion" in doc:
            version = doc["specversion"]
            if not isinstance(version, str):
                raise InvalidEvent(f"specversion: must be the string '1.0', got {json_type(version)}")
            if version != "1.0":
                raise InvalidEvent(f"specversion: unsupported {show(version)}; expected '1.0'")
        data = doc.get("data")
        if not isinstance(data, dict):
            raise InvalidEvent(
                "data: must be a JSON object carrying aid, subject_type, subject_id and verb, "
                f"got {json_type(data)}"
            )
    # A null free-form field is the same as none: to_cloudevent leaves nulls out, so keep them out here too.
    data = {k: v for k, v in data.items() if v is not None or k in EventData.model_fields}
    event_id = doc.get("id")
    if event_id is None or event_id == "":
        event_id = fallback_id
    time = doc.get("time")
    if time is None or time == "":
        time = fallback_time or _utcnow()
    fields = {"id": event_id, "time": time, "data": data}
    try:
        depth = check(fields)
    except InvalidJSON as err:
        raise InvalidEvent(err.reason) from None
    if depth > MAX_DEPTH:
        raise InvalidEvent(_depth_reason(depth - 1 if flat else depth))
    if event_id is None or event_id == "":
        raise InvalidEvent("id: missing; events need a stable unique id")
    if not isinstance(event_id, str):
        raise InvalidEvent(f"id: must be a string, got {json_type(event_id)}")
    if not isinstance(time, str | datetime):
        raise InvalidEvent(f"time: must be a string ({_TIME_EXAMPLE}), got {json_type(time)}")
    try:
        event = SystemEvent.model_validate(fields)
    except ValidationError as err:
        raise InvalidEvent(_describe(err)) from None
    try:
        body = event.to_json()
    except (ValueError, TypeError, RecursionError) as err:  # not expected after _check; never a crash later
        raise InvalidEvent(f"event cannot be written as JSON: {plain(str(err))}") from None
    return event, body


def event_from_dict(doc: Any, *, fallback_id: str | None = None) -> SystemEvent:
    """Read an event from a CloudEvents envelope, or from a flat producer dict
    (`{"aid", "subject_type", "subject_id", "verb", ...}`): producers may send either.

    A flat event without `id` takes `fallback_id` (the Pub/Sub message id, stable across redeliveries).
    An accepted event can always be written back (`to_json`, `to_cloudevent`) as UTF-8 JSON.
    """
    return _validate(doc, fallback_id)[0]


def event_from_bytes(
    raw: bytes,
    *,
    fallback_id: str | None = None,
    fallback_time: str | None = None,
    max_bytes: int = MAX_EVENT_BYTES,
) -> SystemEvent:
    """Validate raw bytes off the wire: UTF-8 JSON, at most `max_bytes` (as sent and as a CloudEvent) and
    MAX_DEPTH levels deep. Raises InvalidEvent with a one-line reason naming the field; nothing else."""
    if len(raw) > max_bytes:
        raise InvalidEvent(f"event is {len(raw)} bytes; the limit is {max_bytes} bytes")
    event, body = _validate(_load_event_json(raw), fallback_id, fallback_time)
    if len(body) > max_bytes:
        # A flat event grows when wrapped in its envelope; refuse it now rather than wherever it is re-read.
        raise InvalidEvent(
            f"event is {len(body)} bytes once written as a CloudEvent; the limit is {max_bytes} bytes"
        )
    return event
