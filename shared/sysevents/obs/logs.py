"""Structured logs: one line per record, for Cloud Logging (JSON) or for a person (text).

Cloud Run and Cloud Functions (2nd gen) parse each JSON line a function writes to stdout into a log entry;
a few keys are special (https://cloud.google.com/logging/docs/structured-logging): `severity`, `message`,
`time`, `logging.googleapis.com/labels`, `logging.googleapis.com/trace`, `logging.googleapis.com/spanId`,
`logging.googleapis.com/trace_sampled` and `logging.googleapis.com/sourceLocation` become fields of the
entry, every other key stays in its `jsonPayload`. Ours is `sysevents`: a dict whose `kind` says what the
line is about (`delivery`, `ingest`, `quarantine`, ...). The log-based metrics in terraform/ count those
lines (docs/monitoring.md).

Trace context: one event is one trace. The W3C `traceparent` travels as the Pub/Sub message attribute
`traceparent` from the producer through ingest to every sink; each function sets it for the request it
handles (`set_trace`/`traced`), and every line logged meanwhile carries the trace and this hop's span.

Standard library only.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
import os
import re
import secrets
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

FORMAT_ENV = "SYSEVENTS_LOG_FORMAT"
FORMATS = ("json", "text")

LABELS = "logging.googleapis.com/labels"
TRACE = "logging.googleapis.com/trace"
SPAN_ID = "logging.googleapis.com/spanId"
TRACE_SAMPLED = "logging.googleapis.com/trace_sampled"
SOURCE_LOCATION = "logging.googleapis.com/sourceLocation"
PAYLOAD = "sysevents"
TRACEPARENT_ATTR = "traceparent"  # the Pub/Sub message attribute that carries the W3C trace context
FUNCTION_ENV = "SYSEVENTS_FUNCTION"  # which function this process is (Terraform and the local stack set it)

# The outcomes of one delivery (sysevents.delivery.envelope), as the metrics count them.
OUTCOMES = ("delivered", "accepted", "filtered", "retry", "dead_lettered", "waiting")
# Fields of event() lines that also become labels (so that Logs Explorer finds them by labels.<key>).
IDENTITY_LABELS = ("sink", "aid", "job_id", "event_id")
LABEL_MAX = 1024  # log-based metrics keep the first 1,024 characters of a label value

_RECORD_LABELS = "sysevents_labels"
_RECORD_TRACE = "sysevents_trace"


# -- W3C trace context (https://www.w3.org/TR/trace-context/#traceparent-header) ------------------------------
class TraceParent(NamedTuple):
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    flags: int  # trace-flags; bit 0: sampled


_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def parse_traceparent(value: object) -> TraceParent | None:
    """(trace id, span id, flags) of a version-00 traceparent, or None when it is not exactly one:
    `00-<32 hex>-<16 hex>-<2 hex>`, lowercase, trace and span ids not all zeros."""
    if not isinstance(value, str):
        return None
    m = _TRACEPARENT.fullmatch(value)
    if m is None or m[1] == _ZERO_TRACE or m[2] == _ZERO_SPAN:
        return None
    return TraceParent(m[1], m[2], int(m[3], 16))


def _format(trace_id: str, span_id: str, flags: int) -> str:
    return f"00-{trace_id}-{span_id}-{flags:02x}"


def _random_hex(nbytes: int) -> str:
    while True:
        value = secrets.token_hex(nbytes)
        if value.strip("0"):  # all zeros is invalid (probability 2**-64 or less, but never emit one)
            return value


def new_traceparent(sampled: bool = True) -> str:
    """A traceparent that starts a new trace: random trace and span ids."""
    return _format(_random_hex(16), _random_hex(8), 1 if sampled else 0)


def child_traceparent(parent: str | None) -> str:
    """The traceparent of a span under `parent`: same trace id and flags, a new span id.
    A missing or invalid parent starts a new trace."""
    parsed = parse_traceparent(parent)
    if parsed is None:
        return new_traceparent()
    return _format(parsed.trace_id, _random_hex(8), parsed.flags)


@dataclass(frozen=True)
class TraceContext:
    traceparent: str
    trace_id: str
    span_id: str
    sampled: bool
    project: str

    @property
    def trace(self) -> str:
        """The log entry's trace field: projects/<project>/traces/<trace id>."""
        return f"projects/{self.project}/traces/{self.trace_id}"


_current: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "sysevents_trace", default=None
)


def set_trace(traceparent: str | None, project: str, *, child: bool = True) -> contextvars.Token:
    """Set the trace context of the work at hand (one push request, one event) and return the token for
    `reset_trace`. With `child` (the default) this hop gets its own span under the incoming one, so
    `current_traceparent()` is what to put on the messages it publishes; a missing or invalid traceparent
    starts a new trace (the event had none yet). `child=False` keeps the given span (a valid traceparent
    is required then, else a new trace is started all the same)."""
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        parsed = parse_traceparent(new_traceparent())
    elif child:
        parsed = parsed._replace(span_id=_random_hex(8))
    assert parsed is not None
    value = _format(*parsed)
    return _current.set(TraceContext(value, parsed.trace_id, parsed.span_id, bool(parsed.flags & 1), project))


def reset_trace(token: contextvars.Token) -> None:
    """Restore the trace context that was current before `set_trace` returned `token`."""
    _current.reset(token)


def current_trace() -> TraceContext | None:
    return _current.get()


def current_traceparent() -> str | None:
    """This hop's traceparent (to send on with published messages), or None outside a trace."""
    ctx = _current.get()
    return ctx.traceparent if ctx else None


@contextlib.contextmanager
def traced(traceparent: str | None, project: str, *, child: bool = True) -> Iterator[TraceContext]:
    """`with traced(msg.attributes.get("traceparent"), project): ...`: set_trace, then reset_trace."""
    token = set_trace(traceparent, project, child=child)
    try:
        ctx = _current.get()
        assert ctx is not None
        yield ctx
    finally:
        reset_trace(token)


# -- formatters --------------------------------------------------------------------------------------------------
def _severity(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "CRITICAL"
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARNING"
    if levelno >= logging.INFO:
        return "INFO"
    if levelno >= logging.DEBUG:
        return "DEBUG"
    return "DEFAULT"


def _jsonable(value: Any) -> Any:
    """Plain JSON values only: non-finite floats and unknown objects become strings, keys strings."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


def _rfc3339(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _label(value: object) -> str:
    return str(value)[:LABEL_MAX]


def _record_trace(record: logging.LogRecord) -> TraceContext | None:
    return getattr(record, _RECORD_TRACE, None) or _current.get()


class TraceFilter(logging.Filter):
    """Stamps each record with the trace context current where it was logged (a handler filter, so the
    context is the caller's even if a formatter runs later)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _RECORD_TRACE, None) is None:
            setattr(record, _RECORD_TRACE, _current.get())
        return True


class JsonFormatter(logging.Formatter):
    """One Cloud Logging structured JSON object per record, on one line."""

    def __init__(self, function: str | None = None, *, source_location: bool = True):
        super().__init__()
        self.function = function
        self.source_location = source_location

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        severity = _severity(record.levelno)
        if record.exc_info:
            # The traceback in `message` is what Error Reporting reads; it needs severity ERROR or more.
            message = f"{message}\n{self.formatException(record.exc_info)}"
            if record.levelno < logging.ERROR:
                severity = "ERROR"
        elif record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if record.stack_info:
            message = f"{message}\n{self.formatStack(record.stack_info)}"
        entry: dict[str, Any] = {
            "severity": severity,
            "message": message,
            "time": _rfc3339(record.created),
            "logger": record.name,
        }
        labels = {"function": self.function} if self.function else {}
        labels.update(getattr(record, _RECORD_LABELS, None) or {})
        entry[LABELS] = {str(k): _label(v) for k, v in labels.items() if v is not None}
        ctx = _record_trace(record)
        if ctx is not None:
            entry[TRACE] = ctx.trace
            entry[SPAN_ID] = ctx.span_id
            entry[TRACE_SAMPLED] = ctx.sampled
        if self.source_location:
            entry[SOURCE_LOCATION] = {
                "file": record.pathname,
                "line": str(record.lineno),
                "function": record.funcName,
            }
        payload = getattr(record, PAYLOAD, None)
        if isinstance(payload, Mapping):
            entry[PAYLOAD] = _jsonable(payload)
        return json.dumps(entry, ensure_ascii=True, separators=(",", ":"), default=str)


class TextFormatter(logging.Formatter):
    """A line a person reads (`make dev`): time, level, function, logger, message, and the trace's first
    digits."""

    def __init__(self, function: str | None = None):
        where = f"[{function.replace('%', '%%')}] " if function else ""
        super().__init__(f"%(asctime)s %(levelname)s {where}%(name)s: %(message)s", "%H:%M:%S")
        self.function = function

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ctx = _record_trace(record)
        if ctx is None:
            return line
        first, sep, rest = line.partition("\n")  # the trace goes on the first line, before a traceback
        return f"{first} [trace {ctx.trace_id[:8]}]{sep}{rest}"


# -- setup -------------------------------------------------------------------------------------------------------
class _Handler(logging.StreamHandler):
    """Ours, so configure() finds and replaces it."""


def default_format() -> str:
    """SYSEVENTS_LOG_FORMAT if set; else json on Cloud Run / Cloud Functions (K_SERVICE is set), else text."""
    fmt = os.environ.get(FORMAT_ENV, "").strip().lower()
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(f"{FORMAT_ENV} must be one of {', '.join(FORMATS)}, not {fmt!r}")
        return fmt
    return "json" if os.environ.get("K_SERVICE") else "text"


def formatter(function: str, fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter(function)
    if fmt == "text":
        return TextFormatter(function)
    raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")


def function_name() -> str:
    """This process's function: SYSEVENTS_FUNCTION, else Cloud Run's K_SERVICE, else "sysevents"."""
    return os.environ.get(FUNCTION_ENV) or os.environ.get("K_SERVICE") or "sysevents"


def configure(function: str, *, fmt: str | None = None) -> None:
    """Set up root logging for one function instance: one handler on stdout, level INFO, JSON or text.

    Idempotent: a second call replaces the handler of the first (same settings: nothing changes). Console
    handlers `logging.basicConfig` installed are removed (they would print every line twice); other
    handlers (a test's capture handler, for one) are kept."""
    fmt = (fmt or default_format()).lower()
    new_formatter = formatter(function, fmt)
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, _Handler):
            if getattr(h, "sysevents_settings", None) == (function, fmt):
                root.setLevel(logging.INFO)
                return
            root.removeHandler(h)
        elif type(h) is logging.StreamHandler and getattr(h, "stream", None) in (sys.stderr, sys.stdout):
            root.removeHandler(h)
    handler = _Handler(sys.stdout)
    handler.sysevents_settings = (function, fmt)  # type: ignore[attr-defined]
    handler.setFormatter(new_formatter)
    handler.addFilter(TraceFilter())
    root.addHandler(handler)
    root.setLevel(logging.INFO)


# -- structured lines ----------------------------------------------------------------------------------------------
def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _outcome_message(
    sink: str,
    outcome: str,
    aid: str | None,
    job_id: str | None,
    event_id: str | None,
    attempt: int | None,
    reason: str | None,
    status: int | None,
    latency_ms: float | None,
    delay_s: float | None,
) -> str:
    what = f"event {event_id}" if event_id is not None else "a message"
    job = f"job {aid}/{job_id}" if job_id is not None else "no job"
    verb = {
        "delivered": f"delivered {what} to {job}",
        "accepted": f"accepted {what} for {job}",
        "filtered": f"filtered {what} for {job}",
        "retry": f"will retry {what} to {job}",
        "dead_lettered": f"dead-lettered {what} for {job}",
        "waiting": f"holding {what} for {job}",
    }[outcome]
    details = []
    if attempt is not None:
        details.append(f"attempt {attempt}")
    if status is not None:
        details.append(f"HTTP {status}")
    if latency_ms is not None:
        details.append(f"{latency_ms:.0f} ms")
    if delay_s is not None:
        details.append(f"retry in {delay_s:g} s")
    line = f"{sink}: {verb}"
    if details:
        line += f" ({', '.join(details)})"
    if reason and outcome != "delivered":
        line += f": {reason}"
    return line


def outcome(
    logger: logging.Logger,
    *,
    sink: str,
    outcome: str,
    aid: str | None,
    job_id: str | None,
    event_id: str | None,
    attempt: int | None,
    reason: str | None,
    status: int | None = None,
    latency_ms: float | None = None,
    workflow: str | None = None,
    delay_s: float | None = None,
    level: int | None = None,
) -> None:
    """Log exactly one line for one delivery outcome (kind "delivery"), the line the delivery metrics
    count. Labels: function, sink, outcome, aid, job_id, event_id. Severity INFO, dead_lettered WARNING
    (or `level`). `delay_s`: when the retry is scheduled (outcome retry)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown delivery outcome {outcome!r} (one of {', '.join(OUTCOMES)})")
    if latency_ms is not None:
        latency_ms = round(float(latency_ms), 1)
    payload = _drop_none(
        {
            "kind": "delivery",
            "sink": sink,
            "outcome": outcome,
            "aid": aid,
            "job_id": job_id,
            "event_id": event_id,
            "attempt": attempt,
            "status": status,
            "latency_ms": latency_ms,
            "workflow": workflow,
            "delay_s": delay_s,
            "reason": reason,
        }
    )
    labels = _drop_none(
        {"sink": sink, "outcome": outcome, "aid": aid, "job_id": job_id, "event_id": event_id}
    )
    if level is None:
        level = logging.WARNING if outcome == "dead_lettered" else logging.INFO
    message = _outcome_message(
        sink, outcome, aid, job_id, event_id, attempt, reason, status, latency_ms, delay_s
    )
    logger.log(level, "%s", message, extra={PAYLOAD: payload, _RECORD_LABELS: labels}, stacklevel=2)


def event(
    logger: logging.Logger, kind: str, message: str, *, level: int = logging.INFO, **fields: Any
) -> None:
    """Log one structured line of another kind: payload {"kind": kind, **fields} (None values left out),
    e.g. event(log, "ingest", "...", aid="12", event_id="e-1", matched=3) or
    event(log, "quarantine", "...", reason="...", aid=None). sink, aid, job_id and event_id, when given,
    are labels too."""
    payload = _drop_none({"kind": kind, **fields})
    labels = {k: payload[k] for k in IDENTITY_LABELS if k in payload}
    logger.log(level, "%s", message, extra={PAYLOAD: payload, _RECORD_LABELS: labels}, stacklevel=2)
