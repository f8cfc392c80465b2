"""The email channel of the alert engine (sysevents.alerts.engine): a notification rendered with the email
job's subject/body/digest templates (sysevents.sinks.email.render), sent over SMTP with a Message-ID fixed by what
it is about (a resend after a crash is recognised by receivers)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sysevents.alerts.digest import resolved_text
from sysevents.config import Settings
from sysevents.delivery.attempt import Attempt
from sysevents.delivery.outcome import Outcome
from sysevents.jobs.model import Job
from sysevents.sinks.email.mailer import Mailer, build, message_id
from sysevents.sinks.email.mailer import Outcome as Mail
from sysevents.sinks.email.render import render_digest, render_single


class EmailChannel:
    name = "email"

    def __init__(self, settings: Settings, mailer: Mailer, sandbox):
        self.settings = settings
        self.mailer = mailer
        self.sandbox = sandbox  # the template sandbox: the job's own templates render there

    def gate(self, job: Job, attempt: Attempt) -> Outcome | None:
        return None

    def answer(self, job: Job, attempt: Attempt, outcome: Outcome) -> Outcome:
        return outcome

    def incidents(self, job: Job) -> bool:
        return False

    def _id(self, key: str) -> str:
        return message_id(key, self.settings.email_from)

    def single(self, job: Job, ce: dict[str, Any], link: str, key: str) -> dict[str, Any]:
        cfg = job.config
        email = render_single(
            getattr(cfg, "subject_template", None), getattr(cfg, "body_template", None), ce, link,
            evaluate=self.sandbox.render_value,
        )  # fmt: skip
        return {"subject": email.subject, "body": email.body, "message_id": self._id(key)}

    def digest(self, job: Job, digest: dict[str, Any], key: str, dedup: str) -> dict[str, Any]:
        email = render_digest(job.config.digest_template, digest, evaluate=self.sandbox.render_value)
        return {"subject": email.subject, "body": email.body, "message_id": self._id(key)}

    def resolved(
        self, job: Job, ce: dict[str, Any], alert: dict[str, Any], key: str, dedup: str
    ) -> dict[str, Any]:
        d = ce.get("data") or {}
        text = resolved_text(ce, alert)
        subject = (
            f"[sysevents] Resolved: {d.get('subject_type')} {d.get('subject_id')} (account {d.get('aid')})"
        )
        body = f"{text}\n\nEvent id: {ce.get('id')}\n"
        return {"subject": subject, "body": body, "message_id": self._id(key)}

    def send(
        self, job: Job, oid: str, payload: dict[str, Any], kind: str, created_at: datetime | None = None
    ) -> Outcome:
        cfg = job.config
        msg = build(
            sender=self.settings.email_from,
            recipients=cfg.recipients,
            subject=payload["subject"],
            body=payload["body"],
            msg_id=payload["message_id"],
            date=created_at or datetime.now(UTC),
            headers={"X-Sysevents-Job": job.id, "X-Sysevents-Kind": kind},
        )
        result = self.mailer.send(msg, cfg.recipients)
        if result.outcome is Mail.SENT:
            return Outcome.delivered(result.reason)
        if result.outcome is Mail.PERMANENT:
            return Outcome.permanent(result.reason)
        return Outcome.retry(result.reason)
