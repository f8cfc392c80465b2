"""The `email_system_events` job config: recipients, Jsonnet templates, and noise control."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import Field, field_validator

from sysevents.alerts.policy import AlertOptions, RateLimit
from sysevents.jobs.model import MAX_TEMPLATE_CHARS, FieldError, FilterConfig, Saving
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

    def on_save(self, saving: Saving) -> EmailConfig:
        """Every template renders against a sample event and digest, in the template sandbox (bounded time and
        memory). At save time only: every function's job cache loads every job, and loading stays cheap."""
        from sysevents.sinks.email.render import InvalidTemplate, check

        try:
            check(
                self.subject_template,
                self.body_template,
                self.digest_template,
                self.grouping.by if self.grouping else (),
                evaluate=functools.partial(saving.sandbox.render_value, aid=saving.aid),
            )
        except InvalidTemplate as err:
            raise FieldError(
                f"config.{err.field}", f"does not render against a sample event: {err}"
            ) from None
        return self
