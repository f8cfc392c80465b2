"""The webhook channel of the alert engine (sysevents.alerts.engine): Slack, Teams, PagerDuty or any receiver
(the job's `channel`, or its URL), through the same guarded, signed sender as exports
(sysevents.sinks.webhook.sender), with the job's `json_template` for single alerts, `digest_template` for
digests, `resolve_template` for resolutions, or the channel's defaults (sysevents.sinks.webhook.formats).

A notification's payload (what the outbox keeps between rendering and sending) holds no secret: a PagerDuty
routing key joins the body at send time, from the job's sealed config.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sysevents.config import Settings
from sysevents.delivery.attempt import Attempt
from sysevents.delivery.outcome import Outcome
from sysevents.jobs.model import Job
from sysevents.jobs.secrets import is_sealed, unseal
from sysevents.sinks.webhook import formats
from sysevents.templates import TemplateError

MAX_NOTIFICATION_BYTES = 512 * 1024


class WebhookChannel:
    name = "webhook"

    def __init__(self, settings: Settings, sender, sandbox, pacing=None):
        self.settings = settings
        self.sender = sender
        self.sandbox = sandbox  # the template sandbox: the job's own templates render there
        self.pacing = pacing

    def gate(self, job: Job, attempt: Attempt) -> Outcome | None:
        return self.pacing.gate(job, attempt) if self.pacing is not None else None

    def answer(self, job: Job, attempt: Attempt, outcome: Outcome) -> Outcome:
        return self.pacing.answer(job, attempt, outcome) if self.pacing is not None else outcome

    def incidents(self, job: Job) -> bool:
        return job.config.kind() == "pagerduty"

    @staticmethod
    def _dump(value: Any) -> dict[str, Any]:
        body = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        if len(body.encode()) > MAX_NOTIFICATION_BYTES:
            raise TemplateError(
                f"the notification is {len(body.encode())} bytes; the limit is {MAX_NOTIFICATION_BYTES}"
            )
        return {"body": body}

    def _own(self, job: Job, template: str, variables: dict[str, Any], name: str) -> Any:
        return self.sandbox.render_value(template, variables, name=name, aid=job.aid)

    def single(self, job: Job, ce: dict[str, Any], link: str, key: str) -> dict[str, Any]:
        cfg = job.config
        if cfg.json_template:
            return {
                "body": self.sandbox.render(
                    cfg.json_template, ce, max_output_bytes=MAX_NOTIFICATION_BYTES, aid=job.aid
                ).decode()
            }
        return self._dump(formats.single_body(cfg.kind(), ce, link, dedup_key=key))

    def digest(self, job: Job, digest: dict[str, Any], key: str, dedup: str) -> dict[str, Any]:
        cfg = job.config
        if cfg.digest_template:
            return self._dump(self._own(job, cfg.digest_template, {"digest": digest}, "digest_template"))
        return self._dump(formats.digest_body(cfg.kind(), digest, dedup_key=dedup))

    def resolved(
        self, job: Job, ce: dict[str, Any], alert: dict[str, Any], key: str, dedup: str
    ) -> dict[str, Any]:
        cfg = job.config
        if cfg.resolve_template:
            return self._dump(
                self._own(job, cfg.resolve_template, {"event": ce, "alert": alert}, "resolve_template")
            )
        return self._dump(formats.resolved_body(cfg.kind(), ce, alert, dedup_key=dedup))

    def send(
        self, job: Job, oid: str, payload: dict[str, Any], kind: str, created_at: datetime | None = None
    ) -> Outcome:
        cfg = job.config
        body = payload["body"]
        if cfg.kind() == "pagerduty":  # the integration key joins the body only on its way out
            doc = json.loads(body)
            if isinstance(doc, dict) and cfg.routing_key and not doc.get("routing_key"):
                key = cfg.routing_key
                doc["routing_key"] = unseal(key, self.settings.sealing_keys) if is_sealed(key) else key
                body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
        if self.pacing is None:
            return self.sender.post(job, body.encode(), oid)
        return self.pacing.send(job, lambda: self.sender.post(job, body.encode(), oid))
