"""The `webhook_system_events` job config: destination, headers, template and delivery options.

Header rules live in sysevents.sinks.webhook.headers; what is checked and sealed at save time in
sysevents.sinks.webhook.saving.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sysevents.alerts.policy import AlertOptions, RateLimit
from sysevents.events.model import ordering_key
from sysevents.jobs.model import MAX_TEMPLATE_CHARS, FilterConfig, Saving
from sysevents.jobs.secrets import is_sealed
from sysevents.sinks.webhook.headers import MAX_HEADERS, check_header_name, check_header_value

if TYPE_CHECKING:
    from sysevents.events.model import SystemEvent
    from sysevents.jobs.model import Job

SINK = "webhook"


def is_whsec(secret: str) -> bool:
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return False
    return secret.startswith("whsec_") and 24 <= len(key) <= 64


class BatchExport(BaseModel):
    """A one-time export of `[start_time, end_time)` of the account's audit log to the webhook, in POSTs of
    at most `max_events` events: NDJSON (`application/x-ndjson`) or a JSON array
    (sysevents.sinks.webhook.batch_export)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_time: datetime
    end_time: datetime
    format: Literal["ndjson", "json"] = "ndjson"
    max_events: int = Field(default=100, ge=1, le=10_000)

    @field_validator("start_time", "end_time")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v

    @model_validator(mode="after")
    def _range(self) -> BatchExport:
        if self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")
        return self


SLACK_HOSTS = ("hooks.slack.com",)
SLACK_RATE_PER_SECOND = 1.0
PAGERDUTY_HOSTS = ("events.pagerduty.com", "events.eu.pagerduty.com")
TEAMS_HOST_SUFFIXES = (".webhook.office.com", ".logic.azure.com", ".environment.api.powerplatform.com")
CHANNELS = ("auto", "slack", "teams", "pagerduty", "webhook")


def channel_of(url: str) -> str:
    """The channel a webhook URL belongs to: slack, teams, pagerduty, or webhook (any other receiver)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in SLACK_HOSTS:
        return "slack"
    if host in PAGERDUTY_HOSTS:
        return "pagerduty"
    if host.endswith(TEAMS_HOST_SUFFIXES) or host == "webhook.office.com":
        return "teams"
    return "webhook"


class DeliveryRate(BaseModel):
    """A job's delivery rate limit: at most `per_second` on average, `burst` at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_second: float = Field(gt=0, le=1000)
    burst: int = Field(default=1, ge=1, le=1000)


class WebhookConfig(FilterConfig, AlertOptions):
    webhook_url: str = Field(min_length=1, max_length=2048)
    headers: dict[str, str] = Field(default_factory=dict)
    json_template: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARS)
    # Webhook delivery options (sysevents.sinks.webhook; docs/webhooks.md).
    signing_secrets: tuple[str, ...] = Field(default=(), max_length=2)
    """Standard Webhooks secrets (`whsec_<base64>`); each delivery is signed with every one (rotation)."""
    ordered: bool = False
    """Deliver in order per subject (Pub/Sub ordering key `<job key>/<subject_id>`)."""
    batch_max_size: int = Field(default=1, ge=1, le=500)
    """Events per POST (a JSON array when > 1)."""
    batch_max_wait_ms: int = Field(default=0, ge=0, le=10_000)
    """How long an event waits for others to share its POST."""
    auto_disable_failures: int = Field(default=10, ge=0, le=100_000)
    """Pause the job after this many consecutive failed attempts (0: never)..."""
    auto_disable_seconds: int = Field(default=5 * 86400, ge=0, le=30 * 86400)
    """... spanning at least this many seconds with no successful delivery (default: 5 days of nothing
    but failures, as Svix does)."""
    rate_limit: DeliveryRate | None = None
    """Deliveries per second (and burst) for the whole job, across instances; Slack incoming webhooks get
    1 per second unless set."""
    batch_export: BatchExport | None = None
    """Set: a one-time batch export of a time range of the audit log (no live deliveries)."""
    # Alerting (sysevents.alerts; docs/alerts.md): grouping, silences, mute_windows,
    # resolve_on and digest_template come from AlertOptions.
    channel: Literal["auto", "slack", "teams", "pagerduty", "webhook"] = "auto"
    """The receiver's kind, for the default alert formats (auto: from the URL's host)."""
    notify_limit: RateLimit | None = None
    """At most this many notifications per window; the rest go out as one "held back" digest."""
    resolve_template: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARS)
    """Jsonnet for a resolved alert's body, with `event` (the resolving event) and `alert` (the firing one)."""
    routing_key: str | None = Field(default=None, min_length=1, max_length=4096)
    """PagerDuty Events API v2 integration key (stored sealed, shown redacted)."""

    @field_validator("signing_secrets", mode="before")
    @classmethod
    def _secrets(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        for secret in v or ():
            if not isinstance(secret, str) or not (is_sealed(secret) or is_whsec(secret)):
                raise ValueError("signing secrets must look like whsec_<base64 of 24 to 64 bytes>")
        return v

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.lower().startswith(("https://", "http://")):
            raise ValueError("webhook_url must be an https:// URL")
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > MAX_HEADERS:
            raise ValueError(f"at most {MAX_HEADERS} headers")
        for name, value in v.items():
            why = check_header_name(name)
            if why:
                raise ValueError(why)
            why = check_header_value(value, stored=True)
            if why:
                raise ValueError(f"header {name!r} has an invalid value: {why}")
        return v

    def streams(self) -> bool:
        return self.batch_export is None

    def kind(self) -> str:
        """slack, teams, pagerduty or webhook: the configured channel, or the URL's."""
        return channel_of(self.webhook_url) if self.channel == "auto" else self.channel

    def alerting(self) -> bool:
        """True when deliveries go through the alert engine: any noise control or resolution is set, or the
        receiver is PagerDuty (whose events need dedup keys). Otherwise one POST per event, as ever."""
        return (
            bool(self.grouping or self.silences or self.mute_windows or self.resolve_on or self.notify_limit)
            or self.condition() is not None
            or self.kind() == "pagerduty"
        )

    def limit(self) -> RateLimit | None:
        return self.notify_limit

    @model_validator(mode="after")
    def _alert_fit(self) -> WebhookConfig:
        if self.kind() == "pagerduty" and not self.routing_key:
            raise ValueError("a PagerDuty job needs routing_key (the integration key of its service)")
        if self.alerting() and (self.batch_max_size > 1 or self.batch_export is not None):
            raise ValueError("alerting (grouping, resolve_on, silences...) does not combine with batching")
        return self

    def has_backfill(self) -> bool:
        return self.batch_export is not None

    # -- saving and showing (sysevents.sinks.webhook.saving) --------------------------------------------------
    @classmethod
    def before_save(cls, raw: dict[str, Any], saving: Saving) -> dict[str, Any]:
        from sysevents.sinks.webhook import saving as rules

        return rules.before_save(cls, raw, saving)

    def on_save(self, saving: Saving) -> WebhookConfig:
        from sysevents.sinks.webhook import saving as rules

        return rules.on_save(self, saving)

    def view(self, sealing_keys: Any) -> dict[str, Any]:
        from sysevents.sinks.webhook import saving as rules

        return rules.view(super().view(sealing_keys), sealing_keys)

    def delivery_rate(self) -> DeliveryRate | None:
        """The rate limit in force: the configured one, or Slack's 1 per second for Slack webhook URLs."""
        if self.rate_limit is not None:
            return self.rate_limit
        host = (urlsplit(self.webhook_url).hostname or "").lower()
        if host in SLACK_HOSTS:
            return DeliveryRate(per_second=SLACK_RATE_PER_SECOND, burst=1)
        return None

    def ordering_key(self, job: Job, event: SystemEvent) -> str:
        # One key per (job, subject): a subject's events arrive in order while other subjects (and jobs,
        # and accounts: the job key holds the account) are not held up behind a failing one.
        return self.parked_key(job, event) if self.ordered else ""

    def parked_key(self, job: Job, event: SystemEvent) -> str:
        return ordering_key(job.key, event.subject_id)
