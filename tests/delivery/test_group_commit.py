"""Group commit of delivery accounting, against the Firestore emulator: concurrent deliveries' records and
counters share commits, each `record` returns once its own records are durable, counts stay exact, a
commit holds at most 500 writes, a repeated settling counts once, and a bad record fails alone."""

from __future__ import annotations

import threading
import uuid

import pytest
from helpers import wait_until, webhook_job

from sysevents.delivery.accounting import COMMIT_RECORDS, MAX_WRITES, DeliveryLog

pytestmark = pytest.mark.integration


def a_job(aid: str | None = None):
    return webhook_job(None, aid or f"acct-{uuid.uuid4().hex[:8]}")


class HeldLog(DeliveryLog):
    """A DeliveryLog whose first group commit waits until released; records every commit's size."""

    def __init__(self, client, **kw):
        super().__init__(client, collection=f"t_{uuid.uuid4().hex[:10]}", **kw)
        self.sizes: list[int] = []
        self.entered = threading.Event()
        self.hold = threading.Event()

    def _commit(self, key, entries):
        self.sizes.append(len(entries))
        if len(self.sizes) == 1:
            self.entered.set()
            self.hold.wait(60)
        return super()._commit(key, entries)

    def gathered(self) -> int:
        with self._commits._lock:
            batch = self._commits._open.get("")
            return len(batch.entries) if batch else 0


def until(check, timeout: float = 30.0) -> None:
    assert wait_until(check, timeout, every=0.01), "condition not reached"


def delivered(log: DeliveryLog, job, n: int = 0, **kw) -> dict:
    args = {
        "event_id": f"e-{uuid.uuid4().hex}",
        "delivery_id": f"d-{n}",
        "attempt": 1,
        "outcome": "delivered",
        "first_seen": True,
        "status": 200,
        "key": uuid.uuid4().hex,
    }
    args.update(kw)
    log.record(job, **args)
    return args


def in_threads(fns) -> tuple[list[threading.Thread], list]:
    errors: list = []

    def run(fn):
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - the test looks at them
            errors.append(err)

    threads = [threading.Thread(target=run, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    return threads, errors


def counts(log: DeliveryLog, job) -> tuple:
    s = log.stats(job)
    return s["received"], s["delivered"], s["failed_attempts"], s["delayed"], s["pending"]


def spied(stack):
    """A Firestore client of the emulator, and the number of writes of each commit it makes."""
    from google.cloud import firestore

    client = firestore.Client(project=stack.project)
    writes_per_commit: list[int] = []
    commit = client._firestore_api.commit

    def spy(*args, **kwargs):
        writes_per_commit.append(len(kwargs["request"]["writes"]))
        return commit(*args, **kwargs)

    client._firestore_api.commit = spy
    return client, writes_per_commit


def test_concurrent_deliveries_share_one_commit_and_each_returns_once_durable(stack):
    client, writes_per_commit = spied(stack)
    log = HeldLog(client, commits_in_flight=1)
    jobs = [a_job() for _ in range(3)]
    first, errors = in_threads([lambda: delivered(log, jobs[0])])
    assert log.entered.wait(30)  # the first delivery's commit is under way (held)
    done: list[int] = []
    lock = threading.Lock()

    def one(i):
        delivered(log, jobs[i % 3], i)
        with lock:
            done.append(i)

    rest, more = in_threads([lambda i=i: one(i) for i in range(60)])
    until(lambda: log.gathered() == 60)  # all 60 wait for the running commit, gathered in one batch
    assert done == [] and counts(log, jobs[1]) == (0, 0, 0, 0, 0)  # none answered, nothing written yet
    log.hold.set()
    for t in first + rest:
        t.join(60)
    assert errors == more == []
    assert log.sizes == [1, 60]
    assert writes_per_commit == [
        2,
        60 + 3,
    ]  # each job's counters: one write per commit    assert counts(log, jobs[0]) == (21, 21, 0, 0, 0)
    assert counts(log, jobs[1]) == counts(log, jobs[2]) == (20, 20, 0, 0, 0)
    assert len(log.attempts(jobs[1], limit=100)) == 20
    assert (log.commit_stats.calls, log.commit_stats.items) == (2, 61)


def test_counts_are_exact_under_concurrency(firestore_client):
    log = DeliveryLog(firestore_client, collection=f"t_{uuid.uuid4().hex[:10]}")
    job = a_job()
    outcomes = ["delivered"] * 5 + ["retry"] * 2 + ["dead_lettered"]

    def settle(i):
        outcome = outcomes[i % len(outcomes)]
        delivered(
            log, job, i, outcome=outcome, delayed=1 if outcome == "retry" else 0, status=None, error="x"
        )

    threads, errors = in_threads([lambda i=i: settle(i) for i in range(200)])
    for t in threads:
        t.join(120)
    assert errors == []
    s = log.stats(job)
    assert (s["received"], s["delivered"], s["dead_lettered"], s["failed_attempts"], s["delayed"]) == (
        200,
        125,
        25,
        50,
        50,
    )
    assert s["pending"] == 50 and s["last_delivered_at"] is not None
    assert len(log.attempts(job, limit=500)) == 200


def test_a_commit_holds_at_most_500_writes(stack):
    client, writes_per_commit = spied(stack)
    log = HeldLog(client, commits_in_flight=1)
    jobs = [a_job() for _ in range(COMMIT_RECORDS + 10)]  # every record its own job: its own counter write
    first, errors = in_threads([lambda: delivered(log, jobs[0])])
    assert log.entered.wait(30)
    rest, more = in_threads([lambda j=j: delivered(log, j) for j in jobs])
    # a batch is closed when full: 250 wait in one, the last 10 in the next (both for the running commit)
    until(lambda: log.gathered() == len(jobs) - COMMIT_RECORDS)
    log.hold.set()
    for t in first + rest:
        t.join(120)
    assert errors == more == []
    assert sorted(log.sizes) == [1, 10, COMMIT_RECORDS]
    assert sorted(writes_per_commit) == [2, 20, MAX_WRITES]  # 250 records of 250 jobs: + 250 counter writes
    assert counts(log, jobs[0]) == (2, 2, 0, 0, 0)
    assert counts(log, jobs[-1]) == (1, 1, 0, 0, 0)


def test_a_repeated_settling_counts_once(firestore_client):
    log = DeliveryLog(firestore_client, collection=f"t_{uuid.uuid4().hex[:10]}")
    job = a_job()
    args = delivered(log, job)
    delivered(log, job, **{k: v for k, v in args.items()})  # Pub/Sub redelivered it: settled the same way
    assert counts(log, job) == (1, 1, 0, 0, 0)
    assert len(log.attempts(job)) == 1
    # a retry put away, then settled again the same way (same release key): one attempt, one delay
    retry = {"outcome": "retry", "status": 503, "delayed": 1, "then": "k2", "key": "k1"}
    delivered(log, job, **retry)
    delivered(log, job, **retry)
    assert counts(log, job) == (2, 1, 1, 1, 1)
    # the release comes back twice (two tasks of one release): counted once
    for _ in range(2):
        delivered(log, job, key="k2", attempt=2, first_seen=False, delayed=-1)
    assert counts(log, job) == (2, 2, 1, 0, 0)


def test_a_repeat_that_decided_otherwise_counts_as_its_own_and_the_counts_reconcile(firestore_client):
    log = DeliveryLog(firestore_client, collection=f"t_{uuid.uuid4().hex[:10]}")
    job = a_job()
    delivered(log, job, key="m1")  # delivered ...
    # ... then redelivered after a crash, and this time the receiver failed: a retry put away
    delivered(log, job, key="m1", outcome="retry", status=503, delayed=1, then="m1-2")
    delivered(log, job, key="m1-2", attempt=2, first_seen=False, delayed=-1)  # that release delivered
    s = log.stats(job)
    assert (s["received"], s["delivered"], s["delayed"], s["pending"]) == (2, 2, 0, 0)


def test_repeats_within_one_commit_count_once(firestore_client):
    log = HeldLog(firestore_client, commits_in_flight=1)
    job = a_job()
    first, errors = in_threads([lambda: delivered(log, job)])
    assert log.entered.wait(30)
    same = {"event_id": "e-same", "key": "same-message"}
    rest, more = in_threads([lambda: delivered(log, job, **same) for _ in range(3)])
    until(lambda: log.gathered() == 3)
    log.hold.set()
    for t in first + rest:
        t.join(60)
    assert errors == more == []
    assert counts(log, job) == (2, 2, 0, 0, 0)


def test_a_settling_that_reached_no_destination_is_not_in_the_attempt_log(firestore_client):
    log = DeliveryLog(firestore_client, collection=f"t_{uuid.uuid4().hex[:10]}")
    job = a_job()
    for _ in range(2):  # a wait for a rate-limit slot, repeated: counted once
        delivered(log, job, key="w1", outcome="waiting", log_attempt=False, delayed=1, then="w2")
    delivered(log, job, key="w2", first_seen=False, delayed=-1)
    assert counts(log, job) == (1, 1, 0, 0, 0)
    assert [a["outcome"] for a in log.attempts(job)] == ["delivered"]
    assert all("then" not in a and "attempted" not in a for a in log.attempts(job))


def test_the_attempt_log_pages_past_settlings_it_does_not_list(firestore_client):
    log = DeliveryLog(firestore_client, collection=f"t_{uuid.uuid4().hex[:10]}")
    job = a_job()
    for i in range(3):
        delivered(log, job, i, status=200 + i)
    for i in range(5):
        delivered(log, job, key=f"f{i}", outcome="filtered", log_attempt=False)
    assert [a["status"] for a in log.attempts(job, limit=2)] == [202, 201]
    assert [a["status"] for a in log.attempts(job, limit=3)] == [202, 201, 200]


def test_a_record_firestore_cannot_hold_fails_alone(firestore_client):
    log = HeldLog(firestore_client, commits_in_flight=1)
    job = a_job()
    first, errors = in_threads([lambda: delivered(log, job)])
    assert log.entered.wait(30)
    rest, more = in_threads(
        [lambda: delivered(log, job, status=object())] + [lambda: delivered(log, job) for _ in range(4)]
    )
    until(lambda: log.gathered() == 5)
    log.hold.set()
    for t in first + rest:
        t.join(60)
    assert errors == [] and len(more) == 1 and isinstance(more[0], TypeError)
    assert counts(log, job) == (5, 5, 0, 0, 0)
