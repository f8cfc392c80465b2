"""Accounts and API keys. Keys are random, shown once, stored only as SHA-256 hashes, revocable.

A key looks like `sek_<8 chars>_<43 chars>`; its first 12 characters (`sek_` + 8) are its *prefix*, which
lists and revocations use. Keys carry 256 random bits, so a plain SHA-256 is the right hash (as for
GitHub tokens; slow password hashes are for guessable secrets). The key's hash is its Firestore
document id, so authenticating a request is one document read. The operator key is not stored: its
hash comes from settings (`SYSEVENTS_OPERATOR_KEY_HASH`, from Secret Manager in production).

A key may expire (`expires_at`, checked on every call) and never outlives the key that minted it. Each
key records the hashes of the keys that minted it (`ancestors`: its minter, the minter's minter, ...;
empty for keys the operator made), so revoking a key finds every key minted from it, at any depth, in
one query, and authenticating a minted key also reads its ancestors (one batched read): a key minted
from a revoked key is refused even before the revocation has marked it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

KEY_PREFIX = "sek_"
SCOPES = ("admin", "jobs", "read")
SCOPE_DOCS = {
    "read": "GET the account's jobs, their deliveries and stats, its audit log and email policy; no writes",
    "jobs": "read, plus create, change, pause, resume, delete, preview, test and replay the account's jobs "
    "(the default for new keys)",
    "admin": "jobs, plus the account's keys: create, list, revoke",
}
"""What each scope allows: each allows what the one before it does (read < jobs < admin)."""
SCOPE_RANK = {scope: rank for rank, scope in enumerate(("read", "jobs", "admin"))}
MAX_MINT_DEPTH = 8
"""Keys a key may descend from (minter, minter's minter, ...): what authenticating it reads at most."""
REVOKE_BATCH = 500
"""Writes per Firestore batch (its limit)."""
PREFIX_CHARS = 12
AID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_NAME_CHARS = 100


def new_key() -> str:
    return f"{KEY_PREFIX}{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def prefix_of(key: str) -> str:
    return key[:PREFIX_CHARS]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the operator, or one account's key."""

    operator: bool
    aid: str | None
    prefix: str
    name: str
    scope: str = "jobs"  # "admin" | "jobs" | "read"; the operator key may do anything
    key_id: str | None = None  # the key's hash (its document id); None for the operator key
    ancestors: tuple[str, ...] = ()  # the hashes of the keys it was minted from, its minter last
    expires_at: datetime | None = None

    @property
    def actor(self) -> str:
        """How lifecycle events name the caller: the key's name and prefix (never the key)."""
        return f"{self.name} [{self.prefix}]"

    def may_act_for(self, aid: str) -> bool:
        return self.operator or self.aid == aid

    def has_scope(self, scope: str) -> bool:
        """Whether this key may call a route needing `scope` (read < jobs < admin)."""
        return self.operator or SCOPE_RANK.get(self.scope, -1) >= SCOPE_RANK[scope]


class AccountExists(ValueError):
    pass


class AccountNotFound(LookupError):
    pass


class KeyNotFound(LookupError):
    pass


class KeyRefused(Exception):
    """A key that exists but may not be used: revoked, expired, or minted from a revoked key."""


class CannotMint(ValueError):
    """The calling key may not mint this key (too deep a chain of minted keys)."""


def _clean(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in doc.items()}


def _public(doc: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A key's record as the API shows it: no ancestor hashes; its state (active, expired, revoked)."""
    expires = doc.get("expires_at")
    state = "revoked" if doc.get("revoked_at") else "expired" if expires and expires <= now else "active"
    shown = {k: v for k, v in doc.items() if k != "ancestors"}
    return _clean({**shown, "expires_at": expires, "state": state})


def expiry_for(
    requested: datetime | None, minter_expires: datetime | None, max_days: int, now: datetime
) -> datetime | None:
    """A new key's expiry: the one requested (after now, at most `max_days` ahead), else the minting
    key's (a key never outlives the key that minted it); None: it never expires. ValueError says why not."""
    if requested is not None:
        if requested <= now:
            raise ValueError("must be in the future")
        if requested > now + timedelta(days=max_days):
            raise ValueError(f"must be at most {max_days} days ahead (SYSEVENTS_API_KEY_MAX_DAYS)")
        if minter_expires is not None and requested > minter_expires:
            raise ValueError(
                f"must not be after {minter_expires.isoformat()}, when the key minting it expires"
            )
        return requested
    return minter_expires


class KeyStore:
    def __init__(
        self,
        client: firestore.Client,
        accounts: str = "accounts",
        keys: str = "api_keys",
        operator_key_hash: str | None = None,
        revoke_max: int = 1000,
    ):
        self.client = client
        self.accounts = client.collection(accounts)
        self.keys = client.collection(keys)
        self.operator_key_hash = operator_key_hash
        self.revoke_max = revoke_max

    def authenticate(self, key: str, now: datetime | None = None) -> Principal | None:
        """The caller of a key; None for no such key. KeyRefused (saying why) for a key that is revoked,
        expired or minted from a revoked key."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        digest = key_hash(key)
        if self.operator_key_hash and hmac.compare_digest(digest, self.operator_key_hash):
            return Principal(operator=True, aid=None, prefix=prefix_of(key), name="operator", scope="admin")
        snap = self.keys.document(digest).get()
        doc = snap.to_dict() if snap.exists else None
        if not doc:
            return None
        now = now or datetime.now(UTC)
        if doc.get("revoked_at"):
            raise KeyRefused(f"this API key was revoked at {doc['revoked_at'].isoformat()}")
        expires = doc.get("expires_at")
        if expires is not None and expires <= now:
            raise KeyRefused(f"this API key expired at {expires.isoformat()}; ask for a new one")
        ancestors = tuple(doc.get("ancestors") or ())
        if ancestors:
            self._check_minters(ancestors)
        return Principal(
            operator=False,
            aid=doc["aid"],
            prefix=doc["prefix"],
            name=doc.get("name") or "key",
            scope=doc.get("scope") if doc.get("scope") in SCOPES else "jobs",
            key_id=digest,
            ancestors=ancestors,
            expires_at=expires,
        )

    def _check_minters(self, ancestors: tuple[str, ...]) -> None:
        """KeyRefused when a key this one was minted from is revoked (or gone)."""
        for snap in self.client.get_all([self.keys.document(h) for h in ancestors]):
            doc = snap.to_dict() if snap.exists else None
            if not doc or doc.get("revoked_at"):
                minter = doc.get("prefix") if doc else "a deleted key"
                raise KeyRefused(f"this API key was minted from a revoked key ({minter})")

    # -- accounts ------------------------------------------------------------------------------------------
    def create_account(self, aid: str, name: str | None) -> dict[str, Any]:
        doc = {"aid": aid, "name": name, "created_at": datetime.now(UTC)}
        try:
            self.accounts.document(aid).create(doc)
        except gexc.Conflict:
            raise AccountExists(f"account {aid!r} already exists") from None
        return _clean(doc)

    def get_account(self, aid: str) -> dict[str, Any] | None:
        snap = self.accounts.document(aid).get()
        return _clean(snap.to_dict()) if snap.exists else None

    def list_accounts(self, limit: int, after: str | None) -> tuple[list[dict[str, Any]], str | None]:
        q = self.accounts.order_by(FieldPath.document_id())
        if after:
            q = q.where(filter=FieldFilter(FieldPath.document_id(), ">", self.accounts.document(after)))
        snaps = list(q.limit(limit + 1).stream())
        return [_clean(s.to_dict()) for s in snaps[:limit]], (
            snaps[limit - 1].id if len(snaps) > limit else None
        )

    # -- keys ------------------------------------------------------------------------------------------------
    def create_key(
        self,
        aid: str,
        name: str,
        created_by: str,
        scope: str = "jobs",
        expires_at: datetime | None = None,
        minter: Principal | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """A new key for the account: (the key, shown once; its record). AccountNotFound if none.

        `minter` is the key minting it (None or the operator: no ancestors). The caller has checked
        `expires_at` (expiry_for); a minted key gets its minter's expiry when it names none."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        ancestors: tuple[str, ...] = ()
        if minter is not None and not minter.operator and minter.key_id:
            ancestors = (*minter.ancestors, minter.key_id)
            if len(ancestors) > MAX_MINT_DEPTH:
                raise CannotMint(
                    f"this key is {len(minter.ancestors)} mints from a key the operator made; keys at most "
                    f"{MAX_MINT_DEPTH - 1} mints from one may mint keys: have one of those mint it"
                )
            if minter.expires_at is not None and (expires_at is None or expires_at > minter.expires_at):
                expires_at = minter.expires_at
        if not self.accounts.document(aid).get().exists:
            raise AccountNotFound(f"account {aid!r} not found")
        key = new_key()
        now = datetime.now(UTC)
        doc = {
            "aid": aid,
            "name": name,
            "prefix": prefix_of(key),
            "created_at": now,
            "created_by": created_by,
            "scope": scope,
            "expires_at": expires_at,
            "ancestors": list(ancestors),
            "revoked_at": None,
        }
        self.keys.document(key_hash(key)).create(doc)
        return key, _public(doc, now)

    def list_keys(self, aid: str) -> list[dict[str, Any]]:
        """The account's keys, oldest first; keys made before expiry existed show expires_at null."""
        now = datetime.now(UTC)
        snaps = self.keys.where(filter=FieldFilter("aid", "==", aid)).stream()
        return sorted((_public(s.to_dict(), now) for s in snaps), key=lambda d: d["created_at"])

    def revoke_key(self, aid: str, prefix: str) -> dict[str, Any]:
        """Revoke the key, then every key minted from it (at any depth) not revoked yet: at most
        `revoke_max` of those per call, in batches. The record says how many (`revoked_minted`) and
        whether that was all of them (`cascade_complete`; if not, revoking again goes on). Keys beyond the
        bound are refused meanwhile all the same: authentication checks the keys a key was minted from."""
        q = self.keys.where(filter=FieldFilter("aid", "==", aid)).where(
            filter=FieldFilter("prefix", "==", prefix)
        )
        snaps = list(q.stream())
        if not snaps:
            raise KeyNotFound(f"no key with prefix {prefix!r} in account {aid!r}")
        now = datetime.now(UTC)
        self._revoke([s.reference for s in snaps if not (s.to_dict() or {}).get("revoked_at")], now)
        minted = self._minted_from([s.id for s in snaps], self.revoke_max + 1)
        self._revoke(minted[: self.revoke_max], now)
        first = snaps[0].to_dict() or {}
        record = _public({**first, "revoked_at": first.get("revoked_at") or now}, now)
        done = len(minted) <= self.revoke_max
        return {**record, "revoked_minted": min(len(minted), self.revoke_max), "cascade_complete": done}

    def _minted_from(self, roots: list[str], limit: int) -> list[Any]:
        """References to at most `limit` unrevoked keys minted from any of `roots`, at any depth."""
        found: dict[str, Any] = {}
        for root in roots:
            if len(found) >= limit:
                break
            q = self.keys.where(filter=FieldFilter("ancestors", "array_contains", root)).where(
                filter=FieldFilter("revoked_at", "==", None)
            )
            for snap in q.limit(limit - len(found)).stream():
                found.setdefault(snap.id, snap.reference)
        return list(found.values())

    def _revoke(self, refs: list[Any], now: datetime) -> None:
        for start in range(0, len(refs), REVOKE_BATCH):
            batch = self.client.batch()
            for ref in refs[start : start + REVOKE_BATCH]:
                batch.update(ref, {"revoked_at": now})
            batch.commit()
