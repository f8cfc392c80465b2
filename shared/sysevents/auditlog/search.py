"""Audit-log search: one account's events, filtered, newest first, paginated by an opaque token.

`search_audit(aid, ...)` is the one entry point (the admin API's `/audit` route and `sysevents export
search` call it). The account is always a query parameter taken from the caller, never from the token;
a page token only carries a position, bound to the search it came from. BigQuery refusing a search for
its quota (429, or 403 rateLimitExceeded / quotaExceeded) is AtShare: 429 with Retry-After, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_RETRY

from sysevents.auditlog.schema import TableRef, event_of_row
from sysevents.events.model import parse_subject_type, parse_verb
from sysevents.shares import AtShare

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


QUOTA_WAIT = 30.0
"""Seconds a search refused by BigQuery's quota (rateLimitExceeded, quotaExceeded) is asked to wait."""
QUOTA_REASONS = {"rateLimitExceeded", "quotaExceeded"}
RETRY_DEADLINE = 10.0
"""Seconds the client retries a search BigQuery refused (for its quota, or a backend error) before giving up."""


def _quota(err: BaseException | None) -> bool:
    """BigQuery's quota or rate limit: a 429, or a 403 saying so (not a permission)."""
    if isinstance(err, gexc.TooManyRequests):
        return True
    errors = err.errors if isinstance(err, gexc.GoogleAPICallError) else None
    return any(isinstance(e, dict) and e.get("reason") in QUOTA_REASONS for e in errors or ())


class InvalidSearch(ValueError):
    """A bad filter or page token; `reason` names the parameter."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AuditPage:
    events: list[dict[str, Any]]  # CloudEvents 1.0 envelopes, newest first
    next_page_token: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"events": self.events, "next_page_token": self.next_page_token}


def _aware(value: datetime | str | None, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidSearch(f"{name}: not an ISO 8601 time: {value[:40]!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _fingerprint(aid: str, filters: dict[str, Any]) -> str:
    raw = json.dumps([aid, filters], sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _encode_token(time: datetime, event_id: str, fingerprint: str) -> str:
    doc = {"t": time.isoformat(), "i": event_id, "f": fingerprint}
    return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_token(token: str, fingerprint: str) -> tuple[datetime, str]:
    try:
        doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        t, i, f = datetime.fromisoformat(doc["t"]), doc["i"], doc["f"]
        if not isinstance(i, str):
            raise TypeError
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InvalidSearch("page_token: not a token this search returned") from None
    if f != fingerprint:
        raise InvalidSearch("page_token: belongs to a different search (account or filters changed)")
    return t, i


def _where(aid: str, filters: dict, page_token: str | None, fingerprint: str) -> tuple[list[str], list]:
    """The WHERE clauses and their query parameters: the account, the filters, the page's cursor."""
    where = ["aid = @aid"]
    params: list = [bigquery.ScalarQueryParameter("aid", "STRING", aid)]
    for column in ("subject_type", "subject_id", "verb"):
        if filters[column] is not None:
            where.append(f"{column} = @{column}")
            params.append(bigquery.ScalarQueryParameter(column, "STRING", filters[column]))
    if filters["start"]:
        where.append("time >= @lo")
        params.append(bigquery.ScalarQueryParameter("lo", "TIMESTAMP", filters["start"]))
    if filters["end"]:
        where.append("time < @hi")
        params.append(bigquery.ScalarQueryParameter("hi", "TIMESTAMP", filters["end"]))
    if page_token:
        ct, ci = _decode_token(page_token, fingerprint)
        where.append("(time < @ct OR (time = @ct AND event_id < @ci))")
        params += [
            bigquery.ScalarQueryParameter("ct", "TIMESTAMP", ct),
            bigquery.ScalarQueryParameter("ci", "STRING", ci),
        ]
    return where, params


def search_audit(
    aid: str,
    *,
    subject_type: str | None = None,
    subject_id: str | None = None,
    verb: str | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    page_token: str | None = None,
    client: bigquery.Client,
    table: TableRef,
    retry_deadline: float = RETRY_DEADLINE,
) -> AuditPage:
    """One page of the account's audit log, newest first. Raises InvalidSearch for bad input.

    `start` is inclusive, `end` exclusive. `client` is the BigQuery client, `table` the audit table.
    """
    if not isinstance(aid, str) or not aid:
        raise InvalidSearch("aid: required")
    if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidSearch(f"page_size: must be between 1 and {MAX_PAGE_SIZE}")
    try:
        st = parse_subject_type(subject_type).value if subject_type else None
        vb = parse_verb(verb).value if verb else None
    except ValueError as err:
        raise InvalidSearch(str(err)) from None
    lo, hi = _aware(start, "start"), _aware(end, "end")
    if lo and hi and hi <= lo:
        raise InvalidSearch("end: must be after start")
    filters = {"subject_type": st, "subject_id": subject_id, "verb": vb, "start": lo, "end": hi}
    fingerprint = _fingerprint(aid, filters)

    where, params = _where(aid, filters, page_token, fingerprint)
    params.append(bigquery.ScalarQueryParameter("n", "INT64", page_size + 1))
    sql = (
        f"SELECT event_id, time, aid, subject_type, subject_id, verb, actor, data FROM {table.sql} "  # noqa: S608
        f"WHERE {' AND '.join(where)} "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY inserted_at) = 1 "
        "ORDER BY time DESC, event_id DESC LIMIT @n"
    )
    rows = _rows(client, sql, params, retry_deadline)
    more = len(rows) > page_size
    rows = rows[:page_size]
    token = _encode_token(rows[-1]["time"], rows[-1]["event_id"], fingerprint) if more else None
    return AuditPage(events=[event_of_row(r).to_cloudevent() for r in rows], next_page_token=token)


def _rows(client: bigquery.Client, sql: str, params: list, retry_deadline: float) -> list[dict[str, Any]]:
    """The query's rows; BigQuery's quota refusal is AtShare (429 with Retry-After on the admin API)."""
    retry = DEFAULT_RETRY.with_deadline(retry_deadline)  # not the client's 600 s: a person is waiting
    try:
        job = client.query(
            sql,
            job_config=bigquery.QueryJobConfig(query_parameters=params),
            timeout=60,
            retry=retry,
            job_retry=None,  # a failed search is not started again: the caller asks again after Retry-After
        )
        return [dict(r) for r in job.result(timeout=60, retry=retry, job_retry=None)]
    except gexc.NotFound:
        return []  # no audit table yet: nothing was archived
    except (gexc.TooManyRequests, gexc.Forbidden, gexc.RetryError) as err:
        cause = err.cause if isinstance(err, gexc.RetryError) else err
        if not _quota(cause):
            raise
        raise AtShare(f"BigQuery refused the search for its quota: {cause}"[:500], QUOTA_WAIT) from None
