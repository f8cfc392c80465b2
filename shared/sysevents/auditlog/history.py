"""One account's audit log over a past range, oldest first: what a job preview replays.

`history(aid, start, end, ...)` reads the events of the account whose time is in [start, end), oldest
first, each event once (the audit table may hold a redelivered event twice), at most `limit` of them. The
scan is bounded three ways: the account and the time range are in the WHERE clause (the table is
partitioned by day on event time and clustered by account, so BigQuery reads only those partitions and
blocks), the range itself is at most `max_days` long, and `maximum_bytes_billed` refuses a query that
would read more than `max_bytes` (BigQuery fails it before it runs; the caller gets `HistoryTooLarge`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from sysevents.auditlog.schema import TableRef, event_of_row
from sysevents.events.model import SystemEvent


class InvalidRange(ValueError):
    """A bad range: `field` names the parameter, `reason` says what is wrong."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class HistoryTooLarge(RuntimeError):
    """BigQuery refused the scan: it would read more than the preview's byte bound."""


@dataclass(frozen=True)
class History:
    events: list[SystemEvent]  # oldest first
    truncated: bool  # more events than `limit` are in the range: `events` is its first `limit`
    start: datetime
    end: datetime


def parse_time(value: datetime | str | None, field: str) -> datetime | None:
    """An aware datetime from an ISO 8601 text (or a datetime); naive means UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRange(field, f"not an ISO 8601 time: {value[:40]!r}") from None
    if not isinstance(value, datetime):
        raise InvalidRange(field, "must be an ISO 8601 time, e.g. 2026-01-01T00:00:00Z")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def bounded_range(
    start: datetime | None, end: datetime | None, *, now: datetime, default_days: float, max_days: float
) -> tuple[datetime, datetime]:
    """[start, end): by default the last `default_days` up to now; never longer than `max_days`, never
    after now (there is no history in the future)."""
    end = min(end or now, now)
    start = start or end - timedelta(days=default_days)
    if start >= end:
        raise (
            InvalidRange("end", "must be after start")
            if start < now
            else InvalidRange("start", "must be before now")
        )
    if end - start > timedelta(days=max_days):
        raise InvalidRange("start", f"the range is longer than {max_days:g} days; preview a shorter one")
    return start, end


def history(
    aid: str,
    start: datetime,
    end: datetime,
    *,
    limit: int,
    client: bigquery.Client,
    table: TableRef,
    max_bytes: int | None = None,
) -> History:
    """The account's events in [start, end), oldest first, each once, at most `limit` (see the module)."""
    params = [
        bigquery.ScalarQueryParameter("aid", "STRING", aid),
        bigquery.ScalarQueryParameter("lo", "TIMESTAMP", start),
        bigquery.ScalarQueryParameter("hi", "TIMESTAMP", end),
        bigquery.ScalarQueryParameter("n", "INT64", limit + 1),
    ]
    sql = (
        f"SELECT event_id, time, aid, subject_type, subject_id, verb, actor, data FROM {table.sql} "  # noqa: S608
        "WHERE aid = @aid AND time >= @lo AND time < @hi "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY inserted_at) = 1 "
        "ORDER BY time, event_id LIMIT @n"
    )
    config = bigquery.QueryJobConfig(query_parameters=params, maximum_bytes_billed=max_bytes)
    try:
        job = client.query(sql, job_config=config, timeout=60)
        rows = [dict(r) for r in job.result(timeout=120)]
    except gexc.NotFound:
        rows = []  # no audit table yet: nothing was archived
    except gexc.BadRequest as err:
        if "bytesBilledLimitExceeded" in str(err) or "bytes billed" in str(err).lower():
            raise HistoryTooLarge(str(err)) from None
        raise
    truncated = len(rows) > limit
    return History([event_of_row(r) for r in rows[:limit]], truncated, start, end)
