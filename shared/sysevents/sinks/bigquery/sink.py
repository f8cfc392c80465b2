"""BigQuery sink: stream one (event, export job) delivery into the job's table, micro-batched.

Each push is answered only once its row is stored (micro-batched with concurrent requests' rows,
sysevents.auditlog.writer), refused with the reason (a bad row, a missing table: permanent), or found
failed (retried). The hand-over rules of backfill-then-continuous jobs are in
sysevents.sinks.bigquery.export (`streaming_decision`). POST /tick advances due backfills a slice at a time
(sysevents.backfill.ticks).
"""

from __future__ import annotations

import logging

from sysevents.auditlog.schema import row_of_event
from sysevents.auditlog.writer import InsertFailed, TableMissing
from sysevents.backfill.ticks import tick
from sysevents.delivery.message import Delivery
from sysevents.delivery.outcome import Outcome
from sysevents.delivery.sink import Attempt, Sink
from sysevents.jobs.model import Job
from sysevents.sinks.bigquery.backfill import bigquery_backfill
from sysevents.sinks.bigquery.config import SINK
from sysevents.sinks.bigquery.export import Decision, config_of, streaming_decision, target_of, watermark_of
from sysevents.sinks.bigquery.targets import refusal as target_refusal

log = logging.getLogger("sysevents.bigquery")


class BigQuerySink(Sink):
    name = SINK
    function = "bigquery"

    def deliver(self, delivery: Delivery, job: Job, attempt: Attempt) -> Outcome:
        rt, event, msg = self.rt, delivery.event, attempt.message
        cfg = config_of(job)
        refused = target_refusal(rt.settings, job.aid, cfg.project, cfg.dataset)
        if refused:
            return Outcome.permanent(f"refused target: {refused[1]}")
        handover = rt.settings.export_handover_seconds
        writer = rt.table_writer
        try:
            if attempt.attributes.get("replay"):
                decision = Decision.WRITE_IF_ABSENT  # a replayed dead letter: written unless already there
            else:
                decision = streaming_decision(
                    job, event, handover_seconds=handover, backfill_done=rt.runs.is_done
                )
            if decision is Decision.SKIP:
                return Outcome.filtered(f"not streamed: job {job.id} is exported by its backfill")
            if decision is Decision.HOLD:
                # Before the watermark while the backfill runs: parked for the backfill to finish with (acked,
                # so it neither slows this subscription down nor runs out of attempts) -- unless the backfill
                # finished in the meantime.
                wm = watermark_of(job, handover)
                if not rt.runs.park_unless_done(job, wm, event, msg.publish_time):
                    return Outcome.accepted(
                        "parked: event before the watermark, the backfill is still running"
                    )
                decision = Decision.WRITE_IF_ABSENT
            target = target_of(job, rt.settings.project)
            # A retry, or Pub/Sub's redelivery of this message (it reports the delivery attempt on every
            # subscription with a dead-letter policy, as these have), may follow a write that landed.
            again = attempt.number > 1 or msg.delivery_attempt > 1
            if (decision is Decision.WRITE_IF_ABSENT or again) and writer.contains(
                target, event.id, event.time
            ):
                return Outcome.delivered("already stored")
            [result] = writer.write(
                target,
                [(event.id, row_of_event(event, published_at=msg.publish_time))],
                create_if_missing=config_of(job).create_if_missing,
            )
        except TableMissing as err:
            return Outcome.permanent(str(err))
        except InsertFailed as err:
            return Outcome.retry(str(err))
        if not result.stored:
            return Outcome.permanent(result.reason or "refused")
        return Outcome.delivered("stored")

    def routes(self):
        return {"/tick": lambda request: tick(self.rt)}

    def backfill(self, job: Job, **kw):
        return bigquery_backfill(self.rt, job, **kw)
