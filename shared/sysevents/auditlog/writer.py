"""Streaming inserts: rows validated against the table's schema, coalesced across concurrent requests.

`MicroBatcher` lets the request threads of one function instance share insertAll calls (sysevents.transport.coalesce):
the first row for a table opens a batch and waits up to `max_wait` seconds (or until `max_rows` rows
joined, or no row joined for a tenth of `max_wait`), then sends the whole batch; every submitter blocks
until its own row's outcome is known, so a push request is answered 2xx only once its row is stored.

`TableWriter` adds what surrounds an insert: the table is created with the audit schema when missing
(and allowed), rows are validated here (the emulator accepts bad rows silently; real BigQuery rejects
them one by one), and BigQuery's own per-row errors come back as per-row outcomes (`skip_invalid_rows`
keeps the good rows of a batch).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import bigquery

from sysevents.auditlog import schema as schema_mod
from sysevents.auditlog.schema import TableRef
from sysevents.transport.coalesce import Coalescer, Stats

log = logging.getLogger(__name__)

Row = dict[str, Any]
InsertFn = Callable[[str, Sequence[str], Sequence[Row]], list[str | None]]
"""insert(table_id, row_ids, rows) -> per row: None when stored, else why BigQuery refused it."""


class InsertFailed(RuntimeError):
    """The insert as a whole failed (network, 5xx, timeout): nothing is known stored; retry later."""


class TableMissing(RuntimeError):
    """The target table does not exist and may not be created."""


@dataclass(frozen=True)
class RowResult:
    stored: bool
    reason: str | None = None  # why the row was refused (bad row); None when stored


class MicroBatcher:
    """Rows of concurrent requests share insertAll calls (a `Coalescer` keyed by table): each submitter
    blocks until its own rows' outcomes are known. A failed insert fails every row of its batch."""

    def __init__(
        self, insert: InsertFn, *, max_rows: int = 500, max_wait: float = 0.1, max_in_flight: int = 2
    ):
        self._insert = insert
        self.max_rows = max_rows
        # group commit: while max_in_flight inserts into a table run, its new rows gather for the next one
        self._coalescer: Coalescer[str, tuple[str, Row], RowResult] = Coalescer(
            self._send, max_size=max_rows, max_wait=max_wait, idle=max_wait / 10, max_in_flight=max_in_flight
        )

    @property
    def stats(self) -> Stats:
        return self._coalescer.stats

    def submit(self, table_id: str, items: Sequence[tuple[str, Row]]) -> list[RowResult]:
        """Store rows (row id, row); blocks until each outcome is known. Raises InsertFailed."""
        return self._coalescer.submit(table_id, items)

    def _send(self, table_id: str, items: list[tuple[str, Row]]) -> list[RowResult]:
        try:
            reasons = self._insert(table_id, [i[0] for i in items], [i[1] for i in items])
        except (InsertFailed, TableMissing):
            raise
        except Exception as err:
            raise InsertFailed(f"insert into {table_id} failed: {type(err).__name__}: {err}") from None
        return [RowResult(stored=reason is None, reason=reason) for reason in reasons]


def insert_errors_by_row(count: int, errors: Sequence[dict[str, Any]]) -> list[str | None]:
    """Map insertAll's `insertErrors` ([{"index", "errors": [{"reason", "location", "message"}]}]) to rows."""
    out: list[str | None] = [None] * count
    for entry in errors:
        idx = entry.get("index")
        if not isinstance(idx, int) or not 0 <= idx < count:
            continue
        parts = []
        for e in entry.get("errors") or []:
            where = e.get("location")
            text = e.get("message") or e.get("reason") or "rejected"
            parts.append(f"{where}: {text}" if where else text)
        out[idx] = "BigQuery refused the row: " + ("; ".join(parts) or "no reason given")
    return out


class TableWriter:
    """Validated, micro-batched streaming inserts into tables with the audit schema."""

    SCHEMA_TTL = timedelta(minutes=5)

    def __init__(
        self,
        client: bigquery.Client,
        *,
        max_rows: int = 500,
        max_wait: float = 0.1,
        timeout: float = 30.0,
        location: str | None = None,
    ):
        self.client = client
        self.timeout = timeout
        self.location = location
        self.batcher = MicroBatcher(self._insert, max_rows=max_rows, max_wait=max_wait)
        self._schemas: dict[str, tuple[list[bigquery.SchemaField], float]] = {}
        self._lock = threading.Lock()

    def _retry(self) -> Retry:
        # Short deadline: the emulator answers a bad TIMESTAMP with HTTP 500, which the client would
        # otherwise retry for 600 s.
        return Retry(deadline=self.timeout)

    # -- tables ------------------------------------------------------------------------------------------
    def table_schema(self, ref: TableRef, *, create_if_missing: bool) -> list[bigquery.SchemaField]:
        """The table's schema (cached a few minutes); creates dataset and table when missing and allowed."""
        now = time.monotonic()
        cached = self._schemas.get(ref.id)
        if cached and now - cached[1] < self.SCHEMA_TTL.total_seconds():
            return cached[0]
        with self._lock:
            try:
                table = self.client.get_table(ref.id, retry=self._retry(), timeout=self.timeout)
            except gexc.NotFound:
                if not create_if_missing:
                    raise TableMissing(
                        f"table {ref.id} does not exist and create_if_missing is false"
                    ) from None
                table = self.create_table(ref)
            except gexc.GoogleAPIError as err:
                raise InsertFailed(f"cannot read table {ref.id}: {err}") from None
            self._schemas[ref.id] = (list(table.schema), now)
            return list(table.schema)

    def create_table(self, ref: TableRef) -> bigquery.Table:
        ds = bigquery.Dataset(f"{ref.project}.{ref.dataset}")
        if self.location:
            ds.location = self.location
        try:  # look first: creating an existing dataset needs bigquery.datasets.create, which a
            # function with only dataEditor on that dataset lacks (real BigQuery answers 403, not 409)
            self.client.get_dataset(ds.reference, retry=self._retry(), timeout=self.timeout)
        except gexc.NotFound:
            self.client.create_dataset(ds, exists_ok=True, retry=self._retry(), timeout=self.timeout)
        table = self.client.create_table(
            schema_mod.new_table(ref.id), exists_ok=True, retry=self._retry(), timeout=self.timeout
        )
        log.info("bigquery: created table %s (partitioned by day on time, clustered)", ref.id)
        return table

    # -- rows --------------------------------------------------------------------------------------------
    def _insert(self, table_id: str, row_ids: Sequence[str], rows: Sequence[Row]) -> list[str | None]:
        try:
            errors = self.client.insert_rows_json(
                table_id,
                list(rows),
                row_ids=list(row_ids),
                skip_invalid_rows=True,
                retry=self._retry(),
                timeout=self.timeout,
            )
        except gexc.NotFound as err:
            with self._lock:
                self._schemas.pop(table_id, None)
            raise InsertFailed(f"table {table_id} not found: {err}") from None
        except (gexc.GoogleAPIError, OSError) as err:
            raise InsertFailed(f"insert into {table_id} failed: {type(err).__name__}: {err}") from None
        return insert_errors_by_row(len(rows), errors)

    def write(
        self,
        ref: TableRef,
        items: Sequence[tuple[str, Row]],
        *,
        create_if_missing: bool,
        batched: bool = True,
    ) -> list[RowResult]:
        """Store rows (row id, row): invalid rows come back refused with the reason and are not sent;
        the rest go out (micro-batched with other requests' rows when `batched`). Raises InsertFailed,
        TableMissing."""
        fields = self.table_schema(ref, create_if_missing=create_if_missing)
        results: list[RowResult | None] = [None] * len(items)
        good: list[tuple[int, tuple[str, Row]]] = []
        for i, (row_id, row) in enumerate(items):
            problems = schema_mod.validate_row(row, fields)
            if problems:
                results[i] = RowResult(stored=False, reason="bad row: " + "; ".join(problems))
            else:
                good.append((i, (row_id, row)))
        if good:
            if batched:
                stored = self.batcher.submit(ref.id, [g[1] for g in good])
            else:
                reasons = self._insert(ref.id, [g[1][0] for g in good], [g[1][1] for g in good])
                stored = [RowResult(stored=r is None, reason=r) for r in reasons]
            for (i, _), res in zip(good, stored, strict=True):
                results[i] = res
        return [r for r in results if r is not None]

    def contains(self, ref: TableRef, event_id: str, event_time: datetime) -> bool:
        """Whether a row for this event is already stored (redeliveries, hand-over late events)."""
        sql = (
            f"SELECT COUNT(*) AS n FROM {ref.sql} WHERE event_id = @id "  # noqa: S608 - identifiers checked by TableRef.sql; values are parameters
            "AND time BETWEEN TIMESTAMP_SUB(@t, INTERVAL 1 DAY) AND TIMESTAMP_ADD(@t, INTERVAL 1 DAY)"
        )
        cfg = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter("id", "STRING", event_id),
                bigquery.ScalarQueryParameter("t", "TIMESTAMP", event_time),
            ]
        )
        try:
            rows = list(
                self.client.query(sql, job_config=cfg, retry=self._retry(), timeout=self.timeout).result(
                    timeout=self.timeout
                )
            )
        except gexc.NotFound:
            return False
        except gexc.GoogleAPIError as err:
            raise InsertFailed(f"cannot check {ref.id} for event {event_id}: {err}") from None
        return bool(rows and rows[0]["n"])
