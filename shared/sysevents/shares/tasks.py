"""An account's delay-queue tasks due per window of time, counted where every instance sees them.

One Firestore document per account, `<collection>/{aid}:tasks`, maps each window (its start, epoch
seconds, one `window` long) to the account's tasks due in it. A wait to be put (`admit(aid, at)`) is
counted in the window of its time when that window has room (`cap`), else in the next window with room,
and its time moves to that window's start: it waits a little longer, never lost, never refused. What the
account shares with every other one is the queue's dispatch rate (a task waiting costs nothing until it is
due), and at most `cap` of its tasks fall due in any window: one account's flood of retries and
push-backs cannot take the queue's dispatches for everyone else's.

Nothing is decremented: windows in the past are dropped at the next count, so a crash between counting
and putting the task over-counts one window only until it has passed. Windows further ahead than HORIZON
are not counted: such a wait (a late retry on its job's schedule) is put at its time. Concurrent waits of one instance share one transaction per account
(sysevents.transport.coalesce); instances contend only on the documents of the accounts they serve.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from google.cloud import firestore

from sysevents.transport.coalesce import Coalescer

HORIZON = 3600.0
"""Seconds ahead within which an account's tasks are counted (the longest Retry-After honoured)."""


class TaskWindows:
    def __init__(self, client: firestore.Client, collection: str, cap: int, window: float):
        self.client = client
        self.collection = client.collection(collection)
        self.cap, self.window = cap, window
        self._batches: Coalescer[str, float, float] = Coalescer(
            self._admit, max_size=100, max_wait=0.005, idle=0.002
        )

    def admit(self, aid: str, at: datetime) -> datetime:
        """The time the wait is put at: `at`, or the start of the account's next window with room."""
        [when] = self._batches.submit(aid, [at.timestamp()])
        return at if when <= at.timestamp() else datetime.fromtimestamp(when, UTC)

    def _admit(self, aid: str, ats: list[float]) -> list[float]:
        ref = self.collection.document(f"{aid}:tasks")

        @firestore.transactional
        def tx(t: firestore.Transaction) -> list[float]:
            doc = ref.get(transaction=t).to_dict() or {}
            now = time.time()
            due, out = plan(doc.get("due") or {}, ats, now, self.cap, self.window)
            t.set(ref, {"due": due, "updated_at": now})
            return out

        return tx(self.client.transaction(max_attempts=50))


def plan(
    due: dict[str, int], ats: list[float], now: float, cap: int, window: float
) -> tuple[dict[str, int], list[float]]:
    """The windows' counts after counting waits due at `ats`, and the time each is put at (pure)."""
    first = math.floor(now / window)
    counts = {int(k): int(v) for k, v in due.items() if int(k) >= first}
    out = []
    for at in ats:
        if at - now > HORIZON:
            out.append(at)
            continue
        w = max(first, math.floor(at / window))
        while counts.get(w, 0) >= cap:
            w += 1
        counts[w] = counts.get(w, 0) + 1
        out.append(max(at, w * window))
    return {str(k): v for k, v in sorted(counts.items())}, out
