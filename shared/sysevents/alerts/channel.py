"""The one interface between the alert engine (sysevents.alerts.engine) and a channel: the webhook channel
(Slack, Teams, PagerDuty or any receiver: sysevents.sinks.webhook.channel) and the email channel
(sysevents.sinks.email.channel). The engine decides *whether* and *when* to notify; a channel renders a
notification's payload (kept in the outbox, so it holds no secret) and sends it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sysevents.delivery.attempt import Attempt
    from sysevents.delivery.outcome import Outcome
    from sysevents.jobs.model import Job


class Channel(Protocol):
    name: str

    def gate(self, job: Job, attempt: Attempt) -> Outcome | None:
        """Before a send: a wait when the destination cannot take it now (its rate limit, or the pace it
        asked for, puts it later); None to send now."""

    def answer(self, job: Job, attempt: Attempt, outcome: Outcome) -> Outcome:
        """After a send: what the destination's answer comes to (a "slow down" becomes a wait)."""

    def single(self, job: Job, ce: dict[str, Any], link: str, key: str) -> dict[str, Any]:
        """The payload of one alert (`ce`: the event's CloudEvents envelope; `key`: the alert's identity)."""

    def digest(self, job: Job, digest: dict[str, Any], key: str, dedup: str) -> dict[str, Any]:
        """The payload of a group's digest (sysevents.alerts.digest); `dedup`: the group's identity."""

    def resolved(
        self, job: Job, ce: dict[str, Any], alert: dict[str, Any], key: str, dedup: str
    ) -> dict[str, Any]:
        """The payload saying `ce` resolved `alert` (the event that fired it), sent under `dedup`."""

    def send(
        self, job: Job, oid: str, payload: dict[str, Any], kind: str, created_at: datetime | None
    ) -> Outcome:
        """Send a notification (outbox entry `oid`): delivered, retry or permanent."""

    def incidents(self, job: Job) -> bool:
        """True when the destination keeps one incident per group (PagerDuty): a group's alert resolves only
        once nothing in the group fires any more."""
