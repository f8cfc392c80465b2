"""Noisy neighbour, end to end on the real emulators: account A floods a slow receiver, a receiver that
answers 503 with Retry-After, a slow template and the audit search, while account B sends a few events
to its own fast receiver. B loses nothing; A loses nothing
either (its deliveries wait, none fails or is dead-lettered by the caps); A's searches past its rate get
429 with Retry-After, and B's search is answered beside them."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from helpers import api_account, publish_events, put_jobs, wait_until, webhook_job

from sysevents.events.model import new_event
from sysevents.local.receiver import Receiver, Reply
from sysevents.runtime import Runtime

SLOW_TEMPLATE = '{"s": event.data.subject_id, "n": std.foldl(function(a, b) a + b, std.range(1, 250000), 0)}'
SLOW_JOBS, SLOW_EVENTS = 4, 12  # 48 deliveries of half a second each into A's slow receiver
BUSY_EVENTS = 6
SEARCHES = 14  # past the session stack's 10 searches per minute (tests/conftest.py)


@pytest.fixture
def receivers():
    made = [Receiver().start() for _ in range(4)]
    yield made
    for r in made:
        r.stop()


def unique(receiver: Receiver, path: str) -> set[bytes]:
    return {r.body for r in receiver.at(path)}


def test_a_flooding_account_neither_holds_back_nor_loses_another_accounts_deliveries(
    stack, store, publisher, aid, receivers
):
    a, b = aid, aid + "-b"
    slow, busy, templated, fast = receivers
    slow.script = lambda request: Reply(200, delay=0.5)
    refused_until = time.monotonic() + 2.0  # "slow down" for two seconds, then it takes everything
    busy.script = lambda request: (
        Reply(503, {"Retry-After": "1"}) if time.monotonic() < refused_until else None
    )
    a_jobs = [
        webhook_job(None, a, slow.url("/slow"), system_event_sources={"user": []}) for _ in range(SLOW_JOBS)
    ]
    a_jobs.append(webhook_job(None, a, busy.url("/busy"), system_event_sources={"segment": []}))
    a_jobs.append(webhook_job(None, a, templated.url("/t"), system_event_sources={"campaign": []},
                              json_template=SLOW_TEMPLATE))  # fmt: skip
    b_job = webhook_job(None, b, fast.url("/b"), system_event_sources={"journey": []})
    put_jobs(stack, store, *a_jobs, b_job)
    a_env, b_env = api_account(stack, a, "read"), api_account(stack, b, "read")

    publish_events(stack, publisher, *[new_event(a, "user", f"u{i}", "failed") for i in range(SLOW_EVENTS)])
    publish_events(
        stack, publisher, *[new_event(a, "segment", f"s{i}", "failed") for i in range(BUSY_EVENTS)]
    )
    publish_events(
        stack, publisher, *[new_event(a, "campaign", f"c{i}", "failed") for i in range(BUSY_EVENTS)]
    )
    publish_events(stack, publisher, *[new_event(b, "journey", f"j{i}", "failed") for i in range(10)])

    def search_as(account, env) -> requests.Response:
        url = f"{env['SYSEVENTS_API_URL']}/accounts/{account}/audit"
        return requests.get(url, params={"page_size": 1}, headers={"X-API-Key": env["SYSEVENTS_API_KEY"]},
                            timeout=60)  # fmt: skip

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: search_as(a, a_env), range(SEARCHES)))
    b_answer = search_as(b, b_env)

    assert wait_until(lambda: len(unique(fast, "/b")) == 10, timeout=60), "B lost deliveries"
    want = SLOW_JOBS * SLOW_EVENTS
    assert wait_until(lambda: len(slow.received) >= want, timeout=90), len(slow.requests)
    assert wait_until(lambda: len(unique(busy, "/busy")) >= BUSY_EVENTS and len(unique(templated, "/t")) >= BUSY_EVENTS, timeout=60)  # fmt: skip

    refused = [r for r in answers if r.status_code == 429]
    assert refused and all(int(r.headers["Retry-After"]) >= 1 for r in refused), [
        r.status_code for r in answers
    ]
    assert {r.status_code for r in answers} <= {200, 429}
    assert "audit searches" in refused[0].json()["error"]["message"]
    assert b_answer.status_code == 200, b_answer.text  # A's rate is A's alone

    rt = Runtime()
    try:

        def settled() -> bool:
            return all(rt.accounting.stats(j)["pending"] == 0 for j in a_jobs)

        assert wait_until(settled, timeout=30)
        for job in a_jobs:
            s = rt.accounting.stats(job)
            assert s["dead_lettered"] == 0 and s["delivered"] == s["received"], (job.config.webhook_url, s)
    finally:
        rt.close()
