"""A real SMTP server for the local stack and the tests (aiosmtpd): STARTTLS with a self-signed
certificate, AUTH required, messages kept in memory (and shown by `sysevents dev`).

Recipients can ask for failures, to try retries and dead-lettering: an address whose local part
contains `+smtp451` is refused with 451 (temporary), `+smtp550` with 550 (permanent).
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import logging
import secrets
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from sysevents.local.processes import free_port


@dataclass(frozen=True)
class Mail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    received_at: float = field(default_factory=time.time)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        return part.get_content().replace("\r\n", "\n") if part is not None else ""


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost (it is also its own CA file) and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sysevents local SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    key_path.chmod(0o600)
    return cert_path, key_path


class _Handler:
    def __init__(self, server: SmtpServer):
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd API
        local = address.partition("@")[0]
        if "+smtp451" in local:
            return "451 4.3.0 Temporary failure (asked for by the address)"
        if "+smtp550" in local:
            return "550 5.1.1 Mailbox unavailable (asked for by the address)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        msg = email.message_from_bytes(
            envelope.original_content or envelope.content, policy=email.policy.default
        )
        self.server._received(Mail(envelope.mail_from, tuple(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 Message accepted"


class SmtpServer:
    """`start()` listens on 127.0.0.1 on `port` (else a free one); `env()` gives the SYSEVENTS_SMTP_* settings
    for it."""

    def __init__(
        self,
        workdir: Path,
        on_receive: Callable[[Mail], None] | None = None,
        *,
        echo: bool = False,
        port: int | None = None,
    ):
        self.workdir = Path(workdir)
        self.on_receive = on_receive
        self.echo = echo
        self.username = "sysevents"
        self.password = secrets.token_urlsafe(16)
        self.port = port or 0
        self.mails: list[Mail] = []
        self._cond = threading.Condition()
        self._controller: Controller | None = None
        self.cert_path: Path | None = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.username
              and secrets.compare_digest(auth_data.password.decode(), self.password))  # fmt: skip
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def start(self) -> SmtpServer:
        logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's per-login deprecation notice
        self.cert_path, key_path = self_signed(self.workdir)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_path, key_path)
        self.port = self.port or free_port()
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, server_hostname="localhost",
            tls_context=ctx, require_starttls=True, auth_required=True, authenticator=self._authenticate,
        )  # fmt: skip
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def env(self) -> dict[str, str]:
        return {
            "SYSEVENTS_SMTP_HOST": "127.0.0.1",
            "SYSEVENTS_SMTP_PORT": str(self.port),
            "SYSEVENTS_SMTP_SECURITY": "starttls",
            "SYSEVENTS_SMTP_USERNAME": self.username,
            "SYSEVENTS_SMTP_PASSWORD": self.password,
            "SYSEVENTS_SMTP_CA_FILE": str(self.cert_path),
            "SYSEVENTS_EMAIL_FROM": "sysevents <alerts@sysevents.local>",
        }

    def _received(self, mail: Mail) -> None:
        with self._cond:
            self.mails.append(mail)
            n = len(self.mails)
            self._cond.notify_all()
        (self.workdir / "mails").mkdir(exist_ok=True)
        (self.workdir / "mails" / f"{n:06d}.eml").write_bytes(mail.message.as_bytes())
        if self.echo:
            print(f"  <- email to {', '.join(mail.rcpt_tos)}: {mail.subject}", flush=True)
        if self.on_receive is not None:
            self.on_receive(mail)

    def wait_for(
        self, predicate: Callable[[Mail], bool], count: int = 1, timeout: float = 30.0
    ) -> list[Mail]:
        """Mails matching `predicate`, once `count` of them arrived or `timeout` passed (then those found)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in self.mails if predicate(m)]
                left = deadline - time.monotonic()
                if len(found) >= count or left <= 0:
                    return found
                self._cond.wait(left)

    def to(self, address: str) -> Callable[[Mail], bool]:
        return lambda m: address in m.rcpt_tos
