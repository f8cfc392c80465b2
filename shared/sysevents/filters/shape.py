"""What a compiled filter's checked AST looks like: its size, depth, loops and costly calls.

cel-expr-python gives the checked expression only in its serialized form (a `google.protobuf.Any` holding a
`cel.expr.CheckedExpr`), and no Python package ships that message's classes; this module reads the few
fields it needs with protobuf's own wire-format reader (`UnknownFieldSet`), by the field numbers of
cel-spec's `checked.proto` and `syntax.proto`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf import any_pb2, empty_pb2
from google.protobuf.unknown_fields import UnknownFieldSet

# cel.expr.CheckedExpr
_REFERENCE_MAP, _EXPR, _SOURCE_INFO = 2, 4, 5
# cel.expr.Expr
_ID, _CONST, _IDENT, _SELECT, _CALL, _LIST, _STRUCT, _COMPREHENSION = 2, 3, 4, 5, 6, 7, 8, 9
# cel.expr.SourceInfo
_POSITIONS = 4
_LENGTH_DELIMITED = 2
_STRING_CONST = 6
_CONCAT_OVERLOADS = {b"add_string", b"add_bytes", b"add_list"}


@dataclass
class Call:
    """A call in the expression: its function, the code point offset it is at, and its constant string
    arguments (None for an argument that is not a string literal)."""

    function: str
    offset: int
    args: list[str | None]
    concatenates: bool = False


@dataclass
class Shape:
    nodes: int = 0
    depth: int = 0
    loops: int = 0
    calls: list[Call] = field(default_factory=list)
    nested_loop: int | None = None
    """The offset of a loop inside another loop's body (None: none is)."""
    outside_ref: tuple[str, int] | None = None
    """A name a loop's body refers to that is not its own variable, and its offset (None: none)."""


def _fields(data: bytes) -> list[tuple[int, int, object]]:
    return [(f.field_number, f.wire_type, f.data) for f in UnknownFieldSet(empty_pb2.Empty.FromString(data))]


def _one(data: bytes, number: int, default: object = None) -> object:
    for n, _, value in _fields(data):
        if n == number:
            return value
    return default


def _map(data: bytes, number: int) -> dict[int, bytes | int]:
    out: dict[int, bytes | int] = {}
    for n, _, entry in _fields(data):
        if n == number:
            out[int(_one(entry, 1, 0))] = _one(entry, 2, b"")
    return out


class _Walk:
    def __init__(self, overloads: dict[int, set[bytes]], positions: dict[int, int]):
        self.shape = Shape()
        self.overloads, self.positions = overloads, positions

    def expr(self, data: bytes, depth: int, scope: frozenset[str] | None) -> None:
        """Visit one Expr; `scope` is the names a loop body may use (None: not in a loop body)."""
        s = self.shape
        s.nodes += 1
        s.depth = max(s.depth, depth)
        fields = _fields(data)
        eid = next((int(v) for n, _, v in fields if n == _ID), 0)
        offset = self.positions.get(eid, 0)
        for n, _, value in fields:
            if n == _IDENT:
                name = _one(value, 1, b"").decode()
                if scope is not None and name not in scope and s.outside_ref is None:
                    s.outside_ref = (name, offset)
            elif n == _SELECT:
                self.expr(_one(value, 1, b""), depth + 1, scope)
            elif n == _CALL:
                self.call(value, eid, offset, depth, scope)
            elif n == _LIST:
                for k, _, element in _fields(value):
                    if k == 1:
                        self.expr(element, depth + 1, scope)
            elif n == _STRUCT:
                for k, _, entry in _fields(value):
                    if k == 2:
                        for j, _, part in _fields(entry):
                            if j in (3, 4):
                                self.expr(part, depth + 1, scope)
            elif n == _COMPREHENSION:
                self.loop(value, offset, depth, scope)

    def call(self, value: bytes, eid: int, offset: int, depth: int, scope: frozenset[str] | None) -> None:
        function, args = "", []
        for k, _, part in _fields(value):
            if k == 1:
                self.expr(part, depth + 1, scope)
            elif k == 2:
                function = part.decode()
            elif k == 3:
                args.append(_string_const(part))
                self.expr(part, depth + 1, scope)
        concat = bool(self.overloads.get(eid, set()) & _CONCAT_OVERLOADS)
        self.shape.calls.append(Call(function, offset, args, concat))

    def loop(self, value: bytes, offset: int, depth: int, scope: frozenset[str] | None) -> None:
        s = self.shape
        s.loops += 1
        if scope is not None and s.nested_loop is None:
            s.nested_loop = offset
        parts = {k: part for k, _, part in _fields(value)}
        own = frozenset(
            part.decode() for k, part in parts.items() if k in (1, 3, 8) and isinstance(part, bytes)
        )
        for k, part in parts.items():
            if k in (2, 4, 7):  # the range, the initial value, the result: evaluated once
                self.expr(part, depth + 1, scope)
            elif k in (5, 6):  # the condition and the step: evaluated per element
                self.expr(part, depth + 1, own | (scope or frozenset()))


def _string_const(expr: bytes) -> str | None:
    const = _one(expr, _CONST)
    if not isinstance(const, bytes):
        return None
    for n, wire, value in _fields(const):
        if n == _STRING_CONST and wire == _LENGTH_DELIMITED:
            return value.decode()
    return None


def shape_of(serialized: bytes) -> Shape:
    """The shape of a compiled expression (`cel.Expression.serialize()`)."""
    checked = any_pb2.Any.FromString(serialized).value
    overloads: dict[int, set[bytes]] = {}
    for n, _, entry in _fields(checked):
        if n == _REFERENCE_MAP:
            ref = _one(entry, 2, b"")
            overloads[int(_one(entry, 1, 0))] = {v for k, _, v in _fields(ref) if k == 3}
    source_info = _one(checked, _SOURCE_INFO, b"")
    positions = {k: int(v) for k, v in _map(source_info, _POSITIONS).items()}
    walk = _Walk(overloads, positions)
    walk.expr(_one(checked, _EXPR, b""), 1, None)
    return walk.shape
