"""The `email_system_events` job config: recipients, Jsonnet templates, and noise control."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from sysevents.alerts.policy import AlertOptions, RateLimit
from sysevents.jobs.model import MAX_TEMPLATE_CHARS, FilterConfig, Workflow, register
from sysevents.sinks.email.addresses import normalize_recipients

SINK = "email"


class EmailConfig(FilterConfig, AlertOptions):
    """Email alerts (sysevents.sinks.email, sysevents.alerts): recipients, templates, noise control
    (grouping, silences, mute windows, resolve_on, digest_template: sysevents.alerts.policy.AlertOptions)."""

    recipients: tuple[str, ...]
    subject_template: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARS)
    body_template: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARS)
    rate_limit: RateLimit | None = None

    def limit(self) -> RateLimit | None:
        return self.rate_limit

    @field_validator("recipients", mode="before")
    @classmethod
    def _recipients(cls, v: Any) -> Any:
        return normalize_recipients(v)

    # The templates are checked at save time (admin API: sysevents.admin.validation), not here: every
    # function's job cache loads every job, and loading must stay cheap (no template sandbox).


register(Workflow.EMAIL, SINK, EmailConfig)
