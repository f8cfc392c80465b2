"""Producer identity: which producer published an event, and whether it may publish for the event's account.

Pub/Sub does not tell a push subscriber who published a message (the push request's OIDC token names the
subscription's service account, not the publisher), so a producer says it in the message attributes and
proves it with a key: `sysevents_producer` (its id) and `sysevents_producer_signature`
(`v1=<hex HMAC-SHA256>` of the producer id, the event's account and the message data, each length-prefixed,
under one of the producer's keys: `sign`). A signature made for one account's event verifies for no other
account and no other bytes.

A deployment binds producers to accounts with `SYSEVENTS_PRODUCERS` (producer id -> account patterns: an
exact id, a prefix ending in `*`, or `*`) and holds their keys in `SYSEVENTS_PRODUCER_KEYS` (a Secret
Manager secret: producer id -> keys, all of which verify, so a key is rotated by adding the new one,
moving the producer to it, then removing the old). With bindings set, ingest and the audit archive admit
an event only when it is sysevents' own (sealed: sysevents.jobs.origin) or signed by a producer bound to
its account (`Producers.refusal`); ingest quarantines the others with the reason. Without bindings, every
event is admitted, as before.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from sysevents.events.model import SystemEvent

PRODUCER_ATTR = "sysevents_producer"
SIGNATURE_ATTR = "sysevents_producer_signature"
VERSION = "v1"
_DOMAIN = b"sysevents-producer-signature-v1"
MIN_KEY_CHARS = 32


class ProducerConfigError(ValueError):
    """SYSEVENTS_PRODUCERS or SYSEVENTS_PRODUCER_KEYS cannot be used (the message says where)."""


def _signed_bytes(producer: str, aid: str, data: bytes) -> bytes:
    parts = [_DOMAIN, producer.encode(), aid.encode(), data]
    return b"".join(str(len(p)).encode() + b":" + p for p in parts)


def signature(key: str, producer: str, aid: str, data: bytes) -> str:
    digest = hmac.new(key.encode(), _signed_bytes(producer, aid, data), hashlib.sha256).hexdigest()
    return f"{VERSION}={digest}"


def sign(producer: str, key: str, aid: str, data: bytes) -> dict[str, str]:
    """The message attributes a producer publishes `data` (an event of account `aid`) with."""
    return {PRODUCER_ATTR: producer, SIGNATURE_ATTR: signature(key, producer, aid, data)}


def signed(event: SystemEvent, producer: str, key: str) -> tuple[bytes, dict[str, str]]:
    """(message data, attributes) to publish `event` with, as `producer` signing with `key`:
    `publisher.publish(topic, data, **attributes)` with the Google client."""
    data = event.to_json()
    return data, sign(producer, key, event.aid, data)


def new_key() -> str:
    """A new producer key (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def check_bindings(bindings: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """SYSEVENTS_PRODUCERS as read: every producer id and pattern usable, else a clear error naming it."""
    out = {}
    for producer, patterns in bindings.items():
        if not producer.strip() or len(producer) > 100:
            raise ValueError(f"producer id {producer!r}: 1 to 100 characters")
        if not patterns:
            raise ValueError(f"producer {producer!r}: no account patterns (an exact id, a prefix*, or *)")
        for p in patterns:
            if not p or "*" in p[:-1]:
                raise ValueError(
                    f"producer {producer!r}: account pattern {p!r} must be an exact id, a prefix ending in *, or *"
                )
        out[producer] = tuple(patterns)
    return out


def _keys(text: SecretStr | str | None) -> dict[str, tuple[str, ...]]:
    raw = text.get_secret_value() if isinstance(text, SecretStr) else (text or "")
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ProducerConfigError(f"SYSEVENTS_PRODUCER_KEYS is not JSON ({err.msg} at {err.pos})") from None
    if not isinstance(doc, dict):
        raise ProducerConfigError('SYSEVENTS_PRODUCER_KEYS must be an object: {"producer id": ["key", ...]}')
    out = {}
    for producer, keys in doc.items():
        keys = [keys] if isinstance(keys, str) else keys
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise ProducerConfigError(f"SYSEVENTS_PRODUCER_KEYS[{producer!r}]: a list of keys (strings)")
        if short := [n for n, k in enumerate(keys) if len(k) < MIN_KEY_CHARS]:
            raise ProducerConfigError(
                f"SYSEVENTS_PRODUCER_KEYS[{producer!r}][{short[0]}]: a key has at least {MIN_KEY_CHARS} "
                "characters (`sysevents producer-key` makes one)"
            )
        out[producer] = tuple(keys)
    return out


def allows(patterns: tuple[str, ...], aid: str) -> bool:
    return any(aid == p or (p.endswith("*") and aid.startswith(p[:-1])) for p in patterns)


@dataclass(frozen=True)
class Producers:
    """The deployment's producer bindings and keys (empty: binding off, every event admitted)."""

    bindings: dict[str, tuple[str, ...]]
    keys: dict[str, tuple[str, ...]]

    @classmethod
    def of(
        cls, bindings: Mapping[str, tuple[str, ...]], keys: SecretStr | str | None, *, sealed: bool = True
    ) -> Producers:
        """From the settings (`sealed`: SYSEVENTS_SEALING_KEYS is set); ProducerConfigError when a bound
        producer has no key, or bindings are set without sealing keys (sysevents' own events, lifecycle and
        test events, are admitted by their seal)."""
        found = _keys(keys)
        if bindings and not sealed:
            raise ProducerConfigError(
                "SYSEVENTS_PRODUCERS needs SYSEVENTS_SEALING_KEYS: sysevents' own events are admitted by their seal"
            )
        if missing := sorted(set(bindings) - set(found)):
            raise ProducerConfigError(
                f"SYSEVENTS_PRODUCERS binds {', '.join(map(repr, missing))} but SYSEVENTS_PRODUCER_KEYS has no "
                "key for it"
            )
        return cls(dict(bindings), found)

    @property
    def on(self) -> bool:
        return bool(self.bindings)

    def refusal(
        self, data: bytes, attributes: Mapping[str, str], aid: str, own: Callable[[], bool]
    ) -> str | None:
        """Why an event of account `aid` (message `data`, `attributes`) is not admitted; None: it is.
        `own()`: sysevents published it (its seal verifies), which any account's event may be."""
        if not self.on or own():
            return None
        producer, given = attributes.get(PRODUCER_ATTR), attributes.get(SIGNATURE_ATTR)
        if not producer or not given:
            return (
                "unsigned event: this deployment binds producers to accounts (SYSEVENTS_PRODUCERS); publish "
                f"with the attributes {PRODUCER_ATTR} and {SIGNATURE_ATTR} (sysevents.events.producers.sign)"
            )
        patterns = self.bindings.get(producer)
        if patterns is None:
            return f"unknown producer {producer[:100]!r}: SYSEVENTS_PRODUCERS does not bind it"
        if not any(
            hmac.compare_digest(given, signature(k, producer, aid, data)) for k in self.keys[producer]
        ):
            return (
                f"the signature of producer {producer!r} does not verify for this message and account {aid!r} "
                "(another key, or the message changed after it was signed)"
            )
        if not allows(patterns, aid):
            return f"producer {producer!r} may not publish for account {aid!r} (SYSEVENTS_PRODUCERS)"
        return None
