"""Leader/follower coalescing: concurrent request threads of one instance share one call.

The first thread to submit items for a key opens a batch and becomes its leader; it waits until the
batch holds `max_size` items, `max_wait` seconds have passed, or (with `idle`) no item joined for that
long (when every request thread is already waiting, waiting longer only adds latency). The leader then
calls `send(key, items)` once, and every submitter gets its own items' results (or the exception).
There is no background thread: the leader sends (Cloud Functions allocate CPU only while requests run).

With `max_in_flight`, at most that many sends per key run at once: a leader whose key has that many in
flight keeps its batch open until one of them ends, then sends at once (group commit: under load each
send takes everything that arrived while the previous ones ran; when idle nothing waits). `max_wait`
and `idle` still bound the wait for joiners when a slot is free (0: none).

Used by BigQuery streaming inserts (rows of concurrent requests share insertAll calls), webhook batching
(concurrent deliveries of one job share a POST) and delivery accounting (the attempt records and
counters of concurrent deliveries share a Firestore commit).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
I = TypeVar("I")  # noqa: E741 - the item type
R = TypeVar("R")


@dataclass
class Stats:
    calls: int = 0
    items: int = 0
    sizes: list[int] = field(default_factory=list)

    @property
    def items_per_call(self) -> float:
        return self.items / self.calls if self.calls else 0.0


class _Batch(Generic[I]):
    __slots__ = ("entries", "full")

    def __init__(self) -> None:
        self.entries: list[tuple[I, Future]] = []
        self.full = threading.Event()


class Coalescer(Generic[K, I, R]):
    def __init__(
        self,
        send: Callable[[K, list[I]], Sequence[R]],
        *,
        max_size: int = 500,
        max_wait: float = 0.1,
        idle: float | None = None,
        max_in_flight: int | None = None,
    ):
        self._send = send
        self.max_size = max_size
        self.max_wait = max_wait
        self.idle = idle
        self.max_in_flight = max_in_flight
        self._lock = threading.Lock()
        self._slots = threading.Condition(self._lock)
        self._open: dict[K, _Batch[I]] = {}
        self._in_flight: dict[K, int] = {}
        self.stats = Stats()

    def submit(
        self, key: K, items: Sequence[I], *, max_size: int | None = None, max_wait: float | None = None
    ) -> list[R]:
        """Results for `items`, in order; blocks until the batch they joined was sent."""
        size = max_size or self.max_size
        futures: list[Future] = []
        with self._lock:
            batch = self._open.get(key)
            leader = batch is None
            if batch is None:
                batch = self._open[key] = _Batch()
            for item in items:
                fut: Future = Future()
                batch.entries.append((item, fut))
                futures.append(fut)
            if len(batch.entries) >= size:
                self._open.pop(key, None)  # later items start a new batch
                batch.full.set()
        if leader:
            self._gather(batch, self.max_wait if max_wait is None else max_wait)
            with self._slots:
                if self.max_in_flight is not None:
                    while self._in_flight.get(key, 0) >= self.max_in_flight:
                        self._slots.wait()  # joiners keep coming into this batch meanwhile
                    self._in_flight[key] = self._in_flight.get(key, 0) + 1
                if self._open.get(key) is batch:
                    del self._open[key]
            try:
                self._flush(key, batch.entries, size)
            finally:
                if self.max_in_flight is not None:
                    with self._slots:
                        left = self._in_flight[key] - 1
                        if left:
                            self._in_flight[key] = left
                        else:
                            del self._in_flight[key]
                        self._slots.notify_all()
        return [f.result() for f in futures]

    def _gather(self, batch: _Batch, wait: float) -> None:
        if self.idle is None:
            batch.full.wait(wait)
            return
        deadline = time.monotonic() + wait
        seen = -1
        while (left := deadline - time.monotonic()) > 0:
            with self._lock:
                count = len(batch.entries)
            if count == seen:
                return
            seen = count
            if batch.full.wait(min(self.idle, left)):
                return

    def _flush(self, key: K, entries: list[tuple[I, Future]], size: int) -> None:
        for start in range(0, len(entries), size):
            chunk = entries[start : start + size]
            try:
                results = list(self._send(key, [item for item, _ in chunk]))
                if len(results) != len(chunk):
                    raise RuntimeError(f"send returned {len(results)} results for {len(chunk)} items")
            except BaseException as err:  # every submitter must hear about it
                for _, fut in chunk:
                    fut.set_exception(err)
                continue
            with self._lock:
                self.stats.calls += 1
                self.stats.items += len(chunk)
                self.stats.sizes.append(len(chunk))
            for (_, fut), result in zip(chunk, results, strict=True):
                fut.set_result(result)
