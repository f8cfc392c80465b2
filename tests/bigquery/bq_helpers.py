"""Helpers for the BigQuery tests (importable as `bq_helpers`)."""

from __future__ import annotations

from sysevents.auditlog.schema import TableRef


def rows(bq, table: TableRef, where: str = "TRUE", **params) -> list[dict]:
    from google.api_core import exceptions as gexc
    from google.cloud import bigquery

    qp = [bigquery.ScalarQueryParameter(k, "STRING", v) for k, v in params.items()]
    try:
        job = bq.query(
            f"SELECT * FROM {table.sql} WHERE {where} ORDER BY time, event_id",  # noqa: S608
            job_config=bigquery.QueryJobConfig(query_parameters=qp),
        )
        return [dict(r) for r in job.result(timeout=30)]
    except gexc.NotFound:
        return []


def lifecycle_verbs(subscriber, sub, job_id, until="completed", timeout=60):
    """Verbs of the lifecycle events about `job_id`, in publish order, up to `until`."""
    import json

    from helpers import pull, wait_until

    verbs: list[str] = []

    def read() -> bool:
        for m in pull(subscriber, sub, 1, timeout=5):
            data = json.loads(m.data)["data"]
            if data["subject_id"] == job_id:
                verbs.append(data["verb"])
        return until in verbs

    wait_until(read, timeout, every=0)
    return verbs
