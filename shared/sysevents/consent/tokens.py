"""Signed consent links: a token names (purpose, account, address) and when it was made.

A token is a Fernet token (sysevents.jobs.secrets: the deployment's sealing keys, so rotation works the same
way) over a small JSON document: authenticated (a changed token fails), opaque (the address is not readable
in the link) and timestamped. A `confirm` token is good for `ttl` seconds from when it was made; an
`unsubscribe` token does not expire (a link in an old email must still stop the mail).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from cryptography.fernet import InvalidToken
from pydantic import SecretStr

from sysevents.jobs.secrets import fernet

CONFIRM = "confirm"
UNSUBSCRIBE = "unsubscribe"
PURPOSES = (CONFIRM, UNSUBSCRIBE)


class InvalidLink(ValueError):
    """Not a token of this deployment, changed, or expired (the message says which)."""


@dataclass(frozen=True)
class Grant:
    purpose: str
    aid: str
    address: str
    issued_at: float


def sign(keys: SecretStr | str | None, purpose: str, aid: str, address: str, now: float | None = None) -> str:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    body = json.dumps({"v": 1, "p": purpose, "a": aid, "e": address}, separators=(",", ":")).encode()
    return fernet(keys).encrypt_at_time(body, int(now if now is not None else time.time())).decode()


def verify(keys: SecretStr | str | None, token: str, ttl: float, now: float | None = None) -> Grant:
    """The grant a token carries; InvalidLink if it is not ours or (a confirm token) older than `ttl`."""
    f = fernet(keys)
    try:
        body = json.loads(f.decrypt(token.encode()))
        issued = f.extract_timestamp(token.encode())
    except (InvalidToken, ValueError, UnicodeError):
        raise InvalidLink("this link is not valid (changed, or not from this service)") from None
    if not isinstance(body, dict) or body.get("v") != 1 or body.get("p") not in PURPOSES:
        raise InvalidLink("this link is not valid (changed, or not from this service)")
    if not isinstance(body.get("a"), str) or not isinstance(body.get("e"), str):
        raise InvalidLink("this link is not valid (changed, or not from this service)")
    age = (now if now is not None else time.time()) - issued
    if body["p"] == CONFIRM and age > ttl:
        raise InvalidLink("this confirmation link has expired; the next alert sends a new one")
    return Grant(body["p"], body["a"], body["e"], issued)
