"""Fixtures for the BigQuery tests: an in-process runtime on the session stack, fresh target datasets."""

from __future__ import annotations

import uuid

import pytest

from sysevents.auditlog.schema import TableRef
from sysevents.auditlog.writer import TableWriter
from sysevents.config import Settings
from sysevents.runtime import Runtime
from sysevents.sinks.bigquery.targets import account_dataset

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
def target(rt, bq, aid) -> TableRef:
    """A target table in a dataset of its own, one the account `aid` may export to (not created: the
    export creates it)."""
    ref = TableRef(
        rt.settings.project, f"{account_dataset(rt.settings, aid)}__{uuid.uuid4().hex[:8]}", "events"
    )
    yield ref
    bq.delete_dataset(f"{ref.project}.{ref.dataset}", delete_contents=True, not_found_ok=True)
