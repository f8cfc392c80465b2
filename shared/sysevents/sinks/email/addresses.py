"""Recipient addresses: checked (syntax only, no DNS) and normalised when an email job is saved."""

from __future__ import annotations

from email.utils import parseaddr

from email_validator import EmailNotValidError, validate_email

MAX_RECIPIENTS = 50


def normalize_address(text: str) -> str:
    """`ops@example.com` or `Ops <ops@example.com>` -> the normalised address, else ValueError."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("an empty recipient")
    if any(c in text for c in "\r\n\0"):
        raise ValueError(f"recipient {text!r} contains control characters")
    _, addr = parseaddr(text.strip())
    if not addr:
        raise ValueError(f"{text!r} is not an email address")
    try:
        return validate_email(addr, check_deliverability=False).normalized
    except EmailNotValidError as err:
        raise ValueError(f"{text!r} is not a valid email address: {err}") from None


def normalize_recipients(values: object) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    if not isinstance(values, list | tuple) or not values:
        raise ValueError('must be a list of one or more email addresses, e.g. ["ops@example.com"]')
    if len(values) > MAX_RECIPIENTS:
        raise ValueError(f"{len(values)} recipients; the limit is {MAX_RECIPIENTS}")
    out = tuple(dict.fromkeys(normalize_address(v) for v in values))
    return out
