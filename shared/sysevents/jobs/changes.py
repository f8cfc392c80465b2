"""The change marker: how every job cache learns, within its freshness bound, of every job write.

Every job write through `JobStore` also bumps, in the same transaction, one marker document
(`job_changes/marker`): a sequence number and the (seq, aid, id) of the last RECENT_CHANGES writes. A job
cache (sysevents.jobs.cache) reads it at most once per `max_age` while it serves, and reads again only the
jobs listed since its own seq; further behind than RECENT_CHANGES, it forgets what it holds and reloads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from google.cloud import firestore

CHANGES_COLLECTION = "job_changes"
MARKER_ID = "marker"
RECENT_CHANGES = 1000
"""Writes the change marker lists; a cache further behind than this forgets what it holds and reloads."""

Changed = tuple[int, str, str]
"""(seq, aid, job id): one job write as the marker lists it."""


def read_marker(snap: Any) -> tuple[int, list[Changed]]:
    """(seq, recent changes, oldest first) of a change marker snapshot."""
    doc = (snap.to_dict() or {}) if snap.exists else {}
    recent = json.loads(doc.get("recent") or "[]")
    return int(doc.get("seq") or 0), [(int(n), str(a), str(i)) for n, a, i in recent]


class ChangeMarker:
    def __init__(self, client: firestore.Client, collection: str = CHANGES_COLLECTION):
        self.ref = client.collection(collection).document(MARKER_ID)

    def read(self, tx: firestore.Transaction) -> Any:
        """The marker's snapshot in a job write's transaction (read before the write's writes)."""
        return self.ref.get(transaction=tx)

    def bump(self, tx: firestore.Transaction, snap: Any, changed: Iterable[tuple[str, str]]) -> None:
        """Record in the marker (`snap`, read earlier in this transaction) that these (aid, id) jobs changed."""
        seq, recent = read_marker(snap)
        for aid, job_id in changed:
            seq += 1
            recent.append((seq, aid, job_id))
        tx.set(
            self.ref,
            {
                "seq": seq,
                # one string, not an array: nothing in it is indexed or queried
                "recent": json.dumps(recent[-RECENT_CHANGES:], separators=(",", ":")),
                "changed_at": firestore.SERVER_TIMESTAMP,
            },
        )

    def get(self, timeout: float) -> tuple[Any, int, list[Changed]]:
        """(snapshot, seq, recent changes) as of now: what a job cache syncs with."""
        snap = self.ref.get(timeout=timeout)
        seq, recent = read_marker(snap)
        return snap, seq, recent
