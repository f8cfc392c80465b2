"""Each account's daily email quota: one Firestore document per account and UTC day,
`<prefix>quota/{aid}:{YYYY-MM-DD}` (`count`, `expire_at` for a TTL policy), taken in a transaction before
each send. Every email counts, one per recipient, confirmations included."""

from __future__ import annotations

from datetime import datetime, timedelta

from google.cloud import firestore


class QuotaStore:
    def __init__(self, client: firestore.Client, prefix: str = "email_"):
        self.client = client
        self.quota = client.collection(prefix + "quota")

    def _ref(self, aid: str, now: datetime):
        return self.quota.document(f"{aid}:{now.date().isoformat()}")

    def take(self, aid: str, n: int, limit: int, now: datetime) -> int | None:
        """Take `n` emails of today's `limit`: the count after, or None (nothing taken) if they do not fit."""
        ref = self._ref(aid, now)

        @firestore.transactional
        def tx(t) -> int | None:
            snap = ref.get(transaction=t)
            count = (snap.to_dict() or {}).get("count", 0) if snap.exists else 0
            if count + n > limit:
                return None
            day_end = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), now.tzinfo)
            t.set(ref, {"aid": aid, "count": count + n, "expire_at": day_end + timedelta(days=2)})
            return count + n

        return tx(self.client.transaction())

    def used(self, aid: str, now: datetime) -> int:
        snap = self._ref(aid, now).get()
        return (snap.to_dict() or {}).get("count", 0) if snap.exists else 0
