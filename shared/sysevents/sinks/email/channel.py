"""The email channel of the alert engine (sysevents.alerts.engine): a notification rendered with the email
job's subject/body/digest templates (sysevents.sinks.email.render), sent over SMTP with a Message-ID fixed by what
it is about (a resend after a crash is recognised by receivers), one email per recipient the gate keeper
admits (sysevents.sinks.email.consenting: consent and the daily quota), each with its List-Unsubscribe."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from sysevents.alerts.digest import Evaluate, resolved_text
from sysevents.config import Settings
from sysevents.consent.tokens import UNSUBSCRIBE
from sysevents.delivery.attempt import Attempt
from sysevents.delivery.outcome import Kind, Outcome
from sysevents.jobs.model import Job
from sysevents.sinks.email.consenting import Gatekeeper, unsubscribe_headers
from sysevents.sinks.email.mailer import REFUSED, SENT_REFUSED, Mailer, Result, build, message_id
from sysevents.sinks.email.mailer import Outcome as Mail
from sysevents.sinks.email.render import render_digest, render_single


class EmailChannel:
    name = "email"

    def __init__(self, settings: Settings, mailer: Mailer, sandbox, gate_keeper: Gatekeeper):
        self.settings = settings
        self.mailer = mailer
        self.sandbox = sandbox  # the template sandbox: the job's own templates render there
        self.gate_keeper = gate_keeper  # consent and quota (sysevents.sinks.email.consenting)

    def gate(self, job: Job, attempt: Attempt) -> Outcome | None:
        return None

    def answer(self, job: Job, attempt: Attempt, outcome: Outcome) -> Outcome:
        return outcome

    def incidents(self, job: Job) -> bool:
        return False

    def _evaluate(self, job: Job) -> Evaluate:
        """The job's own templates run in the sandbox, in its account's turns."""
        return functools.partial(self.sandbox.render_value, aid=job.aid)

    def _id(self, key: str) -> str:
        return message_id(key, self.settings.email_from)

    def single(self, job: Job, ce: dict[str, Any], link: str, key: str) -> dict[str, Any]:
        cfg = job.config
        email = render_single(
            getattr(cfg, "subject_template", None), getattr(cfg, "body_template", None), ce, link,
            evaluate=self._evaluate(job),
        )  # fmt: skip
        footer = not getattr(cfg, "body_template", None)  # the job's own body is the job's: only the header
        return {"subject": email.subject, "body": email.body, "message_id": self._id(key), "footer": footer}

    def digest(self, job: Job, digest: dict[str, Any], key: str, dedup: str) -> dict[str, Any]:
        email = render_digest(job.config.digest_template, digest, evaluate=self._evaluate(job))
        footer = not job.config.digest_template
        return {"subject": email.subject, "body": email.body, "message_id": self._id(key), "footer": footer}

    def resolved(
        self, job: Job, ce: dict[str, Any], alert: dict[str, Any], key: str, dedup: str
    ) -> dict[str, Any]:
        d = ce.get("data") or {}
        text = resolved_text(ce, alert)
        subject = (
            f"[sysevents] Resolved: {d.get('subject_type')} {d.get('subject_id')} (account {d.get('aid')})"
        )
        body = f"{text}\n\nEvent id: {ce.get('id')}\n"
        return {"subject": subject, "body": body, "message_id": self._id(key), "footer": True}

    def send(
        self, job: Job, oid: str, payload: dict[str, Any], kind: str, created_at: datetime | None = None
    ) -> Outcome:
        """One email per admitted recipient (each with its own unsubscribe link), over one connection."""
        admitted = self.gate_keeper.admit(job, datetime.now(UTC))
        if admitted.refused is not None:
            return admitted.refused
        messages = [(self._message(job, payload, kind, created_at, to), (to,)) for to in admitted.receiving]
        results = self.mailer.send_each(messages)
        outcome = _outcome(results)
        if admitted.note and outcome.kind is Kind.DELIVERED:
            return outcome.but(reason=f"{outcome.reason}; held: {admitted.note}")
        return outcome

    def _message(self, job: Job, payload: dict[str, Any], kind: str, created_at: datetime | None, to: str):
        body = payload["body"]
        stop = self.gate_keeper.link(UNSUBSCRIBE, job.aid, to)
        if payload.get("footer") and stop:
            body = f"{body.rstrip()}\n\n--\nStop these emails: {stop}\n"
        return build(
            sender=self.settings.email_from,
            recipients=(to,),
            subject=payload["subject"],
            body=body,
            msg_id=payload["message_id"],
            date=created_at or datetime.now(UTC),
            headers={"X-Sysevents-Job": job.id, "X-Sysevents-Kind": kind,
                     **unsubscribe_headers(stop)},
        )  # fmt: skip


def _outcome(results: list[Result]) -> Outcome:
    """The notification's outcome from each recipient's message: delivered when any got it (the others
    named), dead when every one was refused for good, else retried."""
    if len(results) == 1:
        [r] = results
        reason = r.reason
    else:
        failed = [r.reason for r in results if r.outcome is not Mail.SENT]
        refusals = [f.removeprefix(REFUSED) for f in failed if f.startswith(REFUSED)]
        others = [f for f in failed if not f.startswith(REFUSED)]
        sent_refused = [r.reason.partition(SENT_REFUSED)[2] for r in results if SENT_REFUSED in r.reason]
        refused = "; ".join(refusals + sent_refused)
        reason = "sent" + (f"; refused by the SMTP server: {refused}" if refused else "")
        reason += "".join(f"; not sent: {o}" for o in others)
    if any(r.outcome is Mail.SENT for r in results):
        return Outcome.delivered(reason)
    if all(r.outcome is Mail.PERMANENT for r in results):
        return Outcome.permanent("; ".join(r.reason for r in results) if len(results) > 1 else reason)
    return Outcome.retry("; ".join(r.reason for r in results) if len(results) > 1 else reason)
