"""Reading an account's events back out of the audit table, in (time, event id) order, a page at a time.

Rows are de-duplicated by event id (the audit table may hold a row twice: streaming inserts are at least
once) and, for BigQuery export targets, those already in the target are skipped, so a resumed or re-run
backfill adds nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from google.cloud import bigquery

from sysevents.auditlog.schema import TableRef

PAGE_ROWS = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COLUMNS = "event_id, time, aid, subject_type, subject_id, verb, actor, data, published_at"


def _params(aid: str, verbs: list[str], start: datetime | None, end: datetime) -> list:
    return [
        bigquery.ScalarQueryParameter("aid", "STRING", aid),
        bigquery.ArrayQueryParameter("verbs", "STRING", verbs),
        bigquery.ScalarQueryParameter("lo", "TIMESTAMP", start or _EPOCH),
        bigquery.ScalarQueryParameter("hi", "TIMESTAMP", end),
    ]


def _source_sql(audit: TableRef, target: TableRef | None) -> str:
    """Distinct audit rows of one account, wanted verbs and time range, not already in the target."""
    not_in_target = (
        f" AND event_id NOT IN (SELECT event_id FROM {target.sql} WHERE time >= @lo AND time < @hi)"  # noqa: S608 - identifiers checked by TableRef.sql; values are parameters
        if target
        else ""
    )
    return (
        f"SELECT {COLUMNS} FROM {audit.sql} WHERE aid = @aid AND verb IN UNNEST(@verbs) "  # noqa: S608 - identifiers checked by TableRef.sql; values are parameters
        f"AND time >= @lo AND time < @hi{not_in_target} "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY inserted_at) = 1"
    )


class AuditReader:
    """Reads an account's events out of the audit table in (time, event_id) order, a page at a time."""

    def __init__(self, client: bigquery.Client, audit: TableRef, timeout: float = 120.0):
        self.client = client
        self.audit = audit
        self.timeout = timeout

    def _query(self, sql: str, params: list) -> list:
        job = self.client.query(
            sql, job_config=bigquery.QueryJobConfig(query_parameters=params), timeout=self.timeout
        )
        return list(job.result(timeout=self.timeout))

    def count(
        self,
        aid: str,
        verbs: list[str],
        start: datetime | None,
        end: datetime,
        target: TableRef | None = None,
    ) -> int:
        sql = f"SELECT COUNT(*) AS n FROM ({_source_sql(self.audit, target)})"  # noqa: S608 - identifiers checked by TableRef.sql; values are parameters
        return int(self._query(sql, _params(aid, verbs, start, end))[0]["n"])

    def pages(
        self,
        aid: str,
        verbs: list[str],
        start: datetime | None,
        end: datetime,
        *,
        target: TableRef | None = None,
        after: tuple[datetime, str] | None = None,
        page_rows: int = PAGE_ROWS,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of rows; `after` (time, event_id) resumes behind a cursor."""
        cursor = after
        while True:
            params = _params(aid, verbs, start, end) + [
                bigquery.ScalarQueryParameter("ct", "TIMESTAMP", cursor[0] if cursor else _EPOCH),
                bigquery.ScalarQueryParameter("ci", "STRING", cursor[1] if cursor else ""),
                bigquery.ScalarQueryParameter("n", "INT64", page_rows),
            ]
            sql = (
                f"SELECT * FROM ({_source_sql(self.audit, target)}) "  # noqa: S608 - identifiers checked by TableRef.sql; values are parameters
                "WHERE time > @ct OR (time = @ct AND event_id > @ci) "
                "ORDER BY time, event_id LIMIT @n"
            )
            rows = [dict(r) for r in self._query(sql, params)]
            if not rows:
                return
            yield rows
            cursor = (rows[-1]["time"], rows[-1]["event_id"])
            if len(rows) < page_rows:
                return
