"""Who of an email job's recipients may be mailed now, asked first, and within the account's quota.

Before every send (`Gatekeeper.admit`): the account's policy and each recipient's state are read
(sysevents.consent.store). Recipients neither confirmed nor in an allowed domain are *held*: never sent the
alert. Each held one that has not been asked within the period is sent one confirmation email with a signed
link (sysevents.consent.tokens) to the admin API's /consent route; a stranger gets at most one per period.
With nobody left to mail, the notification is filtered with a reason that names the held recipients (in the
job's attempt log). The emails about to go out (one per recipient, confirmations too) are then taken from
the account's daily quota; over it, the notification is dead-lettered with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sysevents.config import Settings
from sysevents.consent import tokens
from sysevents.consent.store import PENDING, UNCONFIRMED, ConsentStore, Recipient
from sysevents.delivery.outcome import Kind, Outcome
from sysevents.jobs.model import Job
from sysevents.jobs.secrets import SealingError
from sysevents.sinks.email.mailer import Mailer, build, message_id
from sysevents.sinks.email.mailer import Outcome as Mail
from sysevents.sinks.email.quota import QuotaStore

log = logging.getLogger("sysevents.email")
CONSENT_PATH = "/consent/"


@dataclass(frozen=True)
class Admission:
    receiving: tuple[str, ...]
    note: str = ""  # what happened to the held recipients ("" when none is held)
    refused: Outcome | None = None  # the notification's outcome when it is not sent at all


class Gatekeeper:
    def __init__(self, settings: Settings, consent: ConsentStore, quota: QuotaStore, mailer: Mailer):
        self.settings = settings
        self.consent = consent
        self.quota = quota
        self.mailer = mailer

    def link(self, purpose: str, aid: str, address: str) -> str | None:
        """The signed link for `address` of account `aid`, or None when links cannot be made here."""
        base = self.settings.consent_url
        if not base:
            return None
        try:
            token = tokens.sign(self.settings.sealing_keys, purpose, aid, address)
        except SealingError:
            return None
        return base.rstrip("/") + CONSENT_PATH + token

    def admit(self, job: Job, now: datetime) -> Admission:
        policy = self.consent.policy(job.aid)
        states = self.consent.states(job.aid, job.config.recipients, policy)
        receiving = tuple(r.address for r in states if r.receives)
        limit = policy.daily_quota or self.settings.email_daily_quota
        held = [r for r in states if not r.receives]
        note = self._ask(job, held, limit, now) if held else ""
        if not receiving:
            reason = f"held: no recipient has confirmed or is in an allowed domain ({note})"
            return Admission((), note, Outcome(Kind.FILTERED, reason, counts_against_receiver=False))
        if self.quota.take(job.aid, len(receiving), limit, now) is None:
            reason = f"over the account's daily email quota ({limit} emails per UTC day); not sent"
            return Admission((), note, Outcome.permanent(reason, counts_against_receiver=False))
        return Admission(receiving, note)

    def _ask(self, job: Job, held: list[Recipient], limit: int, now: datetime) -> str:
        """Send confirmations to the held recipients due one; describe each held recipient's state."""
        due = [r for r in held if r.state == UNCONFIRMED or (r.state == PENDING and self._lapsed(r, now))]
        said = {r.address: r.state for r in held}
        if due and not self.settings.consent_url:
            said.update({r.address: "unconfirmed; no confirmation sent: SYSEVENTS_CONSENT_URL is not set"
                         for r in due})  # fmt: skip
            due = []
        if due and self.quota.take(job.aid, len(due), limit, now) is None:
            said.update({r.address: "unconfirmed; no confirmation sent: over the daily quota" for r in due})
            due = []
        asked = [r.address for r in due if self.consent.invite(job.aid, r.address, now)]
        if asked:
            results = self.mailer.send_each([(self._confirmation(job, a, now), (a,)) for a in asked])
            for address, result in zip(asked, results, strict=True):
                ok = result.outcome is Mail.SENT
                said[address] = "confirmation sent" if ok else f"confirmation not sent: {result.reason}"
                log.info("email: confirmation for %s of account %s: %s", address, job.aid, said[address])
        return "; ".join(f"{a}: {s}" for a, s in said.items())

    def _lapsed(self, r: Recipient, now: datetime) -> bool:
        return r.invited_at is None or r.invited_at <= now - self.consent.period

    def _confirmation(self, job: Job, address: str, now: datetime):
        confirm = self.link(tokens.CONFIRM, job.aid, address)
        stop = self.link(tokens.UNSUBSCRIBE, job.aid, address)
        hours = f"{self.settings.email_confirm_hours:g}"
        body = (
            f"Account {job.aid} of sysevents asked to send alert emails (job {job.name or job.id}) to "
            f"{address}.\n\nTo receive them, open this link and confirm:\n{confirm}\n\n"
            f"The link is good for {hours} hours. If you did not expect this, ignore this email: you get no "
            f"alerts, and at most one request like this every {hours} hours.\n\n"
            f"Never ask me again:\n{stop}\n"
        )
        return build(
            sender=self.settings.email_from,
            recipients=(address,),
            subject=f"[sysevents] Confirm alert emails from account {job.aid}",
            body=body,
            msg_id=message_id(f"confirm/{job.aid}/{address}/{now.isoformat()}", self.settings.email_from),
            date=now,
            headers={"X-Sysevents-Kind": "confirmation", **unsubscribe_headers(stop)},
        )


def unsubscribe_headers(stop: str | None) -> dict[str, str]:
    """RFC 2369 List-Unsubscribe and RFC 8058 one-click for the unsubscribe link `stop`, if there is one."""
    if stop is None:
        return {}
    return {"List-Unsubscribe": f"<{stop}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
