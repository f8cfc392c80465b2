"""Strict JSON text: what sysevents accepts off the wire (events, delivery messages, admin request bodies).

UTF-8 only, no byte order mark, nesting bounded and counted without recursion, finite numbers in range, no
unpaired surrogates; each refusal is one line naming the field. Also the JSON names of value types, so no
message a user reads shows a Python type name."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

MAX_REASON_BYTES = 1000
"""Longest reason (UTF-8): it travels as a Pub/Sub attribute, whose values may be at most 1024 bytes."""


class InvalidJSON(ValueError):
    """A document that cannot be accepted; `reason` says why in one line a user can act on."""

    def __init__(self, reason: str):
        reason = " ".join(reason.splitlines()).encode("utf-8", "backslashreplace")
        if len(reason) > MAX_REASON_BYTES:
            reason = reason[: MAX_REASON_BYTES - 3] + b"..."
        reason = reason.decode("utf-8", "ignore")
        super().__init__(reason)
        self.reason = reason


class TooDeep(InvalidJSON):
    """Nested deeper than allowed; `depth` is how deep."""

    def __init__(self, reason: str, depth: int):
        super().__init__(reason)
        self.depth = depth


# -- naming JSON types -------------------------------------------------------------------------------------
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


def json_type(value: Any) -> str:
    """The JSON name of a value's type (object, array, string, number, boolean, null)."""
    if isinstance(value, _Unrepresentable):
        return "number"
    name = type(value).__name__
    for base in (bool, int, float, str, dict, list, tuple):  # subclasses (enums, ...) too
        if isinstance(value, base):
            name = base.__name__
            break
    return _JSON_TYPES.get(name, name)


def plain(msg: str) -> str:
    """A message with Python type names replaced by JSON ones ("got NoneType" -> "got null")."""
    return _PY_TYPE_WORD.sub(lambda m: f"{m.group(1)} {_JSON_TYPES.get(m.group(2), 'object')}", msg)


def show(value: Any, limit: int = 40) -> str:
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
    return f"(an {json_type(value)})" if json_type(value)[0] in "aeiou" else f"(a {json_type(value)})"


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


def loads(raw: bytes | bytearray | memoryview | str, *, what: str, max_depth: int) -> Any:
    """Parse UTF-8 JSON text strictly; raises InvalidJSON with a one-line reason (TooDeep for nesting).

    Refused: empty input, a byte order mark, NUL bytes, bytes that are not UTF-8 (json.loads would also
    take UTF-16 and UTF-32, and UTF-8-encoded surrogates), nesting deeper than `max_depth`. NaN, Infinity
    and numbers out of range come back as _Unrepresentable, for `check` to name their field."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")  # surrogates then fail the UTF-8 check below
    raw = bytes(raw)
    if not raw.strip():
        raise InvalidJSON(f"{what} is empty; expected a JSON object")
    if raw.startswith((b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe")):
        raise InvalidJSON(f"{what} starts with a byte order mark (BOM); send UTF-8 JSON without one")
    if b"\x00" in raw:  # never in JSON text (escaped as \u0000 in strings); json.loads takes UTF-16 and -32
        raise InvalidJSON(f"{what} contains NUL bytes (UTF-16 or UTF-32 text?); send UTF-8 JSON")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidJSON(
            f"{what} is not valid UTF-8 text: "
            f"byte 0x{raw[err.start]:02x} at offset {err.start} ({err.reason})"
        ) from None
    if text.count("[") + text.count("{") > max_depth and (depth := _depth_of_text(text)) > max_depth:
        raise TooDeep(f"{what} is nested {depth} levels deep; the limit is {max_depth}", depth)
    try:
        return json.loads(
            text, parse_constant=_parse_constant, parse_float=_parse_float, parse_int=_parse_int
        )
    except json.JSONDecodeError as err:
        raise InvalidJSON(f"{what} is not valid JSON: {err}") from None
    except (ValueError, RecursionError) as err:  # not expected after the checks above
        raise InvalidJSON(f"{what} is not valid JSON: {plain(str(err))}") from None


_SURROGATE = re.compile("[\ud800-\udfff]")
_UNPAIRED = "contains an unpaired surrogate (not valid Unicode text)"


def _path(parts: tuple[Any, ...]) -> str:
    return ".".join(p if isinstance(p, str) and len(p) <= 40 else show(p) for p in parts)


def check(fields: dict[str, Any]) -> int:
    """Refuse what could not be written back as UTF-8 JSON: unpaired surrogates (in keys too), NaN,
    Infinity and numbers out of range. Returns the nesting depth of `fields`. No recursion."""
    deepest = 0
    stack: list[tuple[Any, tuple[Any, ...], int]] = [(fields, (), 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise InvalidJSON(f"{_path(path)}: {_UNPAIRED}")
        elif isinstance(value, _Unrepresentable):
            raise InvalidJSON(f"{_path(path)}: {value.problem}")
        elif isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise InvalidJSON(f"{_path(path)}: {value} is not allowed: JSON numbers must be finite")
        elif isinstance(value, dict):
            deepest = max(deepest, depth + 1)
            for k, v in value.items():
                if isinstance(k, str) and _SURROGATE.search(k):
                    where = _path(path) or "event"
                    raise InvalidJSON(f"{where}: key {show(k)} {_UNPAIRED}")
                stack.append((v, (*path, k), depth + 1))
        elif isinstance(value, list | tuple):
            deepest = max(deepest, depth + 1)
            stack.extend((v, (*path, i), depth + 1) for i, v in enumerate(value))
    return deepest


def load(raw: bytes | str, *, what: str, max_depth: int) -> Any:
    """Parse a JSON document strictly (UTF-8, no BOM, at most `max_depth` levels, finite numbers in range,
    no unpaired surrogates in keys or values); raises InvalidJSON naming the field."""
    doc = loads(raw, what=what, max_depth=max_depth)
    check(doc if isinstance(doc, dict) else {"": doc})
    return doc
