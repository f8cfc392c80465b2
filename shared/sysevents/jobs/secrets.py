"""Secrets at rest: job header values are sealed before they reach Firestore, and redacted on the way out.

A sealed value is `sealed:v1:<Fernet token>` (Fernet, from `cryptography`: AES-128-CBC with an
HMAC-SHA256 tag, so a tampered value fails to unseal instead of decrypting to garbage). Keys come from
`SYSEVENTS_SEALING_KEYS` (comma-separated Fernet keys): the first seals, every one unseals, so a key is
rotated by putting a new one first and re-saving the jobs. In production the variable is a Secret
Manager secret mounted as an environment variable of the admin and sink functions, never a literal.
Only the sinks unseal, at send time; the admin API only ever returns `redact(value)`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

SEALED_PREFIX = "sealed:v1:"
REDACTED = "****"


class SealingError(RuntimeError):
    """No sealing key is configured, or the value was sealed with a key no longer configured."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def _text(keys: SecretStr | str | None) -> str:
    if isinstance(keys, SecretStr):
        keys = keys.get_secret_value()
    return keys or ""


def fernet(keys: SecretStr | str | None) -> MultiFernet:
    """The configured keys as one MultiFernet (the first encrypts, all decrypt); SealingError without one."""
    return _fernet(_text(keys))


@cache
def _fernet(keys: str) -> MultiFernet:
    parts = [k.strip() for k in keys.split(",") if k.strip()]
    if not parts:
        raise SealingError("no sealing key configured (set SYSEVENTS_SEALING_KEYS)")
    try:
        return MultiFernet([Fernet(k) for k in parts])
    except ValueError:
        raise SealingError("SYSEVENTS_SEALING_KEYS holds a value that is not a Fernet key") from None


def signing_keys(keys: SecretStr | str | None, purpose: bytes) -> list[bytes]:
    """HMAC keys for `purpose`, one per configured key (the first signs, all verify), derived so that no
    two purposes share a key; SealingError without any."""
    fernet(keys)  # the same checks: at least one, each a Fernet key
    parts = [k.strip() for k in _text(keys).split(",") if k.strip()]
    return [hmac.new(base64.urlsafe_b64decode(k), purpose, hashlib.sha256).digest() for k in parts]


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED_PREFIX)


def seal(value: str, keys: SecretStr | str | None = None) -> str:
    """Seal a clear value (an already sealed value is returned unchanged)."""
    if is_sealed(value):
        return value
    return SEALED_PREFIX + _fernet(_text(keys)).encrypt(value.encode()).decode()


def unseal(value: str, keys: SecretStr | str | None = None) -> str:
    """The clear value of a sealed one; a value that was never sealed is returned as is."""
    if not is_sealed(value):
        return value
    try:
        return _fernet(_text(keys)).decrypt(value[len(SEALED_PREFIX) :].encode()).decode()
    except InvalidToken:
        raise SealingError("a sealed value does not unseal with the configured keys (rotated out?)") from None


def unseal_all(values: dict[str, str], keys: SecretStr | str | None = None) -> dict[str, str]:
    return {k: unseal(v, keys) for k, v in values.items()}


def redact(clear: str) -> str:
    """What the API shows instead of a secret: `****` plus the last two characters of long values."""
    return REDACTED + clear[-2:] if len(clear) >= 12 else REDACTED
