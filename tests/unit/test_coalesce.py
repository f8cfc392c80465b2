"""Leader/follower coalescing with at most N sends in flight per key (group commit)."""

from __future__ import annotations

import threading

import pytest
from helpers import wait_until

from sysevents.transport.coalesce import Coalescer


class Gate:
    """A send that records each call and blocks until released."""

    def __init__(self, fail_on: str | None = None):
        self.calls: list[tuple[str, list[str]]] = []
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)
        self.fail_on = fail_on

    def __call__(self, key: str, items: list[str]) -> list[str]:
        with self.lock:
            self.calls.append((key, list(items)))
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        self.entered.release()
        self.release.wait(10)
        with self.lock:
            self.running -= 1
        if self.fail_on in items:
            raise RuntimeError(f"send failed on {self.fail_on}")
        return [f"done:{i}" for i in items]


def until(check, timeout: float = 10.0) -> None:
    assert wait_until(check, timeout, every=0.005), "condition not reached"


def open_entries(c: Coalescer, key: str) -> int:
    with c._lock:
        batch = c._open.get(key)
        return len(batch.entries) if batch else 0


def submit_in_thread(c: Coalescer, key: str, item: str, results: dict) -> threading.Thread:
    def run():
        try:
            results[item] = c.submit(key, [item])
        except Exception as err:  # noqa: BLE001 - the test looks at it
            results[item] = err

    t = threading.Thread(target=run)
    t.start()
    return t


def test_with_one_in_flight_everything_that_arrives_meanwhile_shares_the_next_send():
    gate = Gate()
    c = Coalescer(gate, max_wait=0, max_in_flight=1)
    results: dict = {}
    threads = [submit_in_thread(c, "k", "a", results)]
    assert gate.entered.acquire(timeout=10)  # "a" is being sent, alone: nothing waited for joiners
    threads += [submit_in_thread(c, "k", x, results) for x in "bcdef"]
    until(lambda: open_entries(c, "k") == 5)  # they wait for "a"'s send to end, gathered in one batch
    assert [items for _, items in gate.calls] == [["a"]]
    gate.release.set()
    for t in threads:
        t.join(10)
    assert [items for _, items in gate.calls] == [["a"], ["b", "c", "d", "e", "f"]]
    assert results == {x: [f"done:{x}"] for x in "abcdef"}
    assert gate.most_running == 1
    assert (c.stats.calls, c.stats.items) == (2, 6)


def test_at_most_max_in_flight_sends_per_key_and_other_keys_do_not_wait():
    gate = Gate()
    c = Coalescer(gate, max_wait=0, max_in_flight=2)
    results: dict = {}
    threads = [submit_in_thread(c, "k", x, results) for x in "ab"]
    assert gate.entered.acquire(timeout=10) and gate.entered.acquire(timeout=10)
    threads.append(submit_in_thread(c, "k", "c", results))
    until(lambda: open_entries(c, "k") == 1)  # a third send of "k" waits
    threads.append(submit_in_thread(c, "other", "z", results))
    assert gate.entered.acquire(timeout=10)  # another key is not held up
    assert sorted(items[0] for _, items in gate.calls) == ["a", "b", "z"]
    gate.release.set()
    for t in threads:
        t.join(10)
    assert results["c"] == ["done:c"] and len(gate.calls) == 4


def test_a_failed_send_fails_exactly_its_own_submitters():
    gate = Gate(fail_on="c")
    c = Coalescer(gate, max_wait=0, max_in_flight=1)
    results: dict = {}
    threads = [submit_in_thread(c, "k", "a", results)]
    assert gate.entered.acquire(timeout=10)
    threads += [submit_in_thread(c, "k", x, results) for x in "bc"]
    until(lambda: open_entries(c, "k") == 2)
    gate.release.set()
    for t in threads:
        t.join(10)
    assert results["a"] == ["done:a"]
    assert all(isinstance(results[x], RuntimeError) for x in "bc")
    assert c._in_flight == {}  # the failed send gave its slot back
    assert c.submit("k", ["d"]) == ["done:d"]


def test_a_full_batch_is_sent_in_pieces_of_max_size():
    gate = Gate()
    gate.release.set()
    c = Coalescer(gate, max_size=2, max_wait=0, max_in_flight=1)
    assert c.submit("k", ["a", "b", "c"]) == ["done:a", "done:b", "done:c"]
    assert [items for _, items in gate.calls] == [["a", "b"], ["c"]]


@pytest.mark.parametrize("max_in_flight", [None, 1])
def test_a_lone_submit_with_no_wait_is_sent_at_once(max_in_flight):
    gate = Gate()
    gate.release.set()
    c = Coalescer(gate, max_wait=0, max_in_flight=max_in_flight)
    assert c.submit("k", ["a"]) == ["done:a"]
    assert gate.calls == [("k", ["a"])]
