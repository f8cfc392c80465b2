"""Alert state against the real Firestore emulator with a controlled clock: grouping timers (group_wait,
group_interval, repeat_interval), digests, rate limits, silences, mute windows, exactly-once under
redelivery and concurrency, and digest retries. Mail goes to the stack's real SMTP server."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from sysevents.alerts.engine import AlertState, Decision
from sysevents.config import Settings
from sysevents.events import new_event
from sysevents.jobs import job_from_dict
from sysevents.sinks.email.mailer import Outcome
from sysevents.templates.sandbox import Sandbox

pytestmark = pytest.mark.integration
T0 = datetime(2031, 3, 3, 12, 0, tzinfo=UTC)  # a Monday


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def sandbox():
    s = Sandbox(workers=1, timeout=2.0, memory_mb=512)
    yield s
    s.close()


@pytest.fixture
def state(stack, firestore_client, sandbox):
    """Alert state in collections of this test's own, out of reach of the stack's flush ticker."""
    settings = Settings(alerts_collection_prefix=f"t{uuid.uuid4().hex[:8]}_", alerts_max_attempts=3)
    yield AlertState(firestore_client, settings, evaluate=sandbox.render_value)


@pytest.fixture
def to(aid):
    return f"state-{aid}@example.com"


def job(aid, recipients, **config):
    config.setdefault("system_event_type", "failed")
    return job_from_dict(
        {"workflow": "email_system_events", "config": {"recipients": recipients, **config}},
        job_id=f"{aid}-{uuid.uuid4().hex[:6]}",
        aid=aid,
    )


def failed(aid, subject_id, **extra):
    return new_event(aid, "work", subject_id, "failed", **extra)


def flush(state, j, now):
    return state.flush_due(lambda key: j if key == j.key else None, now)


def mails(stack, to, count, timeout=10.0):
    return stack.smtp.wait_for(stack.smtp.to(to), count, timeout=timeout)


def test_redelivered_event_is_emailed_once(stack, state, aid, to):
    j = job(aid, [to])
    ev = failed(aid, "w-1")
    first = state.accept(j, ev, at(0))
    assert first.decision is Decision.EMAIL and not first.duplicate
    assert state.deliver(first.outbox_id, j, at(0)).result.outcome is Outcome.SENT
    again = state.accept(j, ev, at(5))  # Pub/Sub redelivers the same delivery
    assert again.duplicate and again.outbox_id == first.outbox_id
    assert state.deliver(again.outbox_id, j, at(5)).result.reason == "already sent"
    assert len(mails(stack, to, 2, timeout=2)) == 1


def test_concurrent_deliveries_of_one_event_send_one_email(stack, state, aid, to):
    j = job(aid, [to])
    ev = failed(aid, "w-1")
    results, errors = [], []

    def worker():
        try:
            acc = state.accept(j, ev, at(0))
            results.append(state.deliver(acc.outbox_id, j, at(0)))
        except Exception as err:  # e.g. a transaction that could not commit under contention
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 6
    sent = [r for r in results if r.result.outcome is Outcome.SENT]
    assert len(sent) >= 1 and all(r.busy or r.result.outcome is Outcome.SENT for r in results)
    assert len(mails(stack, to, 2, timeout=2)) == 1


def test_group_wait_then_group_interval_then_repeat_interval(stack, state, aid, to):
    j = job(
        aid, [to], grouping={"by": ["verb"], "group_wait": 30, "group_interval": 300, "repeat_interval": 3600}
    )
    for i in range(3):
        acc = state.accept(j, failed(aid, f"w-{i}"), at(i))
        assert acc.decision is Decision.GROUPED and not acc.group_due
    assert flush(state, j, at(29))["digests"] == 0  # group_wait not over
    assert flush(state, j, at(30)) == {
        "digests": 1,
        "sent": 1,
        "failed": 0,
        "dead_lettered": 0,
        "dropped_groups": 0,
        "errors": 0,
    }
    [first] = mails(stack, to, 1)
    assert first.subject == "[sysevents] 3 alert(s): verb=failed"
    assert all(f"work w-{i} failed" in first.body for i in range(3))

    # A new alert after the first digest waits for group_interval from it, not group_wait.
    state.accept(j, failed(aid, "w-new"), at(40))
    assert flush(state, j, at(329))["digests"] == 0
    assert flush(state, j, at(330))["digests"] == 1
    second = mails(stack, to, 2)[1]
    assert second.subject == "[sysevents] 1 alert(s): verb=failed" and "w-new" in second.body

    # A repeat of an alert already emailed waits for repeat_interval (after its email at 30 s) ...
    state.accept(j, failed(aid, "w-0"), at(400))
    assert flush(state, j, at(630))["digests"] == 0  # group_interval over, but only a repeat is pending
    assert flush(state, j, at(3630))["digests"] == 1
    third = mails(stack, to, 3)[2]
    assert "work w-0 failed (repeat)" in third.body

    # ... unless a new alert arrives: then the repeat rides along in the group_interval digest.
    state.accept(j, failed(aid, "w-1"), at(3700))  # emailed at 30 s, 3670 s ago: new again
    state.accept(j, failed(aid, "w-new"), at(3701))  # emailed at 330 s: a repeat
    state.accept(j, failed(aid, "w-brand-new"), at(3702))
    assert flush(state, j, at(3929))["digests"] == 0
    assert flush(state, j, at(3930))["digests"] == 1
    fourth = mails(stack, to, 4)[3]
    assert "3 alert(s)" in fourth.subject
    assert "work w-new failed (repeat)" in fourth.body
    assert "work w-1 failed\n" in fourth.body and "work w-brand-new failed\n" in fourth.body
    assert len(mails(stack, to, 5, timeout=1)) == 4


def test_groups_follow_the_chosen_fields(stack, state, aid, to):
    j = job(aid, [to], grouping={"by": ["subject_id"], "group_wait": 10})
    for sid in ("a", "b", "a"):
        state.accept(j, failed(aid, sid), at(0))
    assert flush(state, j, at(10))["digests"] == 2
    subjects = sorted(m.subject for m in mails(stack, to, 2))
    assert subjects == ["[sysevents] 1 alert(s): subject_id=b", "[sysevents] 2 alert(s): subject_id=a"]


def test_digest_lists_max_events_and_counts_the_rest(stack, state, aid, to):
    j = job(aid, [to], grouping={"by": ["verb"], "group_wait": 0, "max_events": 2})
    for i in range(5):
        acc = state.accept(j, failed(aid, f"w-{i}"), at(0))
    assert acc.group_due  # group_wait 0: the function flushes at once
    assert state.flush_group(j, acc.group_id, at(0)).outbox_id
    flush(state, j, at(0))
    [mail] = mails(stack, to, 1)
    assert mail.subject == "[sysevents] 5 alert(s): verb=failed" and "... and 3 more not listed." in mail.body


def test_rate_limit_holds_back_the_rest_until_the_window_ends(stack, state, aid, to):
    j = job(aid, [to], rate_limit={"max_emails": 2, "per_seconds": 3600})
    decisions = [state.accept(j, failed(aid, f"w-{i}"), at(i)) for i in range(5)]
    assert [d.decision for d in decisions] == [Decision.EMAIL] * 2 + [Decision.HELD] * 3
    for d in decisions[:2]:
        state.deliver(d.outbox_id, j, at(0))
    assert flush(state, j, at(3599))["digests"] == 0
    assert flush(state, j, at(3600))["digests"] == 1  # the window ended
    got = mails(stack, to, 3)
    assert got[2].subject == "[sysevents] 3 alert(s) held back by the rate limit"
    assert all(f"work w-{i} failed" in got[2].body for i in (2, 3, 4))


def test_silence_drops_matching_events_until_it_ends(stack, state, aid, to):
    j = job(
        aid,
        [to],
        silences=[
            {
                "matchers": {"subject_id": ["w-1", "w-2"]},
                "ends_at": at(60).isoformat(),
                "comment": "maintenance",
            }
        ],
    )
    assert state.accept(j, failed(aid, "w-1"), at(0)).reason == "silenced by silence 0 (maintenance)"
    assert state.accept(j, failed(aid, "w-3"), at(0)).decision is Decision.EMAIL
    assert state.accept(j, failed(aid, "w-2"), at(60)).decision is Decision.EMAIL  # silence over


def test_mute_window_drops_events_inside_it(stack, state, aid, to):
    j = job(
        aid,
        [to],
        mute_windows=[
            {
                "weekdays": ["monday:friday"],
                "location": "Europe/Paris",
                "times": [{"start_time": "12:00", "end_time": "14:00"}],
                "name": "lunch",
            }
        ],
    )
    # T0 is Monday 12:00 UTC = 13:00 in Paris: muted; 13:00 UTC = 14:00 Paris: not.
    assert state.accept(j, failed(aid, "w-1"), at(0)).reason == "in mute window lunch"
    assert state.accept(j, failed(aid, "w-1"), at(3600)).decision is Decision.EMAIL


def test_failing_digest_is_retried_then_dead_lettered(stack, state, aid):
    to = f"ops+smtp451-{aid}@example.com"
    j = job(aid, [to], grouping={"by": ["verb"], "group_wait": 0})
    state.accept(j, failed(aid, "w-1"), at(0))
    dead = []
    first = state.flush_due(lambda _: j, at(0), on_dead=lambda *a: dead.append(a))
    assert first["digests"] == 1 and first["failed"] == 1
    assert state.flush_due(lambda _: j, at(1), on_dead=lambda *a: dead.append(a))["failed"] == 0  # backoff
    assert state.flush_due(lambda _: j, at(700), on_dead=lambda *a: dead.append(a))["failed"] == 1
    third = state.flush_due(lambda _: j, at(1400), on_dead=lambda *a: dead.append(a))
    assert third["dead_lettered"] == 1
    [(oid, reason, attempts)] = dead
    assert attempts == 3 and reason.startswith(f"recipients refused: {to}: 451")


def test_concurrent_events_of_one_group_and_redeliveries_are_each_in_one_digest(stack, state, aid, to):
    # Each accepted event is its own document: 8 threads of 40 events (and a redelivery of each) into one
    # group all succeed; two instances flushing at once send one digest listing every event once.
    j = job(aid, [to], grouping={"by": ["verb"], "group_wait": 10, "max_events": 100})
    events = [failed(aid, f"w-{i}") for i in range(40)]
    errors, accepted = [], []

    def worker(ev):
        try:
            accepted.append(state.accept(j, ev, at(0)))
        except Exception as err:
            errors.append(err)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, events + events))
    assert errors == []
    assert sum(not a.duplicate for a in accepted) == 40 and sum(a.duplicate for a in accepted) == 40
    assert {a.decision for a in accepted} == {Decision.GROUPED}

    other = AlertState(state.client, state.settings, evaluate=state.evaluate)  # a second function instance
    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(lambda s: flush(s, j, at(10)), [state, other, state, other]))
    assert sum(r["digests"] for r in reports) == 1 and sum(r["errors"] for r in reports) == 0
    [mail] = mails(stack, to, 1)
    assert mail.subject == "[sysevents] 40 alert(s): verb=failed"
    listed = sorted(line.split()[3] for line in mail.body.splitlines() if line.startswith("- "))
    assert listed == sorted(f"w-{i}" for i in range(40))
    assert flush(state, j, at(1000))["digests"] == 0  # nothing left pending
    assert len(mails(stack, to, 2, timeout=2)) == 1


def test_a_failing_digest_template_is_dead_lettered_and_other_groups_still_flush(stack, state, aid, to):
    bad = job(
        aid,
        [to],
        grouping={"by": ["verb"], "group_wait": 0},
        digest_template='if digest.count > 1 then error "too many: " + digest.count else {subject: "s", body: "b"}',
    )
    good = job(aid, [to], grouping={"by": ["verb"], "group_wait": 0})
    for i in range(2):
        state.accept(bad, failed(aid, f"bad-{i}"), at(0))
    state.accept(good, failed(aid, "good-1"), at(0))
    dead = []
    jobs = {bad.key: bad, good.key: good}
    report = state.flush_due(jobs.get, at(0), on_dead=lambda *a: dead.append(a))
    assert report["digests"] == 1 and report["sent"] == 1 and report["dead_lettered"] == 1
    [(oid, reason, attempts)] = dead
    assert reason.startswith("digest template error:") and "too many: 2" in reason and attempts == 0
    entry = state.outbox.document(oid).get().to_dict()
    assert entry["state"] == "dead" and entry["job_id"] == bad.id and len(entry["event_ids"]) == 2
    [mail] = mails(stack, to, 1)
    assert mail.subject == "[sysevents] 1 alert(s): verb=failed" and "good-1" in mail.body
    # The failed digest's events are not retried forever: the next flush has nothing for either group.
    assert state.flush_due(jobs.get, at(1), on_dead=lambda *a: dead.append(a))["dead_lettered"] == 0


def test_a_runaway_digest_template_is_dead_lettered_by_the_flush(stack, state, aid, to):
    spin = "std.toString(std.foldl(function(a, b) a + b, std.range(1, 1e9), 0))"
    j = job(aid, [to], grouping={"by": ["verb"], "group_wait": 0}, digest_template=spin)
    state.accept(j, failed(aid, "w-1"), at(0))
    dead = []
    report = state.flush_due(lambda _: j, at(0), on_dead=lambda *a: dead.append(a))
    assert report["dead_lettered"] == 1 and report["errors"] == 0
    assert "digest template error: template " in dead[0][1]


def test_a_pending_digest_never_goes_to_a_job_created_again_with_the_same_id(stack, state, aid):
    """Account B's job's pending events stay B's: after B deletes the job and a job with the same id is
    created (a new generation, maybe in another account), the flush drops B's group, mailing no one."""
    b_to, a_to = f"b-{aid}@example.com", f"a-{aid}@example.com"
    old = job(aid + "-b", [b_to], grouping={"by": ["verb"], "group_wait": 30})
    state.accept(old, failed(aid + "-b", "w-secret"), at(0))
    reborn = job(aid + "-a", [a_to], grouping={"by": ["verb"], "group_wait": 30}).model_copy(
        update={"id": old.id}
    )
    current = {reborn.key: reborn}  # the job store now has only the new generation
    report = state.flush_due(current.get, at(60))
    assert report["dropped_groups"] == 1 and report["digests"] == 0
    assert mails(stack, a_to, 1, timeout=2) == [] and mails(stack, b_to, 1, timeout=1) == []
