"""The quarantine's index: every event ingest could not accept, with its reason, readable by operators.

Ingest publishes each refused message unchanged to the quarantine topic (kept 7 days on its hold
subscription) and records it here, in `quarantine/{message id}`: when, why, the account if the bytes name
one, and the bytes themselves (at most MAX_KEPT_BYTES). Reading this never consumes the topic. Records
expire with a Firestore TTL on `expire_at`, like the topic's retention.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

COLLECTION = "quarantine"
RETENTION = timedelta(days=7)
MAX_KEPT_BYTES = 65_536


def _aid_of(data: bytes) -> str | None:
    """The account a refused message names, when it is readable enough to say (best effort)."""
    try:
        doc = json.loads(data[:MAX_KEPT_BYTES])
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    aid = doc.get("aid", (doc.get("data") or {}).get("aid") if isinstance(doc.get("data"), dict) else None)
    return str(aid)[:256] if isinstance(aid, str | int) and not isinstance(aid, bool) else None


class Quarantine:
    def __init__(self, client: firestore.Client, collection: str = COLLECTION):
        self.collection = client.collection(collection)

    def record(self, data: bytes, reason: str, message_id: str, subscription: str | None) -> None:
        now = datetime.now(UTC)
        key = message_id or hashlib.sha256(data).hexdigest()[:32]
        self.collection.document(key).set(
            {
                "reason": reason,
                "aid": _aid_of(data),
                "data": data[:MAX_KEPT_BYTES],
                "size": len(data),
                "source_message_id": message_id,
                "source_subscription": subscription or "",
                "quarantined_at": now,
                "expire_at": now + RETENTION,
            }
        )

    def list(
        self, *, aid: str | None = None, limit: int = 50, before: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; optionally one account's (as far as the refused bytes named one)."""
        q = self.collection
        if aid is not None:
            q = q.where(filter=FieldFilter("aid", "==", aid))
        q = q.order_by("quarantined_at", direction=firestore.Query.DESCENDING)
        if before is not None:
            q = q.where(filter=FieldFilter("quarantined_at", "<", before))
        out = []
        for snap in q.limit(limit).stream():
            doc = snap.to_dict()
            raw = bytes(doc.get("data") or b"")
            try:
                shown = {"data": raw.decode("utf-8")}
            except UnicodeDecodeError:
                shown = {"data_base64": base64.b64encode(raw).decode()}
            out.append(
                {
                    "id": snap.id,
                    "reason": doc.get("reason"),
                    "aid": doc.get("aid"),
                    "size": doc.get("size"),
                    "truncated": doc.get("size", 0) > len(raw),
                    "quarantined_at": doc["quarantined_at"].isoformat(),
                    **shown,
                }
            )
        return out
