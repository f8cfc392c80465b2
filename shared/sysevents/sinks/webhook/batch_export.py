"""Webhook batch export: a one-time export of a time range of the account's audit log to a webhook.

A `webhook_system_events` job with a `batch_export` block (`start_time`, `end_time`, `format`
`"ndjson"`|`"json"`, `max_events`) is not delivered live (ingest never matches it, see `Job.streams`).
Its backfill reads the account's matching events of `[start_time, end_time)` from the audit table in
(time, event id) order, `max_events` rows a page, and POSTs each page's matching events as one body:
NDJSON (`application/x-ndjson`, one rendered event per line) or a JSON array (`application/json`). Each
event is rendered by the job's `json_template` in the sandbox, like live deliveries, and the POST goes
through `WebhookSender.post`: the same destination (SSRF) checks, sealed headers and Standard Webhooks
signatures. `webhook-id` is derived from the job and the batch's event ids, so a batch sent again after
an interruption carries the same id. The cursor moves past a batch only once the receiver answered 2xx.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sysevents.auditlog.schema import event_of_row
from sysevents.backfill.engine import Backfill, DeliveryRefused, DeliveryRetry
from sysevents.backfill.runs import RunState
from sysevents.delivery.outcome import Kind
from sysevents.jobs.model import Job
from sysevents.sinks.webhook.config import WebhookConfig
from sysevents.sinks.webhook.sender import WebhookSender, webhook_id
from sysevents.templates import TemplateError

if TYPE_CHECKING:
    from sysevents.runtime import Runtime

CONTENT_TYPES = {"ndjson": "application/x-ndjson", "json": "application/json"}


def batch_config(job: Job) -> WebhookConfig:
    cfg = job.config
    if not isinstance(cfg, WebhookConfig) or cfg.batch_export is None:
        raise ValueError(f"job {job.id} is not a webhook batch export (config.batch_export)")
    return cfg


def batch_body(rendered: list[bytes], fmt: str) -> bytes:
    """The POST body of a batch: one compact JSON document per line (ndjson), or a JSON array (json)."""
    if fmt == "ndjson":
        lines = [json.dumps(json.loads(b), separators=(",", ":"), ensure_ascii=False) for b in rendered]
        return ("\n".join(lines) + "\n").encode()
    return b"[" + b",".join(rendered) + b"]"


def send_batch(sender: WebhookSender, job: Job, events: list[Any]) -> int:
    """Render and POST one batch of events; raises DeliveryRetry / DeliveryRefused when not delivered."""
    cfg = batch_config(job)
    assert cfg.batch_export is not None
    if not events:
        return 0
    try:
        rendered = [
            sender.render(
                cfg.json_template,
                e.to_cloudevent(),
                max_output_bytes=sender.settings.template_max_output_bytes,
                aid=job.aid,
            )
            for e in events
        ]
    except TemplateError as err:
        raise DeliveryRefused(f"template error: {err}") from None
    body = batch_body(rendered, cfg.batch_export.format)
    result = sender.post(
        job,
        body,
        webhook_id(job.id, [e.id for e in events]),
        content_type=CONTENT_TYPES[cfg.batch_export.format],
    )
    if result.kind is Kind.DELIVERED:
        return len(events)
    if result.kind is Kind.RETRY:
        raise DeliveryRetry(result.reason, result.retry_after)
    raise DeliveryRefused(result.reason)


def webhook_backfill(rt: Runtime, the_sender: WebhookSender, job: Job, **_: Any) -> Backfill:
    cfg = batch_config(job)
    spec = cfg.batch_export
    assert spec is not None

    def deliver(rows: list[dict[str, Any]]) -> tuple[int, int]:
        return send_batch(the_sender, job, [event_of_row(r) for r in rows]), 0

    def finish() -> int:
        rt.runs.put(job.key, {"state": RunState.DONE.value, "finished_at": datetime.now(UTC)})
        return 0

    return Backfill(
        job=job,
        start=spec.start_time,
        end=spec.end_time,
        ready_at=spec.end_time + timedelta(seconds=rt.settings.export_handover_seconds),
        label="webhook",
        page_rows=spec.max_events,
        exclude=None,
        prepare=lambda: None,
        deliver=deliver,
        finish=finish,
        kind=f"batch export ({spec.format})",
    )
