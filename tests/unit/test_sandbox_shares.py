"""The template sandbox shared fairly: workers lent to accounts in turns (round robin), a cap on each
account's renders queued or running (a wait, never a lost render), and workers whose memory bound, with
the main process, fits in the function's memory. With real worker processes, no stand-ins."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import wait_until
from pydantic import ValidationError

from sysevents import topology
from sysevents.config import MIN_TEMPLATE_WORKER_MB, Settings, mebibytes
from sysevents.templates import SAMPLE_EVENT, TemplateError
from sysevents.templates.sandbox import AccountBusy, Sandbox
from sysevents.templates.turns import TimedOut, Turns

REPO = Path(__file__).resolve().parents[2]
SLOW = "std.foldl(function(a, b) a + b, std.range(1, %d), 0)"
"""A template that loops: about 0.3 s at 250,000 here (a render's length matters only for what is queued)."""


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


def test_another_accounts_renders_do_not_wait_behind_a_backlog_of_slow_ones():
    # Account A queues ten slow renders on two workers; account B's two, submitted after all of A's,
    # finish while several of A's are still to run (first come, first served they would finish last).
    sandbox = Sandbox(workers=2, timeout=60.0, max_wait=120.0)
    done: list[str] = []
    lock = threading.Lock()

    def render(aid: str, n: int) -> None:
        body = sandbox.render(SLOW % (250_000 + n), SAMPLE_EVENT, aid=aid)
        assert int(body) == (250_000 + n) * (250_001 + n) // 2
        with lock:
            done.append(aid)

    try:
        with ThreadPoolExecutor(12) as pool:
            a = [pool.submit(render, "A", n) for n in range(10)]
            assert wait_until(lambda: sandbox.waiting() == {"A": 8}, timeout=60, every=0.01)
            b = [pool.submit(render, "B", n) for n in range(2)]
            assert wait_until(lambda: sandbox.waiting().get("B") == 2 or "B" in done, timeout=60, every=0.01)
            for f in a + b:
                f.result(timeout=120)
    finally:
        sandbox.close()
    assert sorted(done) == ["A"] * 10 + ["B"] * 2
    last_b = max(i for i, aid in enumerate(done) if aid == "B")
    assert done[last_b + 1 :].count("A") >= 3, done  # B took its turns: at least three of A's ran after


def test_past_its_cap_an_account_is_told_to_wait_and_other_accounts_go_on():
    sandbox = Sandbox(workers=1, timeout=60.0, max_wait=120.0, per_account=2)
    try:
        with ThreadPoolExecutor(3) as pool:
            held = [pool.submit(sandbox.render, SLOW % 1_000_000, SAMPLE_EVENT, aid="A") for _ in range(2)]
            assert wait_until(lambda: sandbox.load() == {"A": 2}, timeout=60, every=0.01)
            with pytest.raises(AccountBusy, match="account A already has 2 template renders") as refused:
                sandbox.render("{id: event.id}", SAMPLE_EVENT, aid="A")
            assert refused.value.retry_after == 60.0  # a render ahead of it ends within the timeout
            other = pool.submit(
                sandbox.render, "{id: event.id}", SAMPLE_EVENT, aid="B"
            )  # queued, not refused
            assert [f.result(timeout=120) for f in held] == [b"500000500000"] * 2
            assert b'"id"' in other.result(timeout=120)
        assert sandbox.load() == {}
        assert b'"id"' in sandbox.render("{id: event.id}", SAMPLE_EVENT, aid="A")  # its turn again
    finally:
        sandbox.close()


def _terraform_default_memory() -> str:
    text = (REPO / "terraform" / "variables.tf").read_text()
    block = text[text.index('variable "function_defaults"') :]
    return re.search(r'memory\s*=\s*optional\(string,\s*"([^"]+)"\)', block).group(1)


@pytest.mark.parametrize("function", sorted(topology.load().functions))
def test_every_functions_workers_at_their_bound_and_its_main_process_fit_in_its_memory(monkeypatch, function):
    # What Terraform passes each function (its topology.json `memory`, else function_defaults.memory) is
    # what its sandbox is derived from.
    memory = topology.load().functions[function].memory or _terraform_default_memory()
    monkeypatch.setenv("SYSEVENTS_FUNCTION_MEMORY", memory)
    s = Settings()
    assert s.function_memory == mebibytes(memory)
    assert s.template_worker_memory_mb >= MIN_TEMPLATE_WORKER_MB
    assert s.template_workers * s.template_worker_memory_mb + s.template_main_memory_mb <= s.function_memory
    sandbox = Sandbox.of(s)  # what the function's Runtime builds
    assert (sandbox.memory_mb, sandbox.size) == (s.template_worker_memory_mb, s.template_workers)
    assert sandbox.per_account == s.template_max_per_account
    sandbox.close()  # no worker started: nothing rendered


def test_the_default_function_gets_two_workers_of_128_mib_that_render_and_stop_at_their_bound():
    s = Settings(function_memory=mebibytes(_terraform_default_memory()))
    assert (s.function_memory, s.template_workers, s.template_worker_memory_mb) == (512, 2, 128)
    sandbox = Sandbox(workers=1, timeout=60.0, memory_mb=s.template_worker_memory_mb)
    try:
        assert sandbox.render(SLOW % 1000, SAMPLE_EVENT, aid="A") == b"500500"
        with pytest.raises(TemplateError, match=r"memory limit \(128 MiB\)"):
            sandbox.render("std.makeArray(1e8, function(i) i)", SAMPLE_EVENT, aid="A")
        assert sandbox.render("{id: event.id}", SAMPLE_EVENT, aid="A")  # respawned, serving
    finally:
        sandbox.close()


@pytest.mark.parametrize(
    ("fields", "fits"),
    [
        ({}, True),
        ({"template_memory_mb": 512}, False),  # two 512 MiB workers in a 512 MiB function
        ({"template_workers": 4}, True),  # 4 x 64 + 256
        ({"template_workers": 8}, False),  # 32 MiB each: under the least a worker gets
        ({"template_workers": 8, "function_memory": 2048}, True),
        ({"template_memory_mb": 150, "template_main_memory_mb": 300}, False),  # 2 x 150 + 300
    ],
)
def test_settings_whose_workers_and_main_process_do_not_fit_are_refused(fields, fits):
    if fits:
        s = Settings(**fields)
        assert (
            s.template_workers * s.template_worker_memory_mb + s.template_main_memory_mb <= s.function_memory
        )
    else:
        with pytest.raises(ValidationError, match="do not fit in the function's"):
            Settings(**fields)


@pytest.mark.parametrize(
    ("size", "mib"), [("512Mi", 512), ("1Gi", 1024), ("2G", 1907), ("512M", 488), ("256", 256)]
)
def test_memory_sizes_read_as_terraform_and_cloud_run_write_them(size, mib):
    assert mebibytes(size) == mib
