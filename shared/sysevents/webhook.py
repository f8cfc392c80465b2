"""Webhook delivery: render the job's template, check the destination, POST, classify the outcome."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import requests

from .config import Settings
from .deliveries import Delivery
from .destinations import RefusedDestination, check_url
from .jobs import Job, WebhookConfig
from .secrets import unseal_all
from .templates import TemplateError, render

USER_AGENT = "sysevents-webhook/0.1"
RETRYABLE_STATUS = frozenset({408, 425, 429})


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # transient: let Pub/Sub redeliver
    PERMANENT = "permanent"  # will never succeed as is: dead-letter now


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reason: str
    status: int | None = None
    latency_ms: float | None = None


def classify(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in RETRYABLE_STATUS or status >= 500:
        return Outcome.RETRY
    return Outcome.PERMANENT


class WebhookSender:
    def __init__(self, settings: Settings, session: requests.Session | None = None):
        self.settings = settings
        self.session = session or requests.Session()

    def send(self, job: Job, delivery: Delivery) -> Result:
        config = job.config
        assert isinstance(config, WebhookConfig)
        try:
            body = render(config.json_template, delivery.event.to_cloudevent(),
                          max_output_bytes=self.settings.template_max_output_bytes)
        except TemplateError as err:
            return Result(Outcome.PERMANENT, f"template error: {err}")
        try:
            check_url(config.webhook_url, allow_http=self.settings.allow_http,
                      allowlist=self.settings.destination_allowlist)
        except RefusedDestination as err:
            return Result(Outcome.PERMANENT, f"refused destination: {err}")
        headers = {"User-Agent": USER_AGENT, **unseal_all(config.headers, self.settings.sealing_keys),
                   "Content-Type": "application/json"}
        started = time.perf_counter()
        try:
            with self.session.post(
                config.webhook_url, data=body, headers=headers, allow_redirects=False, stream=True,
                timeout=(self.settings.webhook_connect_timeout, self.settings.webhook_read_timeout),
            ) as resp:
                resp.raw.read(self.settings.webhook_max_response_bytes, decode_content=False)
                status = resp.status_code
        except requests.Timeout:
            return Result(Outcome.RETRY, "timed out", latency_ms=_ms(started))
        except requests.RequestException as err:
            return Result(Outcome.RETRY, f"connection error: {type(err).__name__}", latency_ms=_ms(started))
        outcome = classify(status)
        reason = "delivered" if outcome is Outcome.DELIVERED else f"HTTP {status} from receiver"
        return Result(outcome, reason, status=status, latency_ms=_ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
