"""Content filters: CEL expressions over one event, compiled once and bounded in cost.

A filter is compiled (parsed, type-checked, its shape checked against the limits below) once per text and
cached; evaluating it never raises: a missing field, a type mismatch or any other evaluation error is "no
match". The cost of one evaluation is bounded by what compiling refuses (size, depth, loops, string
concatenation, regexes that RE2 refuses) and by the runtime itself (RE2 matches in linear time; the runtime
stops a loop after its iteration budget and calls that an error, so "no match").
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Annotated, Any

from cel_expr_python import cel
from pydantic import AfterValidator

from sysevents.events.model import SystemEvent
from sysevents.filters.shape import Shape, shape_of

MAX_FILTER_CHARS = 2000
"""Longest filter expression, in characters."""
MAX_FILTER_NODES = 300
"""Most nodes of a filter's checked syntax tree (a name, a literal, a call, a field selection: one each)."""
MAX_FILTER_DEPTH = 40
"""Deepest nesting of a filter's checked syntax tree (the parser itself refuses more than 32 levels of
parentheses, calls or operators)."""
MAX_FILTER_LOOPS = 4
"""Most list/map macros (`exists`, `all`, `exists_one`, `map`, `filter`) in one filter; none may sit in
another's body, and a body may use only its own variables."""
MAX_FILTER_CONCATS = 4
"""Most `+` of strings, bytes or lists in one filter (each copies its operands)."""
MAX_EXCLUDES = 50
"""Most expressions in a job's `exclude` list."""

VARIABLES = {
    "event.aid": cel.Type.STRING,
    "event.subject_type": cel.Type.STRING,
    "event.subject_id": cel.Type.STRING,
    "event.verb": cel.Type.STRING,
    "event.time": cel.Type.TIMESTAMP,
    "event.data": cel.Type.Map(cel.Type.STRING, cel.Type.DYN),
}
"""What a filter sees of an event; `event.data` is the event's data, its free-form fields included."""

_ENV = cel.NewEnv(variables=VARIABLES)
_LOCATED = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")
_INT64 = (-(2**63), 2**63 - 1)


class FilterError(ValueError):
    """A filter that cannot be used: `reason` says why in one line; `position` is (line, column), both
    from 1, where the expression goes wrong, or None when the whole expression is at fault."""

    def __init__(self, reason: str, position: tuple[int, int] | None = None):
        self.reason, self.position = reason, position
        where = f"line {position[0]}, column {position[1]}: " if position else ""
        super().__init__(f"{where}{reason}")


class Filter:
    """A compiled filter. `matches(event)` is True only when the expression evaluates to true."""

    __slots__ = ("_expr", "text")

    def __init__(self, text: str, expr: cel.Expression):
        self.text, self._expr = text, expr

    def matches(self, event: SystemEvent) -> bool:
        try:
            value = self._expr.eval(_activation(event))
            if value.type() == cel.Type.ERROR and "out of range for 'event.data" in str(value.value()):
                value = self._expr.eval(_activation(event, plain=True))
        except Exception:  # noqa: BLE001 - the runtime raises for budget overruns: no match, by contract
            return False
        return value.type() == cel.Type.BOOL and value.value() is True

    def __repr__(self) -> str:
        return f"Filter({self.text!r})"


def checked(text: str) -> str:
    """`text` if it compiles as a filter, else FilterError: a pydantic validator for filter fields."""
    compile_filter(text)
    return text


FilterText = Annotated[str, AfterValidator(checked)]
"""A config field holding a filter expression, checked when the config is validated."""


@functools.lru_cache(maxsize=16384)
def compile_filter(text: str) -> Filter:
    """The filter `text` compiled, or FilterError saying what is wrong and where. Cached per text."""
    if not isinstance(text, str):
        raise FilterError("a filter must be a string (a CEL expression)")
    if not text.strip():
        raise FilterError("the filter is empty")
    if len(text) > MAX_FILTER_CHARS:
        raise FilterError(f"the filter has {len(text):,} characters; the limit is {MAX_FILTER_CHARS:,}")
    try:
        expr = _ENV.compile(text)
    except RuntimeError as err:
        raise _compile_error(str(err)) from None
    kind = expr.return_type()
    if kind not in (cel.Type.BOOL, cel.Type.DYN):
        raise FilterError(f"the filter must be true or false, but it gives a {kind.name().lower()}")
    _check_shape(text, shape_of(expr.serialize()))
    return Filter(text, expr)


def _compile_error(message: str) -> FilterError:
    found = _LOCATED.search(message)
    if found:
        reason = found.group(3).replace(" (in container '')", "").strip()
        return FilterError(reason, (int(found.group(1)), int(found.group(2))))
    if "recursion limit" in message:
        return FilterError(
            "the filter is nested too deeply (at most 32 levels of parentheses, calls or operators)"
        )
    reason = message.removeprefix("INVALID_ARGUMENT: ").removesuffix(" [INVALID_ARGUMENT]")
    return FilterError(reason.splitlines()[0] if reason else "the filter cannot be compiled")


def _at(text: str, offset: int) -> tuple[int, int]:
    """(line, column), both from 1, of a code point offset."""
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _check_shape(text: str, shape: Shape) -> None:
    if shape.nodes > MAX_FILTER_NODES:
        raise FilterError(f"the filter has {shape.nodes} syntax nodes; the limit is {MAX_FILTER_NODES}")
    if shape.depth > MAX_FILTER_DEPTH:
        raise FilterError(f"the filter is nested {shape.depth} levels deep; the limit is {MAX_FILTER_DEPTH}")
    if shape.loops > MAX_FILTER_LOOPS:
        raise FilterError(f"the filter has {shape.loops} list macros; the limit is {MAX_FILTER_LOOPS}")
    if shape.nested_loop is not None:
        raise FilterError("a list macro cannot sit inside another's body", _at(text, shape.nested_loop))
    if shape.outside_ref is not None:
        name, offset = shape.outside_ref
        while offset > 0 and (text[offset - 1].isalnum() or text[offset - 1] in "._"):
            offset -= 1  # from the selection's dot back to where the name starts
        raise FilterError(
            f"a list macro's body may use only its own variables, not {name}", _at(text, offset)
        )
    concats = [c for c in shape.calls if c.concatenates]
    if len(concats) > MAX_FILTER_CONCATS:
        raise FilterError(
            f"the filter has {len(concats)} string or list concatenations; the limit is {MAX_FILTER_CONCATS}",
            _at(text, concats[MAX_FILTER_CONCATS].offset),
        )
    for call in shape.calls:
        if call.function == "matches":
            _check_regex(text, call.args[-1] if call.args else None, call.offset)


def _check_regex(text: str, pattern: str | None, offset: int) -> None:
    if pattern is None:
        raise FilterError("matches() takes a string literal as its pattern", _at(text, offset))
    probe = _ENV.compile('"".matches(p)'.replace("p", _quote(pattern)))
    value = probe.eval(data={})
    if value.type() == cel.Type.ERROR:
        reason = str(value.value()).removeprefix("INVALID_ARGUMENT: ")
        raise FilterError(reason, _at(text, offset))


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_last = threading.local()


def _activation(event: SystemEvent, *, plain: bool = False) -> Any:
    """The event's variables for the runtime, made once per event and thread (the index evaluates one event
    against many filters in a row). `plain`: with integers beyond 64 bits made floats, for an event whose
    data the runtime could not hold as it is."""
    if getattr(_last, "event", None) is event and _last.plain >= plain:
        return _last.activation
    data = event.data
    fields: dict[str, Any] = dict(data.__pydantic_extra__ or {})
    fields.update(aid=data.aid, subject_type=data.subject_type.value, subject_id=data.subject_id)
    fields["verb"] = data.verb.value
    if data.actor is not None:
        fields["actor"] = data.actor
    values = {
        "event.aid": data.aid,
        "event.subject_type": data.subject_type.value,
        "event.subject_id": data.subject_id,
        "event.verb": data.verb.value,
        "event.time": event.time,
        "event.data": fields,
    }
    if plain:
        values["event.data"] = _plain(fields)
    activation = _ENV.Activation(values)
    _last.event, _last.activation, _last.plain = event, activation, plain
    return activation


def _plain(value: Any) -> Any:
    """JSON data the runtime can hold: integers beyond 64 bits become floats, as JSON numbers are."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64[0] <= value <= _INT64[1]:
        return float(value)
    return value
