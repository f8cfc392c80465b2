"""Header rules of webhook jobs, in one place: the admin API applies them to the clear values a client sends
(sysevents.sinks.webhook.saving), the config model to the stored (sealed) values."""

from __future__ import annotations

from typing import Any

from sysevents.jobs.secrets import is_sealed

MAX_HEADERS = 32
MAX_HEADER_NAME_CHARS = 256
MAX_HEADER_VALUE_CHARS = 2048
"""Longest clear header value a client may send."""
MAX_STORED_HEADER_CHARS = 4096
"""Longest stored value: a sealed 2048-character value still fits."""
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "upgrade",
        "expect",
        "proxy-authorization",
        "proxy-connection",
        "trailer",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
"""Set by the sink or by HTTP itself; a job may not override them."""


def check_header_name(name: Any) -> str | None:
    """Why a header name is refused, or None."""
    if not isinstance(name, str) or not name:
        return "header name must be a non-empty string"
    if len(name) > MAX_HEADER_NAME_CHARS:
        return f"header name is longer than {MAX_HEADER_NAME_CHARS} characters"
    if not all(c.isascii() and (c.isalnum() or c in "-_") for c in name):
        return f"header name {name!r} is not a valid token (letters, digits, '-', '_')"
    if name.lower() in RESERVED_HEADERS:
        return f"header {name!r} is set by sysevents or by HTTP and cannot be configured"
    return None


def check_header_value(value: Any, *, stored: bool = False) -> str | None:
    """Why a header value is refused, or None. Clear values (what a client sends) are printable ASCII of
    at most MAX_HEADER_VALUE_CHARS; stored values may be sealed, up to MAX_STORED_HEADER_CHARS."""
    if not isinstance(value, str):
        return "header value must be a string"
    if stored and is_sealed(value):
        return None if len(value) <= MAX_STORED_HEADER_CHARS else "sealed header value is too long"
    limit = MAX_STORED_HEADER_CHARS if stored else MAX_HEADER_VALUE_CHARS
    if len(value) > limit:
        return f"header value is longer than {limit} characters"
    if not all(" " <= c <= "~" or c == "\t" for c in value):
        return "header value must be printable ASCII (no control characters)"
    return None
