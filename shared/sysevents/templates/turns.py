"""Lending a few things (the template sandbox's workers) to many accounts' callers in turns.

A caller asks for an item on behalf of an account (`get(key)`) and gives it back (`put`). When every item
is lent, callers wait in their account's line, and the next item returned goes to the account whose turn
it is: the accounts that have someone waiting take turns, round robin, each account's callers in the
order they came. An account with a hundred renders queued therefore takes one item in every round, and
an account that asks after it waits for at most one render of each other waiting account, not for the
hundred.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class TimedOut(Exception):
    """No item was handed to this caller within its timeout (it left its line)."""


class _Ticket(Generic[T]):
    __slots__ = ("key", "ready", "item", "served")

    def __init__(self, key: str):
        self.key = key
        self.ready = threading.Event()
        self.item: T | None = None
        self.served = False


class Turns(Generic[T]):
    """A pool of items lent round robin across keys (accounts); `get` and `put` behave like a queue's."""

    def __init__(self, items: Iterable[T]):
        self._lock = threading.Lock()
        self._free: list[T] = list(items)  # the last one given back goes out first (a warm worker)
        self._lines: OrderedDict[str, deque[_Ticket[T]]] = OrderedDict()  # in turn order

    def get(self, key: str = "", timeout: float | None = None) -> T:
        """An item for `key`'s caller: at once if one is free and nobody waits, else in `key`'s turn.
        Raises TimedOut after `timeout` seconds without one (None: wait as long as it takes)."""
        ticket: _Ticket[T] = _Ticket(key)
        with self._lock:
            self._lines.setdefault(key, deque()).append(ticket)
            self._hand_out()
        if not ticket.ready.wait(timeout):
            with self._lock:
                if not ticket.served:  # still in line: leave it
                    line = self._lines[key]
                    line.remove(ticket)
                    if not line:
                        del self._lines[key]
                    raise TimedOut(key)
        return ticket.item  # type: ignore[return-value]

    def put(self, item: T) -> None:
        """Give an item back: to the caller whose turn it is, or to the free ones."""
        with self._lock:
            self._free.append(item)
            self._hand_out()

    def waiting(self) -> dict[str, int]:
        """Callers waiting for an item, per key, in turn order."""
        with self._lock:
            return {key: len(line) for key, line in self._lines.items()}

    def _hand_out(self) -> None:
        while self._free and self._lines:
            key, line = next(iter(self._lines.items()))
            ticket = line.popleft()
            if line:
                self._lines.move_to_end(key)  # its next caller waits for every other account's turn
            else:
                del self._lines[key]
            ticket.item, ticket.served = self._free.pop(), True
            ticket.ready.set()
