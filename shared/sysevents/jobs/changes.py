"""The change markers: how every job cache learns, within its freshness bound, of every job write.

One marker document per account, `job_changes/{aid}`: every job write through `JobStore` bumps its
account's marker in the same transaction, so one account's job writes never contend with another's. A
marker holds the account's sequence number, the last RECENT_CHANGES writes as `[seq, job id, prev]`, and
`changed_at`, the commit time of the latest write (a server timestamp). `prev` is the commit time of the
write before (µs since the epoch, as the writing transaction read it), so every listed write's own
commit time is known: the next entry's `prev`, or `changed_at` for the latest.

A job cache (sysevents.jobs.cache) syncs with one query: the markers whose `changed_at` is later than its
previous sync's start less a margin (`SYSEVENTS_JOB_CACHE_MARGIN_MS`: a commit may become visible up to
that long after its timestamp, across clocks and transactions committing out of timestamp order). From
each it reads again the jobs written since (`missed`): after that margin, and past the seq it saw
at its previous sync. A marker that no longer lists them all makes the cache reload that account.

Before markers per account, one document (`job_changes/marker`, LEGACY_ID, with `[seq, aid, id]`
entries) served every account. It is in the same collection, so the same query sees a deployment's
old-version writers while it is upgraded; a cache that cannot tell what it missed there reloads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

CHANGES_COLLECTION = "job_changes"
LEGACY_ID = "marker"
RECENT_CHANGES = 200
"""Writes an account's marker lists; a cache further behind on one account reloads that account."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Entry = tuple[int, str, int]
"""(seq, job id, commit time of the account's write before, in µs since the epoch; 0: none before)."""


def micros(when: datetime | None) -> int:
    """µs since the epoch of a Firestore timestamp (0 for None)."""
    return 0 if when is None else (when - EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class Marker:
    """One account's marker as read: its seq, the writes it lists (oldest first), the latest's commit time."""

    aid: str
    seq: int
    recent: tuple[Entry, ...]
    changed_at: int  # µs since the epoch


@dataclass(frozen=True)
class Legacy:
    """The marker of every account (before markers per account): seq and (seq, aid, id) of recent writes."""

    seq: int
    recent: tuple[tuple[int, str, str], ...]


def parse(snap: Any) -> Marker | Legacy | None:
    """What a snapshot of the changes collection holds (None: nothing readable)."""
    doc = (snap.to_dict() or {}) if snap.exists else {}
    recent = json.loads(doc.get("recent") or "[]")
    seq = int(doc.get("seq") or 0)
    if "aid" not in doc:
        if snap.id != LEGACY_ID:
            return None
        return Legacy(seq, tuple((int(n), str(a), str(i)) for n, a, i in recent))
    entries = tuple((int(n), str(i), int(p)) for n, i, p in recent)
    return Marker(str(doc["aid"]), seq, entries, micros(doc.get("changed_at")))


def missed(marker: Marker, since: int, seen: int | None) -> set[str] | None:
    """Ids of the account's jobs written after `since` (µs since the epoch) and past seq `seen` (the seq
    of this marker at the cache's previous sync; None: not seen then), or None when the marker no longer
    lists every such write (too many since: reload the account)."""
    if seen is not None and seen > marker.seq:
        return None  # the marker started over: nothing it says can be trusted against what is held
    entries = marker.recent
    if not entries:  # nothing listed: fine only if nothing is wanted
        return set() if marker.changed_at <= since or marker.seq <= (seen or 0) else None
    first_seq, _, first_prev = entries[0]
    # the write before the oldest listed: committed at first_prev; missed if after `since` and unseen
    if first_seq > 1 and first_prev > since and (seen is None or seen < first_seq - 1):
        return None
    times = [e[2] for e in entries[1:]] + [marker.changed_at]
    return {
        job_id
        for (seq, job_id, _), committed in zip(entries, times, strict=True)
        if committed > since and (seen is None or seq > seen)
    }


class ChangeMarker:
    def __init__(self, client: firestore.Client, collection: str = CHANGES_COLLECTION):
        self.collection = client.collection(collection)

    def ref(self, aid: str):
        return self.collection.document(aid)

    def read(self, tx: firestore.Transaction, aid: str) -> Any:
        """The account's marker in a job write's transaction (read before the write's writes)."""
        return self.ref(aid).get(transaction=tx)

    def bump(self, tx: firestore.Transaction, snap: Any, aid: str, job_id: str) -> None:
        """Record in the account's marker (`snap`, read earlier in this transaction) that its job changed."""
        found = parse(snap)
        seq, recent = (found.seq, list(found.recent)) if isinstance(found, Marker) else (0, [])
        doc = (snap.to_dict() or {}) if snap.exists and isinstance(found, Marker) else {}
        recent.append((seq + 1, job_id, micros(doc.get("changed_at"))))
        tx.set(
            self.ref(aid),
            {
                "aid": aid,
                "seq": seq + 1,
                # one string, not an array: nothing in it is indexed or queried
                "recent": json.dumps(recent[-RECENT_CHANGES:], separators=(",", ":")),
                "changed_at": firestore.SERVER_TIMESTAMP,
            },
        )

    def changed_since(self, since: int, timeout: float) -> tuple[int, list[Marker | Legacy]]:
        """(documents read, every marker whose latest write committed after `since`, µs since the epoch):
        one query, billed one read at least."""
        after = EPOCH + timedelta(microseconds=since)
        snaps = list(
            self.collection.where(filter=FieldFilter("changed_at", ">", after)).stream(timeout=timeout)
        )
        return max(1, len(snaps)), [m for snap in snaps if (m := parse(snap)) is not None]
