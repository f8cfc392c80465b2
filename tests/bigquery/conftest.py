"""Fixtures for the BigQuery tests: an in-process runtime on the session stack, fresh target datasets."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from sysevents.bigquery.schema import TableRef
from sysevents.bigquery.writer import TableWriter
from sysevents.config import Settings
from sysevents.runtime import Runtime

HANDOVER_SECONDS = 3.0  # > the job caches' lag here (about a second)


@pytest.fixture(scope="session")
def rt(stack) -> Runtime:
    return Runtime(Settings(export_handover_seconds=HANDOVER_SECONDS))


@pytest.fixture(scope="session")
def bq(rt):
    return rt.bigquery


@pytest.fixture(scope="session")
def table_writer(rt) -> TableWriter:
    return TableWriter(rt.bigquery, max_wait=0.05, timeout=15)


@pytest.fixture(scope="session")
def audit(rt) -> TableRef:
    return TableRef(rt.settings.project, rt.settings.audit_dataset, rt.settings.audit_table)


@pytest.fixture
def target(rt, bq) -> TableRef:
    """A target table in a dataset of its own (not created: the export creates it)."""
    ref = TableRef(rt.settings.project, f"exp_{uuid.uuid4().hex[:10]}", "events")
    yield ref
    bq.delete_dataset(f"{ref.project}.{ref.dataset}", delete_contents=True, not_found_ok=True)


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


def wait_until(check: Callable[[], object], timeout: float = 60.0, every: float = 0.5):
    """Poll `check` until it returns something truthy; returns it (or the last falsy value)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(every)
