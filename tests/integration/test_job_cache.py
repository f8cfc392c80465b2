"""The job cache against the Firestore emulator: the freshness guarantee, lookups, bounds, and the ingest
function end to end.

The guarantee (docs/architecture.md, "Job cache"): a job saved through JobStore at T is matched for every event that
reaches ingest after T + max_age. The cache never syncs in the background, so a cache whose clock does
not move stands for an instance whose CPU is throttled between requests (or whose sync is stalled): it
may answer from what it holds, but once max_age has passed since its last sync it must sync before
answering. The cache's clock is a fake one here, moved by the test: no timing is asserted.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import publish_events, pull, put_jobs, webhook_job

from sysevents.events.model import new_event
from sysevents.jobs import changes as changes_mod
from sysevents.jobs.cache import JobCache
from sysevents.jobs.model import JobState, job_to_dict
from sysevents.jobs.store import JobStore


class Clock:
    """Monotonic seconds that move only when the test says so (`tick`: by that much at every reading)."""

    def __init__(self, tick: float = 0.0):
        self.now, self.tick = 1000.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MAX_AGE = 5.0


def webhook(aid, job_id=None, verbs=("failed",), **fields):
    return webhook_job(job_id, aid, system_event_multiple_types=list(verbs), fields=fields)


def ids(jobs):
    return sorted(j.id for j in jobs)


@pytest.fixture
def clock():
    return Clock(tick=1e-6)  # every reading is later than the one before, as a real clock's


@pytest.fixture
def cache(firestore_client, clock):
    # margin 0: every write in these tests returns before the cache syncs (none is in flight across a sync),
    # so each sync reads this test's markers only; test_concurrent_writes_of_two_accounts_* keeps the margin
    c = JobCache(JobStore(firestore_client), max_age=MAX_AGE, clock=clock, margin=0).start()
    yield c
    c.stop()


def test_a_job_saved_is_matched_once_max_age_has_passed_though_the_cache_never_ran_meanwhile(
    store, cache, clock, aid
):
    event = new_event(aid, "work", "w1", "failed")
    assert cache.match(event) == []  # the account is held (with no job)
    job = store.put(webhook(aid))
    # Within max_age of its last sync the cache answers from what it holds: the job may be missing.
    # (It is, here: nothing made it sync. This is what the next step's assertion depends on.)
    assert cache.match(new_event(aid, "work", "w2", "failed")) == []
    clock.advance(MAX_AGE)
    assert ids(cache.match(new_event(aid, "work", "w3", "failed"))) == [job.id]


def test_changes_pauses_and_deletes_reach_the_cache_the_same_way(store, cache, clock, aid):
    a, b = store.put(webhook(aid, "a")), store.put(webhook(aid, "b", verbs=("created",)))
    failed = new_event(aid, "work", "w1", "failed")
    assert ids(cache.match(failed)) == ["a"]

    store.change(aid, "b", lambda j: j.model_copy(update={"config": a.config}))
    store.change(aid, "a", lambda j: j.model_copy(update={"state": JobState.PAUSED}))
    assert ids(cache.match(failed)) == ["a"]  # not synced yet
    clock.advance(MAX_AGE)
    assert ids(cache.match(failed)) == ["b"]

    store.remove(aid, "b")
    clock.advance(MAX_AGE)
    assert cache.match(failed) == []
    assert cache.get(aid, "b") is None
    assert cache.get(aid, "a").state is JobState.PAUSED
    assert b.version == 1


def test_with_max_age_zero_every_job_saved_before_a_call_is_seen_by_it(store, firestore_client, aid):
    cache = JobCache(JobStore(firestore_client), max_age=0, clock=Clock(tick=1e-6)).start()
    event = new_event(aid, "work", "w1", "failed")
    saved = []
    for n in range(8):
        saved.append(store.put(webhook(aid, f"j{n}")).id)
        assert ids(cache.match(event)) == saved
        assert cache.get(aid, f"j{n}") is not None


def test_a_lookup_loads_one_job_and_a_newer_version_is_read_again(store, cache, aid):
    store.put(webhook(aid, "one"))
    store.put(webhook(aid, "other"))
    before = cache.documents_read
    assert cache.get(aid, "one").version == 1
    assert cache.documents_read - before == 1  # that job only, not its account
    assert (aid, "other") not in {(j.aid, j.id) for j in cache._index.all()}

    store.change(aid, "one", lambda j: j.model_copy(update={"name": "renamed"}))
    assert cache.get(aid, "one").version == 1  # within max_age: the copy held
    # A delivery matched at version 2 (ingest synced since) does not wait for this cache's max age.
    assert cache.get(aid, "one", min_version=2).name == "renamed"
    assert cache.get(aid, "missing") is None


def test_a_job_held_for_lookups_is_not_matched_until_its_account_is_loaded(store, cache, aid):
    store.put(webhook(aid, "a"))
    store.put(webhook(aid, "b"))
    assert cache.get(aid, "a") is not None  # held singly (as a sink holds it)
    # Matching needs the account whole: it loads it, and both jobs match.
    assert ids(cache.match(new_event(aid, "work", "w1", "failed"))) == ["a", "b"]


def test_a_cache_too_far_behind_forgets_and_reloads(store, cache, clock, aid, monkeypatch):
    monkeypatch.setattr(changes_mod, "RECENT_CHANGES", 3)  # the marker lists only the last 3 writes
    store.put(webhook(aid, "keep"))
    event = new_event(aid, "work", "w1", "failed")
    assert ids(cache.match(event)) == ["keep"]
    for n in range(5):
        store.put(webhook(aid, f"new{n}"))
    store.remove(aid, "keep")
    clock.advance(MAX_AGE)
    assert ids(cache.match(event)) == [f"new{n}" for n in range(5)]


def test_memory_is_bounded_least_recently_used_accounts_out(store, firestore_client, aid):
    cache = JobCache(JobStore(firestore_client), max_age=MAX_AGE, max_jobs=4, clock=Clock(tick=1e-6)).start()
    accounts = [f"{aid}-a", f"{aid}-b", aid]
    for account in accounts:
        for n in range(2):
            store.put(webhook(account, f"j{n}"))
    for account in accounts:
        assert ids(cache.match(new_event(account, "work", "w1", "failed"))) == ["j0", "j1"]
        assert len(cache) <= 4
    held = {j.aid for j in cache._index.all()}
    assert held == {f"{aid}-b", aid}  # the least recently used account went out
    before = cache.documents_read
    assert ids(cache.match(new_event(accounts[0], "work", "w1", "failed"))) == ["j0", "j1"]
    assert cache.documents_read - before == 2  # loaded again


def test_jobs_lists_every_job_once_then_syncs(store, cache, clock, aid):
    store.put(webhook(aid, "listed"))
    assert (aid, "listed") in {(j.aid, j.id) for j in cache.jobs()}
    store.remove(aid, "listed")
    clock.advance(MAX_AGE)
    assert (aid, "listed") not in {(j.aid, j.id) for j in cache.jobs()}


def test_a_filtered_listing_keeps_only_the_jobs_wanted_and_follows_changes(store, cache, clock, aid):
    def named(job):
        return job.name == "wanted"

    def listed():
        return {j.id for j in cache.jobs(where=named) if j.aid == aid}

    store.put(webhook(aid, "a", name="wanted"))
    store.put(webhook(aid, "b"))
    assert listed() == {"a"}
    assert len(cache) == 0  # the listing is not what matching and lookups hold
    store.change(aid, "b", lambda j: j.model_copy(update={"name": "wanted"}))
    store.change(aid, "a", lambda j: j.model_copy(update={"name": "other"}))
    clock.advance(MAX_AGE)
    before = cache.documents_read
    assert listed() == {"b"}
    assert cache.documents_read - before == 3  # the marker and the two changed jobs, not every job


def test_concurrent_writes_of_two_accounts_both_reach_a_cache_within_its_bound(store, firestore_client, aid):
    """Two accounts write jobs at once (each on its own marker) while the cache syncs again and again, so
    writes are in flight across its syncs (the default margin): once max_age has passed after the last
    write, the cache has every job of both."""
    clock = Clock(tick=1e-6)
    cache = JobCache(JobStore(firestore_client), max_age=MAX_AGE, clock=clock).start()
    accounts = [f"{aid}-a", f"{aid}-b"]
    events = {a: new_event(a, "work", "w1", "failed") for a in accounts}
    for a in accounts:
        assert cache.match(events[a]) == []  # both held before they write
    done = threading.Event()

    def sync_all_along() -> None:
        while not done.is_set():
            clock.advance(MAX_AGE)
            for a in accounts:
                cache.match(events[a])

    syncer = threading.Thread(target=sync_all_along)
    syncer.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda a: [store.put(webhook(a, f"j{n:02d}")) for n in range(12)], accounts))
    finally:
        done.set()
        syncer.join()
    syncs = cache.syncs
    clock.advance(MAX_AGE)
    for a in accounts:
        assert ids(cache.match(events[a])) == [f"j{n:02d}" for n in range(12)]
    assert syncs > 2  # the cache did sync while the writes went on


def test_writes_through_the_marker_of_every_account_reach_the_cache(
    store, cache, clock, aid, firestore_client
):
    """A deployment being upgraded: a writer of the version before markers per account changes a job and
    bumps the one marker of every account (`job_changes/marker`). The cache cannot tell what it missed
    there the first time, so it reloads; then it follows that marker's seq."""
    from google.cloud import firestore

    legacy = firestore_client.collection(changes_mod.CHANGES_COLLECTION).document(changes_mod.LEGACY_ID)

    def old_version_write(job_id: str, seq: int, **fields) -> None:
        job = store.get(aid, job_id).model_copy(update=fields)
        batch = firestore_client.batch()
        batch.set(store.ref(aid, job_id), job_to_dict(job))
        recent = json.dumps([[seq, aid, job_id]])
        batch.set(legacy, {"seq": seq, "recent": recent, "changed_at": firestore.SERVER_TIMESTAMP})
        batch.commit()

    store.put(webhook(aid, "a"))
    store.put(webhook(aid, "b"))
    failed = new_event(aid, "work", "w1", "failed")
    try:
        assert ids(cache.match(failed)) == ["a", "b"]
        old_version_write("a", 7, state=JobState.PAUSED)
        clock.advance(MAX_AGE)
        assert ids(cache.match(failed)) == ["b"]  # reloaded
        old_version_write("b", 8, state=JobState.PAUSED)
        clock.advance(MAX_AGE)
        before = cache.documents_read
        assert cache.match(failed) == []
        assert cache.documents_read - before == 2  # the one marker that changed and job b: no reload
    finally:
        legacy.delete()


# -- end to end: the ingest function ------------------------------------------------------------------------
def _health(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - the stack's own function
        return json.loads(resp.read())["job_cache"]


def test_ingest_matches_a_job_saved_max_age_before_the_event_without_being_told(
    stack, store, publisher, subscriber, fresh_subscription, aid
):
    """The ingest function holds the account already; a second job is saved and, max_age later (as the
    function reports it), an event published: both jobs get it. Nothing asks the function to sync in
    between (its GET would)."""
    import time

    sub = fresh_subscription(stack.topology.sinks["webhook"].topic)
    first = webhook(aid, "first")
    put_jobs(stack, store, first)
    publish_events(stack, publisher, new_event(aid, "work", "w1", "failed"))
    got = pull(subscriber, sub, 1, aid=aid)
    assert [m.attributes["job_id"] for m in got] == ["first"]

    max_age = _health(stack.function_urls["ingest"])["max_age_ms"] / 1000
    store.put(webhook(aid, "second"))
    time.sleep(max_age)  # the guarantee's precondition: published after T + max_age (nothing is timed)
    event = new_event(aid, "work", "w2", "failed")
    publish_events(stack, publisher, event)
    got = pull(subscriber, sub, 2, aid=aid)
    assert sorted(m.attributes["job_id"] for m in got) == ["first", "second"]
    assert {m.attributes["event_id"] for m in got} == {event.id}
