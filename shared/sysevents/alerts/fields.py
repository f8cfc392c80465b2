"""Event data fields as alert settings name them (grouping, silences, conditions), and weekday names."""

from __future__ import annotations

import re
from typing import Any

FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def field_value(data: dict[str, Any], name: str) -> str:
    """An event data field as text, for grouping and matching ('' when absent)."""
    value = data.get(name)
    return "" if value is None else str(value)
