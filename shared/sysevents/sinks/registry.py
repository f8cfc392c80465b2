"""Every sink by its topology name: its class (imported on first use: a sink module is heavier than its
config), and the instance each function instance keeps (it holds per-instance state: batches, pacing,
timers), reached through the Runtime.

Who needs a sink by name rather than by class: the backfills of one-time exports (`backfill_of`: a tick or
`sysevents export run` advances BigQuery and webhook backfills alike) and the HTTP entry of a sink's
function (sysevents.entry).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sysevents.backfill.engine import Backfill
    from sysevents.delivery.sink import Sink
    from sysevents.jobs.model import Job
    from sysevents.runtime import Runtime

SINKS = {
    "webhook": "sysevents.sinks.webhook.sink:WebhookSink",
    "bigquery": "sysevents.sinks.bigquery.sink:BigQuerySink",
    "email": "sysevents.sinks.email.sink:EmailSink",
    "audit": "sysevents.sinks.audit.sink:AuditSink",
}
"""Topology sink (or job-less sink) name -> `module:class` of its Sink subclass."""


def sink_class(name: str) -> type[Sink]:
    module, _, cls = SINKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def sink(rt: Runtime, name: str) -> Sink:
    """The instance's one sink object of that name."""
    return rt.part(f"sink:{name}", lambda: sink_class(name)(rt))


def backfill_of(rt: Runtime, job: Job, **kw: Any) -> Backfill:
    """The backfill of a job, from its sink (BigQuery one_time and backfill_then_continuous exports,
    webhook batch exports); ValueError when the job has none."""
    return sink(rt, job.sink).backfill(job, **kw)
