"""Per-account rates and leases in Firestore, one document each: `<collection>/{aid}:{what}`.

`AccountRate`: at most `per_minute` of one thing per account per minute (a burst of that many, then one
every 60/per_minute seconds), by the generic cell rate algorithm: the document holds the theoretical
arrival time. `take` refuses with AtShare, saying when the next one is allowed.

`AccountLeases`: at most `cap` of one thing per account at once (replays). Each holder has a lease that
expires after `lease` seconds whatever happens to it: a holder that crashed frees its place then, so no
count can leak and block an account for ever; one that ends says so (`release`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from google.api_core.exceptions import NotFound
from google.cloud import firestore

from sysevents.shares import AtShare


class AccountRate:
    def __init__(self, client: firestore.Client, collection: str, what: str, per_minute: int):
        self.client, self.what, self.per_minute = client, what, per_minute
        self.collection = client.collection(collection)

    def take(self, aid: str) -> None:
        """Count one for the account, or raise AtShare when it is past its rate."""
        ref = self.collection.document(f"{aid}:{self.what}")
        interval = 60.0 / self.per_minute
        tau = (self.per_minute - 1) * interval

        @firestore.transactional
        def tx(t: firestore.Transaction) -> float:
            doc = ref.get(transaction=t).to_dict() or {}
            now = time.time()
            tat = max(float(doc.get("tat") or 0.0), now)
            if tat - now > tau:  # past its burst: the next one is allowed once tat - tau is reached
                return tat - tau - now
            t.set(ref, {"tat": tat + interval})
            return 0.0

        wait = tx(self.client.transaction(max_attempts=50))
        if wait > 0:
            raise AtShare(
                f"account {aid} is at its {self.what} limit ({self.per_minute} per minute): "
                f"try again in {wait:.0f} s",
                wait,
            )


class AccountLeases:
    def __init__(self, client: firestore.Client, collection: str, what: str, cap: int, lease: float):
        self.client, self.what, self.cap, self.lease = client, what, cap, lease
        self.collection = client.collection(collection)

    @contextmanager
    def held(self, aid: str) -> Iterator[str]:
        """One of the account's places while the block runs; AtShare when every place is held."""
        holder = self.acquire(aid)
        try:
            yield holder
        finally:
            self.release(aid, holder)

    def acquire(self, aid: str) -> str:
        ref = self.collection.document(f"{aid}:{self.what}")
        holder = uuid.uuid4().hex

        @firestore.transactional
        def tx(t: firestore.Transaction) -> float:
            doc = ref.get(transaction=t).to_dict() or {}
            now = time.time()
            held = {k: float(v) for k, v in (doc.get("held") or {}).items() if float(v) > now}
            if len(held) >= self.cap:
                return min(held.values()) - now
            held[holder] = now + self.lease
            t.set(ref, {"held": held})
            return 0.0

        wait = tx(self.client.transaction(max_attempts=50))
        if wait > 0:
            raise AtShare(
                f"account {aid} has {self.cap} {self.what} running (its limit): try again when one ends",
                min(wait, 60.0),
            )
        return holder

    def release(self, aid: str, holder: str) -> None:
        try:
            self.collection.document(f"{aid}:{self.what}").update({f"held.{holder}": firestore.DELETE_FIELD})
        except NotFound:  # nothing held any more
            pass
