"""The BigQuery sink's part of backfills: one-time exports and the backfill of backfill-then-continuous.

Pages of audit rows are written to the target with plain (not micro-batched) inserts; a refused row is
dead-lettered with its reason and the rest kept. Finishing a backfill-then-continuous export writes the
late events streaming parked meanwhile (those the target lacks), then marks the run done.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sysevents.auditlog.schema import event_of_row, row_from_query, row_of_event
from sysevents.backfill.engine import PAGE_ROWS, Backfill, DeliveryRefused
from sysevents.backfill.runs import RunState
from sysevents.delivery.envelope import dead_letter
from sysevents.delivery.message import Delivery
from sysevents.events.model import event_from_dict
from sysevents.jobs.model import Job
from sysevents.sinks.bigquery.config import SINK, ExportMode
from sysevents.sinks.bigquery.export import backfill_range, config_of, target_of
from sysevents.sinks.bigquery.targets import refusal as target_refusal

if TYPE_CHECKING:
    from sysevents.runtime import Runtime

log = logging.getLogger("sysevents.bigquery")


def bigquery_backfill(rt: Runtime, job: Job, *, page_rows: int = PAGE_ROWS) -> Backfill:
    cfg = config_of(job)
    handover = rt.settings.export_handover_seconds
    start, end = backfill_range(job, handover)
    target = target_of(job, rt.settings.project)
    refused = target_refusal(rt.settings, job.aid, cfg.project, cfg.dataset)
    runs = rt.runs
    writer = rt.table_writer

    def deliver(rows: list[dict[str, Any]]) -> tuple[int, int]:
        items = [(row["event_id"], row_from_query(row)) for row in rows]
        results = writer.write(target, items, create_if_missing=cfg.create_if_missing, batched=False)
        refused = 0
        for (event_id, row), res in zip(items, results, strict=True):
            if not res.stored:
                refused += 1
                _dead_letter_row(rt, job, event_id, row, res.reason or "refused")
        return len(items) - refused, refused

    def prepare() -> None:
        if refused:
            raise DeliveryRefused(f"refused target: {refused[1]}")
        writer.table_schema(target, create_if_missing=cfg.create_if_missing)

    def finish() -> int:
        if cfg.mode is ExportMode.BACKFILL_THEN_CONTINUOUS:
            return finish_backfill(rt, job)
        runs.put(job.key, {"state": RunState.DONE.value, "finished_at": datetime.now(UTC)})
        return 0

    return Backfill(
        job=job,
        start=start,
        end=end,
        ready_at=end + timedelta(seconds=handover),
        label=f"BigQuery table {target.id}",
        page_rows=page_rows,
        exclude=target,
        prepare=prepare,
        deliver=deliver,
        finish=finish,
        continues=cfg.mode is ExportMode.BACKFILL_THEN_CONTINUOUS,
        kind=f"{cfg.mode.value} export",
    )


def finish_backfill(rt: Runtime, job: Job) -> int:
    """End a backfill-then-continuous hand-over: write the late events streaming held while the backfill
    ran (those not in the target yet), then mark the run done. Returns how many rows were written."""
    cfg = config_of(job)
    target = target_of(job, rt.settings.project)
    writer = rt.table_writer
    written = 0

    def write_held(docs: list[dict[str, Any]]) -> None:
        nonlocal written
        items = []
        for doc in docs:
            event = event_from_dict(doc["event"])
            if not writer.contains(target, event.id, event.time):
                items.append((event.id, row_of_event(event, published_at=doc.get("published_at"))))
        for (event_id, row), res in zip(
            items,
            writer.write(target, items, create_if_missing=cfg.create_if_missing, batched=False),
            strict=True,
        ):
            if res.stored:
                written += 1
            else:
                _dead_letter_row(rt, job, event_id, row, res.reason or "refused")

    rt.runs.finish(job.key, write_held)
    return written


def _dead_letter_row(rt: Runtime, job: Job, event_id: str, row: dict[str, Any], reason: str) -> None:
    """A refused row is dead-lettered as a delivery of its event to the job (replayable: a replayed row is
    written if the target lacks it), with attribute `source: backfill`."""
    delivery = Delivery.of(event_of_row(row), job)
    attrs = {**delivery.attributes(), "source": "backfill"}
    dead_letter(
        rt, rt.topology.sinks[SINK].dead_letter_topic, delivery.to_json(), attrs, reason, 1,
        delivery=delivery, job=job,
    )  # fmt: skip
    rt.accounting.record(
        job, event_id=event_id, delivery_id=delivery.id, attempt=1, outcome="dead_lettered",
        first_seen=True, error=reason,
    )  # fmt: skip
    log.warning("export %s/%s: row for event %s refused: %s", job.aid, job.id, event_id, reason)
