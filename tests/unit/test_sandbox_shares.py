"""The template sandbox shared fairly: workers lent to accounts in turns (round robin)."""

from __future__ import annotations

import threading

import pytest
from helpers import wait_until

from sysevents.templates.turns import TimedOut, Turns


def test_turns_go_round_robin_across_keys_each_key_in_arrival_order():
    turns = Turns(["worker"])
    held = turns.get("A")  # the only item is lent: everyone below waits in line
    served: list[str] = []

    def ask(name: str) -> None:
        item = turns.get(name[0])
        served.append(name)
        turns.put(item)

    threads = []
    for name in ("A1", "A2", "A3", "B1"):  # A's three queue first, then B's one
        threads.append(threading.Thread(target=ask, args=(name,)))
        threads[-1].start()
        want = {"A": min(len(threads), 3), **({"B": 1} if name == "B1" else {})}
        assert wait_until(lambda want=want: turns.waiting() == want, timeout=10, every=0.01)
    turns.put(held)
    for t in threads:
        t.join(10)
    assert served == ["A1", "B1", "A2", "A3"]  # B waited for one of A's, not for all three
    assert turns.waiting() == {}


def test_a_caller_that_times_out_leaves_its_line():
    turns = Turns(["worker"])
    held = turns.get("A")
    with pytest.raises(TimedOut):
        turns.get("B", timeout=0.05)
    assert turns.waiting() == {}
    turns.put(held)
    assert turns.get("B", timeout=1) == "worker"
