"""Content filters on events: CEL expressions compiled once, evaluated without raising."""

from sysevents.filters.compiler import (
    MAX_EXCLUDES,
    MAX_FILTER_CHARS,
    MAX_FILTER_CONCATS,
    MAX_FILTER_DEPTH,
    MAX_FILTER_LOOPS,
    MAX_FILTER_NODES,
    Filter,
    FilterError,
    FilterText,
    compile_filter,
)

__all__ = [
    "MAX_EXCLUDES",
    "MAX_FILTER_CHARS",
    "MAX_FILTER_CONCATS",
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LOOPS",
    "MAX_FILTER_NODES",
    "Filter",
    "FilterError",
    "FilterText",
    "compile_filter",
]
