"""Sending one email over SMTP (STARTTLS or implicit TLS, AUTH), and classifying failures.

Failures the same message could get past later (connection errors, 4xx replies, AUTH or TLS problems a
deployment fix resolves) are RETRY; refusals of this message (5xx for every recipient or for the data)
are PERMANENT and dead-lettered at once.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from enum import StrEnum

from sysevents.config import Settings

log = logging.getLogger("sysevents.email")
USER_AGENT = "sysevents-alerts/0.1"
REFUSED = "recipients refused: "
SENT_REFUSED = "sent; refused by the SMTP server: "


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reason: str
    refused: tuple[str, ...] = ()


def message_id(key: str, from_address: str) -> str:
    """A Message-ID fixed by `key` (e.g. job + event): a resend after a crash carries the same id."""
    domain = parseaddr(from_address)[1].rpartition("@")[2] or "sysevents.invalid"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{domain}>"


def build(
    *,
    sender: str,
    recipients: tuple[str, ...],
    subject: str,
    body: str,
    msg_id: str,
    date: datetime,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(str(Address(addr_spec=r)) for r in recipients)
    msg["Subject"] = subject
    msg["Message-ID"] = msg_id
    msg["Date"] = format_datetime(date)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to alerts
    msg["X-Mailer"] = USER_AGENT
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    return msg


class Mailer:
    def __init__(self, settings: Settings):
        self.settings = settings

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        ctx = ssl.create_default_context(cafile=s.smtp_ca_file)
        if s.smtp_security == "tls":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                s.smtp_host or "", s.smtp_port, timeout=s.smtp_timeout, context=ctx
            )
        else:
            conn = smtplib.SMTP(s.smtp_host or "", s.smtp_port, timeout=s.smtp_timeout)
        try:
            conn.ehlo()
            if s.smtp_security == "starttls":
                conn.starttls(context=ctx)
                conn.ehlo()
            if s.smtp_username:
                password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                conn.login(s.smtp_username, password)
        except BaseException:
            conn.close()
            raise
        return conn

    def send(self, msg: EmailMessage, recipients: tuple[str, ...]) -> Result:
        return self.send_each([(msg, recipients)])[0]

    def send_each(self, items: list[tuple[EmailMessage, tuple[str, ...]]]) -> list[Result]:
        """Each (message, its recipients) over one connection: one Result per message."""
        if not self.settings.smtp_host:
            return [Result(Outcome.RETRY, "SMTP is not configured (set SYSEVENTS_SMTP_HOST)")] * len(items)
        try:
            conn = self._connect()
        except (OSError, smtplib.SMTPException) as err:
            return [_connect_failed(err)] * len(items)
        try:
            return [_send_one(conn, msg, recipients) for msg, recipients in items]
        finally:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                conn.close()


def _connect_failed(err: BaseException) -> Result:
    if isinstance(err, smtplib.SMTPAuthenticationError):
        return Result(Outcome.RETRY, f"SMTP AUTH refused: {err.smtp_code} {_text(err.smtp_error)}")
    if isinstance(err, smtplib.SMTPNotSupportedError):
        return Result(Outcome.RETRY, f"SMTP server lacks a required extension: {err}")
    if isinstance(err, ssl.SSLError):
        return Result(Outcome.RETRY, f"TLS error with the SMTP server: {err.reason or err}")
    return Result(Outcome.RETRY, f"cannot connect to the SMTP server: {type(err).__name__}: {err}")


def _send_one(conn: smtplib.SMTP, msg: EmailMessage, recipients: tuple[str, ...]) -> Result:
    try:
        refused = conn.send_message(msg, to_addrs=list(recipients))
    except smtplib.SMTPRecipientsRefused as err:
        codes = {code for code, _ in err.recipients.values()}
        detail = "; ".join(f"{r}: {c} {_text(m)}" for r, (c, m) in err.recipients.items())
        outcome = Outcome.PERMANENT if all(c >= 500 for c in codes) else Outcome.RETRY
        return Result(outcome, REFUSED + detail, refused=tuple(err.recipients))
    except smtplib.SMTPResponseException as err:
        outcome = Outcome.PERMANENT if err.smtp_code >= 500 else Outcome.RETRY
        return Result(outcome, f"SMTP {err.smtp_code} {_text(err.smtp_error)}")
    except (OSError, smtplib.SMTPException) as err:
        return Result(Outcome.RETRY, f"SMTP error: {type(err).__name__}: {err}")
    if refused:  # sent to the others: the refused ones are named in the attempt log, not retried
        detail = "; ".join(f"{r}: {c} {_text(m)}" for r, (c, m) in refused.items())
        log.warning("email: %s refused by the SMTP server: %s", msg.get("Message-ID", ""), detail)
        return Result(Outcome.SENT, SENT_REFUSED + detail, refused=tuple(refused))
    return Result(Outcome.SENT, "sent")


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
