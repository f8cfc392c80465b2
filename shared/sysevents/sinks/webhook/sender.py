"""The guarded, signed HTTP sender: render a job's template, check the destination, sign, POST, classify.

Used by webhook deliveries, webhook batch exports and alert notifications alike; it returns the envelope's
`Outcome` (sysevents.delivery.outcome): delivered (2xx), retry (408, 425, 5xx, timeouts, connection
errors), pushed back (429, or 503 with a Retry-After: "slow down", a wait and not a failure) or permanent.

Signatures follow Standard Webhooks (https://www.standardwebhooks.com): `webhook-id` is derived from
the job and event ids, so every retry (and a replay) of one delivery carries the same id and receivers
can de-duplicate; `webhook-timestamp` is the time of the attempt; `webhook-signature` holds one
`v1,<base64 HMAC-SHA256>` per configured secret (two during a rotation), made by the `standardwebhooks`
library over `<id>.<timestamp>.<body>`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import requests
import urllib3
from standardwebhooks import Webhook

from sysevents.config import Settings
from sysevents.delivery.message import Delivery, delivery_id
from sysevents.delivery.outcome import Kind, Outcome
from sysevents.delivery.waits import retry_after_seconds
from sysevents.jobs.model import Job
from sysevents.jobs.secrets import unseal, unseal_all
from sysevents.net.destinations import Deadline, RefusedDestination, check_url, guarded_session
from sysevents.sinks.webhook.config import WebhookConfig
from sysevents.templates import TemplateError

log = logging.getLogger("sysevents.webhook")
USER_AGENT = "sysevents-webhook/0.1"
RETRYABLE_STATUS = frozenset({408, 425, 429})
PUSHBACK_STATUS = frozenset({429})
"""Answers that mean "slow down" (as does a 503 with a Retry-After): a wait, never a failed attempt."""

Renderer = Callable[..., bytes]


def classify(status: int) -> Kind:
    if 200 <= status < 300:
        return Kind.DELIVERED
    if status in RETRYABLE_STATUS or status >= 500:
        return Kind.RETRY
    return Kind.PERMANENT


webhook_id = delivery_id
"""Stable per (job, event), or per (job, set of events) for a batch (sysevents.delivery.message.delivery_id)."""


def signature_headers(
    secrets: Sequence[str], msg_id: str, body: bytes, now: datetime | None = None
) -> dict[str, str]:
    now = now or datetime.now(UTC)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp()))}
    if secrets:
        text = body.decode()
        headers["webhook-signature"] = " ".join(Webhook(s).sign(msg_id, now, text) for s in secrets)
    return headers


class WebhookSender:
    def __init__(self, settings: Settings, *, renderer: Renderer, session: requests.Session | None = None):
        self.settings = settings
        self.session = session or guarded_session(settings.destination_allowlist)
        self.render = renderer  # the template sandbox's render (Runtime.sandbox): (template, event, *,
        # max_output_bytes, aid) -> body, the account's renders taking their turns in the sandbox

    def send(
        self, job: Job, deliveries: Delivery | Sequence[Delivery], *, template: Any = ..., batch: bool = False
    ) -> Outcome:
        """POST one delivery (or, with `batch`, a JSON array of several). `template` overrides the job's."""
        config = job.config
        assert isinstance(config, WebhookConfig)
        items = [deliveries] if isinstance(deliveries, Delivery) else list(deliveries)
        template = config.json_template if template is ... else template
        try:
            bodies = [
                self.render(
                    template,
                    d.event.to_cloudevent(),
                    max_output_bytes=self.settings.template_max_output_bytes,
                    aid=job.aid,
                )
                for d in items
            ]
        except TemplateError as err:
            return Outcome.permanent(f"template error: {err}", counts_against_receiver=False)
        body = b"[" + b",".join(bodies) + b"]" if batch else bodies[0]
        return self.post(job, body, webhook_id(job.id, [d.event.id for d in items]))

    def _overran(self, started: float) -> Outcome:
        total = self.settings.webhook_total_timeout
        return Outcome.retry(f"timed out: the receiver took over {total:g} s in all", latency_ms=_ms(started))

    def _headers(self, config: WebhookConfig, body: bytes, msg_id: str, content_type: str) -> dict[str, str]:
        """The job's headers (unsealed), the content type and the Standard Webhooks signatures."""
        secrets = [unseal(s, self.settings.sealing_keys) for s in config.signing_secrets]
        return {
            "User-Agent": USER_AGENT,
            **unseal_all(config.headers, self.settings.sealing_keys),
            "Content-Type": content_type,
            **signature_headers(secrets, msg_id, body),
        }

    def post(self, job: Job, body: bytes, msg_id: str, *, content_type: str = "application/json") -> Outcome:
        """POST a ready body to the job's webhook: destination checks, sealed headers, signatures."""
        config = job.config
        assert isinstance(config, WebhookConfig)
        try:  # the URL itself; the guarded session resolves, checks and pins the address
            check_url(
                config.webhook_url,
                allow_http=self.settings.allow_http,
                allowlist=self.settings.destination_allowlist,
                resolve=None,
            )
        except RefusedDestination as err:
            log.warning("refused destination for job %s/%s: %s", job.aid, job.id, err.detail or err)
            return Outcome.permanent(f"refused destination: {err}")
        headers = self._headers(config, body, msg_id, content_type)
        started = time.perf_counter()
        deadline = Deadline(self.settings.webhook_total_timeout)
        try:
            with (
                deadline,
                self.session.post(
                    config.webhook_url,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    stream=True,
                    timeout=(self.settings.webhook_connect_timeout, self.settings.webhook_read_timeout),
                ) as resp,
            ):
                resp.raw.read(self.settings.webhook_max_response_bytes, decode_content=False)
                status = resp.status_code
                retry_after = resp.headers.get("Retry-After")
        except RefusedDestination as err:
            log.warning("refused destination for job %s/%s: %s", job.aid, job.id, err.detail or err)
            return Outcome.permanent(f"refused destination: {err}", latency_ms=_ms(started))
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as err:
            if deadline.expired:
                return self._overran(started)
            if isinstance(err, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
                return Outcome.retry("timed out", latency_ms=_ms(started))
            return Outcome.retry(f"connection error: {type(err).__name__}", latency_ms=_ms(started))
        if deadline.expired:  # cut off mid-answer (a shut connection reads as its end): not an answer
            return self._overran(started)
        return self._answer(status, retry_after, _ms(started))

    def _answer(self, status: int, retry_after: str | None, latency_ms: float) -> Outcome:
        """What the receiver's answer means: delivered, retry (with its Retry-After) or permanent."""
        kind = classify(status)
        if kind is Kind.DELIVERED:
            return Outcome.delivered(status=status, latency_ms=latency_ms)
        reason = f"HTTP {status} from receiver"
        if 300 <= status < 400:
            reason += ": redirects are not followed"
        wait = None
        if kind is Kind.RETRY:
            wait = retry_after_seconds(retry_after, self.settings.webhook_max_retry_after)
            if wait is not None:
                reason += f" (Retry-After {wait:g} s)"
            if status in PUSHBACK_STATUS or (status == 503 and wait is not None):  # "slow down"
                return Outcome.pushed_back(reason, retry_after=wait, status=status, latency_ms=latency_ms)
        return Outcome(kind, reason, status=status, latency_ms=latency_ms, retry_after=wait)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
