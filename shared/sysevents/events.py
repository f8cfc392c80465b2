"""System events: the model, its CloudEvents 1.0 wire format, and validation with clear errors."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_EVENT_BYTES = 64 * 1024
"""Largest accepted serialized event. Pub/Sub allows 10 MB; audit events are small, so keep them so."""

MAX_ID_CHARS = 256
CLOUDEVENT_TYPE_PREFIX = "com.sysevents"

MAX_DEPTH = 32
"""Deepest accepted nesting of objects and arrays, counted in the whole CloudEvents envelope: the envelope
is level 1 and `data` level 2, so `data` may hold 30 more levels. A flat event's fields become `data`, so a
flat event may be nested at most MAX_DEPTH - 1 levels. Far below what the JSON parser and the serializers
manage (deeper input made them fail: RecursionError, "Maximum serialization depth exceeded")."""

MAX_REASON_BYTES = 1000
"""Longest reason (UTF-8): it travels as a Pub/Sub attribute, whose values may be at most 1024 bytes."""


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
        reason = " ".join(reason.splitlines()).encode("utf-8", "backslashreplace")
        if len(reason) > MAX_REASON_BYTES:
            reason = reason[: MAX_REASON_BYTES - 3] + b"..."
        reason = reason.decode("utf-8", "ignore")
        super().__init__(reason)
        self.reason = reason


_JSON_TYPES = {
    "NoneType": "null",
    "bool": "boolean",
    "int": "number",
    "float": "number",
    "str": "string",
    "dict": "object",
    "list": "array",
    "tuple": "array",
}
_PY_TYPE_WORD = re.compile(
    r"\b(got|got an?|type|valid) (NoneType|bool|int|float|str|dict|dictionary|list|tuple)\b"
)
"""A Python type name where a message names a value's type ("got NoneType", "a valid dictionary")."""


def _json_type(value: Any) -> str:
    """The JSON name of a value's type (object, array, string, number, boolean, null)."""
    if isinstance(value, _Unrepresentable):
        return "number"
    name = type(value).__name__
    for base in (bool, int, float, str, dict, list, tuple):  # subclasses (enums, ...) too
        if isinstance(value, base):
            name = base.__name__
            break
    return _JSON_TYPES.get(name, name)


def _plain(msg: str) -> str:
    """A message with Python type names replaced by JSON ones ("got NoneType" -> "got null")."""
    return _PY_TYPE_WORD.sub(lambda m: f"{m.group(1)} {_JSON_TYPES.get(m.group(2), 'object')}", msg)


def _show(value: Any, limit: int = 40) -> str:
    """A value quoted in a reason: short, one line, and never a Python type name."""
    if isinstance(value, str):
        text = repr(value[:limit])
        return text if len(value) <= limit else f"{text[:-1]}...{text[-1]}"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int) and value.bit_length() > 128:
        return "(a long number)"  # str() of a very long int raises
    if isinstance(value, int | float | _Unrepresentable):
        return repr(value)[:limit]
    return f"(an {_json_type(value)})" if _json_type(value)[0] in "aeiou" else f"(a {_json_type(value)})"


def parse_subject_type(value: Any, field: str = "subject_type") -> SubjectType:
    if isinstance(value, SubjectType):
        return value
    if isinstance(value, str):
        try:
            return SubjectType(value.strip().lower())
        except ValueError:
            pass
        raise ValueError(f"unknown {field} {_show(value)}; valid values: {', '.join(SUBJECT_TYPES)}")
    raise ValueError(
        f"{field} must be a string, got {_json_type(value)}; valid values: {', '.join(SUBJECT_TYPES)}"
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
            f"unknown {field} {_show(value)}; valid values: {', '.join(VERBS)} "
            "('update' is read as 'updated')"
        )
    raise ValueError(f"{field} must be a string, got {_json_type(value)}; valid values: {', '.join(VERBS)}")


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
            msg = _plain(msg)
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


# -- reading JSON text -------------------------------------------------------------------------------------
class _Unrepresentable:
    """Stands in for a number the parser read but that cannot be kept (NaN, 1e400, a 5000-digit integer),
    so the check that follows can name the field holding it."""

    __slots__ = ("problem", "text")

    def __init__(self, text: str, problem: str):
        self.text, self.problem = text, problem

    def __repr__(self) -> str:
        return _short_number(self.text)


def _short_number(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:20]}..."


def _parse_constant(name: str) -> _Unrepresentable:
    return _Unrepresentable(name, f"{name} is not allowed: JSON numbers must be finite")


def _parse_float(text: str) -> float | _Unrepresentable:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        return _Unrepresentable(text, f"number {_short_number(text)} is out of range")
    return value


def _parse_int(text: str) -> int | _Unrepresentable:
    limit = sys.get_int_max_str_digits()
    digits = len(text) - text.startswith("-")
    if limit and digits > limit:
        return _Unrepresentable(text, f"number has {digits} digits; the limit is {limit}")
    return int(text)


_OUTSIDE_STRING = re.compile(r'["\[\]{}]')
_INSIDE_STRING = re.compile(r'["\\]')


def _depth_of_text(text: str) -> int:
    """How deeply objects and arrays nest in JSON text, counted without parsing (so without recursion) in
    one pass. Brackets in strings do not count. On text the parser accepts this is the parser's depth; on
    other text it is never less than the depth the parser reaches before it gives up."""
    depth = deepest = pos = 0
    while m := _OUTSIDE_STRING.search(text, pos):
        c, pos = m.group(), m.end()
        if c == '"':
            while m := _INSIDE_STRING.search(text, pos):
                pos = m.end()
                if m.group() == '"':
                    break
                pos += 1  # the escaped character
            else:
                return deepest  # unterminated string: the parser stops there too
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _depth_reason(depth: int) -> str:
    return (
        f"event is nested {depth} levels deep; the limit is {MAX_DEPTH} "
        f"({MAX_DEPTH - 1} for a flat event, whose fields become the CloudEvents data)"
    )


def _load_json(
    raw: bytes | bytearray | memoryview | str, *, what: str = "event", max_depth: int = MAX_DEPTH
) -> Any:
    """Parse UTF-8 JSON text strictly; raises InvalidEvent with a one-line reason.

    Refused: empty input, a byte order mark, NUL bytes, bytes that are not UTF-8 (json.loads would also
    take UTF-16 and UTF-32, and UTF-8-encoded surrogates), nesting deeper than `max_depth`. NaN, Infinity
    and numbers out of range come back as _Unrepresentable, for _check to name their field."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")  # surrogates then fail the UTF-8 check below
    raw = bytes(raw)
    if not raw.strip():
        raise InvalidEvent(f"{what} is empty; expected a JSON object")
    if raw.startswith((b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe")):
        raise InvalidEvent(f"{what} starts with a byte order mark (BOM); send UTF-8 JSON without one")
    if b"\x00" in raw:  # never in JSON text (escaped as \u0000 in strings); json.loads takes UTF-16 and -32
        raise InvalidEvent(f"{what} contains NUL bytes (UTF-16 or UTF-32 text?); send UTF-8 JSON")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidEvent(
            f"{what} is not valid UTF-8 text: "
            f"byte 0x{raw[err.start]:02x} at offset {err.start} ({err.reason})"
        ) from None
    if text.count("[") + text.count("{") > max_depth and (depth := _depth_of_text(text)) > max_depth:
        reason = f"{what} is nested {depth} levels deep; the limit is {max_depth}"
        raise InvalidEvent(_depth_reason(depth) if what == "event" else reason)
    try:
        return json.loads(
            text, parse_constant=_parse_constant, parse_float=_parse_float, parse_int=_parse_int
        )
    except json.JSONDecodeError as err:
        raise InvalidEvent(f"{what} is not valid JSON: {err}") from None
    except (ValueError, RecursionError) as err:  # not expected after the checks above
        raise InvalidEvent(f"{what} is not valid JSON: {_plain(str(err))}") from None


_SURROGATE = re.compile("[\ud800-\udfff]")
_UNPAIRED = "contains an unpaired surrogate (not valid Unicode text)"


def _path(parts: tuple[Any, ...]) -> str:
    return ".".join(p if isinstance(p, str) and len(p) <= 40 else _show(p) for p in parts)


def _check(fields: dict[str, Any]) -> int:
    """Refuse what could not be written back as UTF-8 JSON: unpaired surrogates (in keys too), NaN,
    Infinity and numbers out of range. Returns the nesting depth of `fields`. No recursion."""
    deepest = 0
    stack: list[tuple[Any, tuple[Any, ...], int]] = [(fields, (), 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise InvalidEvent(f"{_path(path)}: {_UNPAIRED}")
        elif isinstance(value, _Unrepresentable):
            raise InvalidEvent(f"{_path(path)}: {value.problem}")
        elif isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise InvalidEvent(f"{_path(path)}: {value} is not allowed: JSON numbers must be finite")
        elif isinstance(value, dict):
            deepest = max(deepest, depth + 1)
            for k, v in value.items():
                if isinstance(k, str) and _SURROGATE.search(k):
                    where = _path(path) or "event"
                    raise InvalidEvent(f"{where}: key {_show(k)} {_UNPAIRED}")
                stack.append((v, (*path, k), depth + 1))
        elif isinstance(value, list | tuple):
            deepest = max(deepest, depth + 1)
            stack.extend((v, (*path, i), depth + 1) for i, v in enumerate(value))
    return deepest


_TIME_EXAMPLE = "an RFC 3339 timestamp such as 2026-01-02T03:04:05Z"


def _validate(doc: Any, fallback_id: str | None) -> tuple[SystemEvent, bytes]:
    """The event `doc` describes and its canonical wire form (SystemEvent.to_json)."""
    if not isinstance(doc, dict):
        raise InvalidEvent(f"event must be a JSON object, got {_json_type(doc)}")
    flat = "specversion" not in doc and "data" not in doc
    if flat:
        data = {k: v for k, v in doc.items() if k not in ("id", "time")}
    else:
        if "specversion" in doc:
            version = doc["specversion"]
            if not isinstance(version, str):
                raise InvalidEvent(f"specversion: must be the string '1.0', got {_json_type(version)}")
            if version != "1.0":
                raise InvalidEvent(f"specversion: unsupported {_show(version)}; expected '1.0'")
        data = doc.get("data")
        if not isinstance(data, dict):
            raise InvalidEvent(
                "data: must be a JSON object carrying aid, subject_type, subject_id and verb, "
                f"got {_json_type(data)}"
            )
    # A null free-form field is the same as none: to_cloudevent leaves nulls out, so keep them out here too.
    data = {k: v for k, v in data.items() if v is not None or k in EventData.model_fields}
    event_id = doc.get("id")
    if event_id is None or event_id == "":
        event_id = fallback_id
    time = doc.get("time")
    if time is None or time == "":
        time = _utcnow()
    fields = {"id": event_id, "time": time, "data": data}
    depth = _check(fields)
    if depth > MAX_DEPTH:
        raise InvalidEvent(_depth_reason(depth - 1 if flat else depth))
    if event_id is None or event_id == "":
        raise InvalidEvent("id: missing; events need a stable unique id")
    if not isinstance(event_id, str):
        raise InvalidEvent(f"id: must be a string, got {_json_type(event_id)}")
    if not isinstance(time, str | datetime):
        raise InvalidEvent(f"time: must be a string ({_TIME_EXAMPLE}), got {_json_type(time)}")
    try:
        event = SystemEvent.model_validate(fields)
    except ValidationError as err:
        raise InvalidEvent(_describe(err)) from None
    try:
        body = event.to_json()
    except (ValueError, TypeError, RecursionError) as err:  # not expected after _check; never a crash later
        raise InvalidEvent(f"event cannot be written as JSON: {_plain(str(err))}") from None
    return event, body


def event_from_dict(doc: Any, *, fallback_id: str | None = None) -> SystemEvent:
    """Read an event from a CloudEvents envelope, or from a flat producer dict
    (`{"aid", "subject_type", "subject_id", "verb", ...}`): producers may send either.

    A flat event without `id` takes `fallback_id` (the Pub/Sub message id, stable across redeliveries).
    An accepted event can always be written back (`to_json`, `to_cloudevent`) as UTF-8 JSON.
    """
    return _validate(doc, fallback_id)[0]


def event_from_bytes(
    raw: bytes, *, fallback_id: str | None = None, max_bytes: int = MAX_EVENT_BYTES
) -> SystemEvent:
    """Validate raw bytes off the wire: UTF-8 JSON, at most `max_bytes` (as sent and as a CloudEvent) and
    MAX_DEPTH levels deep. Raises InvalidEvent with a one-line reason naming the field; nothing else."""
    if len(raw) > max_bytes:
        raise InvalidEvent(f"event is {len(raw)} bytes; the limit is {max_bytes} bytes")
    event, body = _validate(_load_json(raw), fallback_id)
    if len(body) > max_bytes:
        # A flat event grows when wrapped in its envelope; refuse it now rather than wherever it is re-read.
        raise InvalidEvent(
            f"event is {len(body)} bytes once written as a CloudEvent; the limit is {max_bytes} bytes"
        )
    return event


plain_types = _plain
"""Say JSON type names (object, array, string, number, boolean, null) where Python's would show."""


def load_json(raw: bytes | str, *, what: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a JSON document strictly, as events are (UTF-8, no BOM, at most `max_depth` levels, finite
    numbers in range, no unpaired surrogates in keys or values); raises InvalidEvent naming the field."""
    doc = _load_json(raw, what=what, max_depth=max_depth)
    _check(doc if isinstance(doc, dict) else {"": doc})
    return doc
