"""Each account's email recipients' consent, and each account's email policy, in Firestore.

- `<prefix>consent/{hash(account, address)}`: one recipient of one account: `state` (`pending`: a
  confirmation was sent at `invited_at`; `confirmed`; `unsubscribed`), with `aid` and `address`. Keyed by
  account and address together: accounts are walls, one account's confirmation confirms nothing for another.
- `<prefix>policy/{aid}`: what the operator set for the account: `allowed_domains` (addresses there need no
  confirmation) and `daily_quota` (emails per UTC day; unset: the deployment's SYSEVENTS_EMAIL_DAILY_QUOTA).

A recipient's state, as `states` reports it: `unsubscribed` (never mailed, never asked again), `confirmed`,
`allowed_domain`, `pending` (asked, not confirmed yet) or `unconfirmed` (never asked). Only `confirmed` and
`allowed_domain` receive alerts. `invite` decides whether a confirmation may go out now: at most one per
address and account per `period`, decided by a compare-and-set, so concurrent senders send one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core.exceptions import Conflict, FailedPrecondition
from google.cloud import firestore

CONFIRMED = "confirmed"
ALLOWED_DOMAIN = "allowed_domain"
PENDING = "pending"
UNCONFIRMED = "unconfirmed"
UNSUBSCRIBED = "unsubscribed"
RECEIVING = (CONFIRMED, ALLOWED_DOMAIN)
MAX_ALLOWED_DOMAINS = 100


@dataclass(frozen=True)
class Policy:
    allowed_domains: tuple[str, ...] = ()
    daily_quota: int | None = None

    def allows(self, address: str) -> bool:
        domain = address.rpartition("@")[2].lower()
        return any(domain == d or domain.endswith("." + d) for d in self.allowed_domains)

    def view(self) -> dict[str, Any]:
        return {"allowed_domains": list(self.allowed_domains), "daily_quota": self.daily_quota}


@dataclass(frozen=True)
class Recipient:
    address: str
    state: str
    invited_at: datetime | None = None

    @property
    def receives(self) -> bool:
        return self.state in RECEIVING

    def view(self) -> dict[str, Any]:
        at = self.invited_at.isoformat() if self.invited_at else None
        return {"address": self.address, "state": self.state, "invited_at": at}


def doc_id(aid: str, address: str) -> str:
    return hashlib.sha256(f"{aid}\0{address.lower()}".encode()).hexdigest()[:40]


class ConsentStore:
    def __init__(
        self, client: firestore.Client, prefix: str = "email_", period: timedelta = timedelta(days=7)
    ):
        self.client = client
        self.consent = client.collection(prefix + "consent")
        self.policies = client.collection(prefix + "policy")
        self.period = period

    def _ref(self, aid: str, address: str):
        return self.consent.document(doc_id(aid, address))

    # -- the account's policy (the operator's) ----------------------------------------------------------------
    def policy(self, aid: str) -> Policy:
        snap = self.policies.document(aid).get()
        d = snap.to_dict() if snap.exists else {}
        return Policy(tuple(d.get("allowed_domains") or ()), d.get("daily_quota"))

    def set_policy(self, aid: str, policy: Policy) -> Policy:
        self.policies.document(aid).set({"aid": aid, **policy.view(), "updated_at": datetime.now(UTC)})
        return policy

    # -- recipients ---------------------------------------------------------------------------------------
    def states(self, aid: str, addresses: Iterable[str], policy: Policy | None = None) -> list[Recipient]:
        """Each address's state for the account, in the order given."""
        addresses = list(addresses)
        policy = policy if policy is not None else self.policy(aid)
        snaps = self.client.get_all([self._ref(aid, a) for a in addresses])
        docs = {s.id: s.to_dict() for s in snaps if s.exists}
        out = []
        for a in addresses:
            d = docs.get(doc_id(aid, a)) or {}
            if d.get("aid") not in (None, aid):
                d = {}
            state = d.get("state")
            if state in (UNSUBSCRIBED, CONFIRMED):
                out.append(Recipient(a, state))
            elif policy.allows(a):
                out.append(Recipient(a, ALLOWED_DOMAIN))
            elif state == PENDING:
                out.append(Recipient(a, PENDING, d.get("invited_at")))
            else:
                out.append(Recipient(a, UNCONFIRMED))
        return out

    def invite(self, aid: str, address: str, now: datetime) -> bool:
        """True when a confirmation may be sent to `address` now (recorded as sent): it is not confirmed or
        unsubscribed, and none was sent to it for this account within the period."""
        ref = self._ref(aid, address)
        while True:
            snap = ref.get()
            if not snap.exists:
                doc = {"aid": aid, "address": address, "state": PENDING, "invited_at": now, "invites": 1}
                try:
                    ref.create(doc)
                except Conflict:
                    continue
                return True
            d = snap.to_dict() or {}
            if d.get("state") != PENDING or (d.get("invited_at") and d["invited_at"] > now - self.period):
                return False
            change = {"invited_at": now, "invites": firestore.Increment(1)}
            try:
                ref.update(change, option=self.client.write_option(last_update_time=snap.update_time))
            except FailedPrecondition:
                continue
            return True

    def _set(self, aid: str, address: str, state: str, now: datetime) -> None:
        self._ref(aid, address).set(
            {"aid": aid, "address": address, "state": state, f"{state}_at": now}, merge=True
        )

    def confirm(self, aid: str, address: str, now: datetime | None = None) -> None:
        self._set(aid, address, CONFIRMED, now or datetime.now(UTC))

    def unsubscribe(self, aid: str, address: str, now: datetime | None = None) -> None:
        self._set(aid, address, UNSUBSCRIBED, now or datetime.now(UTC))
