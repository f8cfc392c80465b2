"""An account's deliveries in progress on this function instance, at most its share of the threads.

`take(aid)` before a delivery runs: None when the account is under its share (call `done` after), else the
seconds its delivery waits on the delay queue. Refused deliveries of one account are given return times
one service interval apart (the account's recent time per delivery here, divided by its share): a backlog
of N comes back over about the time the account's share takes to serve N, not all at once, so a flood
costs about one refusal per delivery rather than one per delivery per second.
"""

from __future__ import annotations

import os
import threading
import time

MIN_SERVICE = 0.02
"""Seconds a delivery is taken to last when the account has none measured yet here."""
MAX_WAIT = 60.0
"""Longest a refused delivery waits before it tries again (then it takes a new place)."""


def default_share() -> int:
    """Half the instance's request threads (functions-framework's THREADS; Cloud Run's concurrency
    matches it), at least one."""
    threads = os.environ.get("THREADS", "")
    n = int(threads) if threads.isdigit() else (os.cpu_count() or 1) * 4
    return max(1, n // 2)


class InstanceShares:
    def __init__(self, share: int | None = None, clock=time.monotonic, max_keys: int = 10_000):
        self.share = share or default_share()
        self._clock = clock
        self._lock = threading.Lock()
        self._busy: dict[str, int] = {}
        self._service: dict[str, float] = {}  # seconds per delivery, moving average
        self._next: dict[str, float] = {}  # when the account's last refused delivery comes back
        self._max_keys = max_keys

    def take(self, aid: str) -> float | None:
        with self._lock:
            busy = self._busy.get(aid, 0)
            if busy < self.share:
                if len(self._busy) >= self._max_keys and aid not in self._busy:
                    self._forget()
                self._busy[aid] = busy + 1
                return None
            now = self._clock()
            interval = max(self._service.get(aid, MIN_SERVICE), MIN_SERVICE) / self.share
            at = min(max(now, self._next.get(aid, now)) + interval, now + MAX_WAIT)
            self._next[aid] = at
            return at - now

    def done(self, aid: str, seconds: float) -> None:
        with self._lock:
            self._busy[aid] = max(0, self._busy.get(aid, 1) - 1)
            old = self._service.get(aid)
            self._service[aid] = seconds if old is None else 0.7 * old + 0.3 * seconds

    def busy(self, aid: str) -> int:
        with self._lock:
            return self._busy.get(aid, 0)

    def _forget(self) -> None:
        for aid in [a for a, n in self._busy.items() if n == 0]:
            del self._busy[aid]
            self._service.pop(aid, None)
            self._next.pop(aid, None)
