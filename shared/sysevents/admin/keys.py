"""Accounts and API keys. Keys are random, shown once, stored only as SHA-256 hashes, revocable.

A key looks like `sek_<8 chars>_<43 chars>`; its first 12 characters (`sek_` + 8) are its *prefix*, which
lists and revocations use. Keys carry 256 random bits, so a plain SHA-256 is the right hash (as for
GitHub tokens; slow password hashes are for guessable secrets). The key's hash is its Firestore
document id, so authenticating a request is one document read. The operator key is not stored: its
hash comes from settings (`SYSEVENTS_OPERATOR_KEY_HASH`, from Secret Manager in production).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

KEY_PREFIX = "sek_"
SCOPES = ("admin", "jobs")
"""`admin`: the account's keys and jobs; `jobs`: its jobs only (the default for new keys)."""
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
    scope: str = "jobs"  # "admin" | "jobs"; the operator key may do anything

    @property
    def actor(self) -> str:
        """How lifecycle events name the caller: the key's name and prefix (never the key)."""
        return f"{self.name} [{self.prefix}]"

    def may_act_for(self, aid: str) -> bool:
        return self.operator or self.aid == aid

    def has_scope(self, scope: str) -> bool:
        return self.operator or scope == "jobs" or self.scope == scope


class AccountExists(ValueError):
    pass


class AccountNotFound(LookupError):
    pass


class KeyNotFound(LookupError):
    pass


def _clean(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in doc.items()}


class KeyStore:
    def __init__(
        self,
        client: firestore.Client,
        accounts: str = "accounts",
        keys: str = "api_keys",
        operator_key_hash: str | None = None,
    ):
        self.accounts = client.collection(accounts)
        self.keys = client.collection(keys)
        self.operator_key_hash = operator_key_hash

    def authenticate(self, key: str) -> Principal | None:
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        digest = key_hash(key)
        if self.operator_key_hash and hmac.compare_digest(digest, self.operator_key_hash):
            return Principal(operator=True, aid=None, prefix=prefix_of(key), name="operator", scope="admin")
        snap = self.keys.document(digest).get()
        doc = snap.to_dict() if snap.exists else None
        if not doc or doc.get("revoked_at"):
            return None
        return Principal(
            operator=False,
            aid=doc["aid"],
            prefix=doc["prefix"],
            name=doc.get("name") or "key",
            scope=doc.get("scope") if doc.get("scope") in SCOPES else "jobs",
        )

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
        self, aid: str, name: str, created_by: str, scope: str = "jobs"
    ) -> tuple[str, dict[str, Any]]:
        """A new key for the account: (the key, shown once; its record). AccountNotFound if none."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        if not self.accounts.document(aid).get().exists:
            raise AccountNotFound(f"account {aid!r} not found")
        key = new_key()
        doc = {
            "aid": aid,
            "name": name,
            "prefix": prefix_of(key),
            "created_at": datetime.now(UTC),
            "created_by": created_by,
            "scope": scope,
            "revoked_at": None,
        }
        self.keys.document(key_hash(key)).create(doc)
        return key, _clean(doc)

    def list_keys(self, aid: str) -> list[dict[str, Any]]:
        snaps = self.keys.where(filter=FieldFilter("aid", "==", aid)).stream()
        return sorted((_clean(s.to_dict()) for s in snaps), key=lambda d: d["created_at"])

    def revoke_key(self, aid: str, prefix: str) -> dict[str, Any]:
        q = self.keys.where(filter=FieldFilter("aid", "==", aid)).where(
            filter=FieldFilter("prefix", "==", prefix)
        )
        snaps = list(q.stream())
        if not snaps:
            raise KeyNotFound(f"no key with prefix {prefix!r} in account {aid!r}")
        now = datetime.now(UTC)
        for snap in snaps:
            if not (snap.to_dict() or {}).get("revoked_at"):
                snap.reference.update({"revoked_at": now})
        return _clean(
            {**snaps[0].to_dict(), "revoked_at": (snaps[0].to_dict() or {}).get("revoked_at") or now}
        )
