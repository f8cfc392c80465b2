"""The row shape of the audit table and of export tables (audit_schema.json), and row validation.

BigQuery's emulator accepts rows with missing REQUIRED fields or unknown fields silently, and real
BigQuery rejects them only row by row; so every row is checked here, against the target table's actual
schema, before it is sent. A row that fails is never sent: it is dead-lettered with the reason.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from google.cloud import bigquery

from sysevents.events.model import SystemEvent, event_from_dict

SCHEMA_FILE = "audit_schema.json"


@cache
def definition() -> dict[str, Any]:
    """audit_schema.json as a dict: `fields` (BigQuery JSON schema), `time_partitioning`, `clustering`."""
    return json.loads(resources.files(__package__).joinpath(SCHEMA_FILE).read_text())


def schema() -> list[bigquery.SchemaField]:
    return [bigquery.SchemaField.from_api_repr(copy.deepcopy(f)) for f in definition()["fields"]]


def new_table(table_id: str) -> bigquery.Table:
    """A table object with the audit schema, day partitioning on event time and clustering."""
    d = definition()
    table = bigquery.Table(table_id, schema=schema())
    tp = d["time_partitioning"]
    table.time_partitioning = bigquery.TimePartitioning(type_=tp["type"], field=tp["field"])
    table.clustering_fields = list(d["clustering"])
    table.description = "sysevents: one row per system event"
    return table


@dataclass(frozen=True)
class TableRef:
    project: str
    dataset: str
    table: str

    @property
    def id(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"

    @property
    def sql(self) -> str:
        """The table as a quoted SQL identifier (each part is validated: letters, digits, _ - . : only)."""
        for part in (self.project, self.dataset, self.table):
            if not part or not all(c.isalnum() or c in "_-.:" for c in part):
                raise ValueError(f"invalid BigQuery identifier {part!r}")
        return f"`{self.id}`"


def audit_table(settings) -> TableRef:
    """The deployment's audit table (SYSEVENTS_AUDIT_DATASET.SYSEVENTS_AUDIT_TABLE)."""
    return TableRef(settings.project, settings.audit_dataset, settings.audit_table)


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def row_of_event(
    event: SystemEvent, *, published_at: str | datetime | None = None, inserted_at: datetime | None = None
) -> dict[str, Any]:
    """The row for one event (insertAll JSON form)."""
    if isinstance(published_at, datetime):
        published_at = _ts(published_at)
    return {
        "event_id": event.id,
        "time": _ts(event.time),
        "aid": event.aid,
        "subject_type": event.subject_type.value,
        "subject_id": event.subject_id,
        "verb": event.verb.value,
        "actor": event.data.actor,
        "data": json.dumps(
            event.data.model_dump(mode="json", exclude_none=True), separators=(",", ":"), ensure_ascii=False
        ),
        "published_at": published_at or None,
        "inserted_at": _ts(inserted_at or datetime.now(UTC)),
    }


def row_from_query(row: Any, *, inserted_at: datetime | None = None) -> dict[str, Any]:
    """A row read back by a query (datetimes, parsed JSON) in insertAll JSON form again."""
    out: dict[str, Any] = {}
    for key, value in dict(row).items():
        if isinstance(value, datetime):
            value = _ts(value)
        elif key == "data" and value is not None and not isinstance(value, str):
            value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        out[key] = value
    out["inserted_at"] = _ts(inserted_at or datetime.now(UTC))
    return out


def event_of_row(row: Any) -> SystemEvent:
    """The event a stored row holds (for search results and webhook batch exports)."""
    r = dict(row)
    data = r.get("data")
    if isinstance(data, str):
        data = json.loads(data)
    data = dict(data or {})
    for key in ("aid", "subject_type", "subject_id", "verb", "actor"):
        if r.get(key) is not None:
            data[key] = r[key]
    time = r["time"]
    return event_from_dict(
        {"id": r["event_id"], "time": time if isinstance(time, str) else time.isoformat(), "data": data}
    )


# -- validation ----------------------------------------------------------------------------------------
_INT64 = (-(2**63), 2**63 - 1)


def _check_timestamp(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return None if math.isfinite(value) else "not a finite number"
    if not isinstance(value, str):
        return f"expected a TIMESTAMP string, got {type(value).__name__}"
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return f"not a TIMESTAMP: {value[:40]!r}"
    return None


def _check_scalar(field: bigquery.SchemaField, value: Any) -> str | None:
    t = field.field_type.upper()
    if t == "STRING":
        if not isinstance(value, str):
            return f"expected STRING, got {type(value).__name__}"
        if field.max_length and len(value) > field.max_length:
            return f"longer than the column's max length {field.max_length}"
        return None
    if t in ("INTEGER", "INT64"):
        if isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not _INT64[0] <= value <= _INT64[1]:
            return f"expected INTEGER, got {value!r:.40}"
        return None
    if t in ("FLOAT", "FLOAT64", "NUMERIC", "BIGNUMERIC"):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return f"expected a number, got {type(value).__name__}"
        return None
    if t in ("BOOLEAN", "BOOL"):
        return None if isinstance(value, bool) else f"expected BOOLEAN, got {type(value).__name__}"
    if t == "TIMESTAMP":
        return _check_timestamp(value)
    if t in ("DATETIME", "DATE", "TIME"):
        return None if isinstance(value, str) else f"expected {t} text, got {type(value).__name__}"
    if t == "JSON":
        if not isinstance(value, str):
            return f"expected JSON text, got {type(value).__name__}"
        try:
            json.loads(value)
        except json.JSONDecodeError as err:
            return f"not valid JSON: {err}"
        return None
    if t in ("RECORD", "STRUCT"):
        if not isinstance(value, dict):
            return f"expected RECORD (object), got {type(value).__name__}"
        problems = validate_row(value, list(field.fields))
        return "; ".join(problems) or None
    return None  # BYTES, GEOGRAPHY, ...: left to BigQuery


def validate_row(row: dict[str, Any], fields: list[bigquery.SchemaField]) -> list[str]:
    """Problems that would make BigQuery refuse (or silently mangle) the row; empty when it is good."""
    by_name = {f.name.lower(): f for f in fields}
    problems = [f"{name}: no such column in the table" for name in row if name.lower() not in by_name]
    for f in fields:
        value = row.get(f.name)
        mode = (f.mode or "NULLABLE").upper()
        if value is None:
            if mode == "REQUIRED":
                problems.append(f"{f.name}: required, missing")
            continue
        if mode == "REPEATED":
            if not isinstance(value, list):
                problems.append(f"{f.name}: expected a list (REPEATED)")
                continue
            for i, item in enumerate(value):
                p = _check_scalar(f, item)
                if p:
                    problems.append(f"{f.name}[{i}]: {p}")
            continue
        p = _check_scalar(f, value)
        if p:
            problems.append(f"{f.name}: {p}")
    return problems
