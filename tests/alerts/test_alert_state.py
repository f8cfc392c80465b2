"""The alert engine against the real Firestore emulator and SMTP server, with a controlled clock: grouping
timers (group_wait, group_interval, repeat_interval), digests, rate limits, silences, mute windows, exactly
once under redelivery and concurrency, template failures, generations.

A `Function` here is one function instance: the real email sink (its Notifier, AlertStore and
EmailChannel) behind the real envelope, both on the test's clock. Its timers are kept in a list instead of
the Cloud Tasks queue (they are set years ahead on this clock), and `run_timers(now)` pushes those due
through the envelope, as the queue would release them: the envelope settles each (a wait is put back at its
time, a failed attempt retried on the job's retry schedule until its attempts are spent, then
dead-lettered). The pipeline around it (the real queue, Pub/Sub pushes) is tested in
test_email_pipeline.py and tests/webhooks/test_webhook_alerts.py.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from google.cloud import firestore
from helpers import allow_email_domain, push_body

from sysevents.alerts.engine import Notifier
from sysevents.alerts.store import AlertStore, Contended
from sysevents.config import Settings
from sysevents.consent.store import ConsentStore
from sysevents.delivery.accounting import DeliveryLog
from sysevents.delivery.attempt import Attempt
from sysevents.delivery.envelope import Envelope
from sysevents.delivery.message import Delivery
from sysevents.delivery.outcome import Kind, Outcome
from sysevents.events.model import new_event
from sysevents.jobs.model import Job, JobState
from sysevents.jobs.registry import job_from_dict
from sysevents.shares.caps import Caps
from sysevents.sinks.email.sink import EmailSink
from sysevents.templates.sandbox import Sandbox
from sysevents.topology import load
from sysevents.transport.pubsub import Publisher, PushMessage

pytestmark = pytest.mark.integration
T0 = datetime(2031, 3, 3, 12, 0, tzinfo=UTC)  # a Monday


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Timers:
    """Where this test's timers go (the delay queue's `put`): when, data and attributes of each."""

    def __init__(self):
        self.items: list[tuple[datetime, bytes, dict[str, str]]] = []
        self.lock = threading.Lock()

    def put(self, release, when, name) -> None:
        with self.lock:
            self.items.append((when, release.data, release.attributes))


class Sink(EmailSink):
    """The email sink on the test's clock; it keeps what its timers came to and what was dead-lettered."""

    def __init__(self, rt, clock):
        super().__init__(rt)
        self.notifier = Notifier(rt, rt.topology.sinks[self.name], self.notifier.channel, clock=clock)
        self.noticed: list[Outcome] = []
        self.dead: list[str] = []

    def notice(self, delivery, job, attempt):
        out = super().notice(delivery, job, attempt)
        self.noticed.append(out)
        return out

    def dead_lettered(self, delivery, job, reason):
        super().dead_lettered(delivery, job, reason)
        self.dead.append(reason)


class Function:
    """One function instance of the email sink, on the test's clock: the real sink behind the real envelope,
    on the emulators (alert state, accounting, dead-letter topic), with `Timers` for the delay queue and the
    jobs the test hands it for the job cache."""

    def __init__(self, client, settings, sandbox, timers: Timers, clock: list[datetime]):
        self.clock = clock
        self.timers = timers
        self.jobs: dict[tuple[str, str], Job] = {}
        self.rt = SimpleNamespace(
            settings=settings,
            topology=load(),
            sandbox=sandbox,
            delays=timers,
            alert_store=AlertStore(client, settings),
            accounting=DeliveryLog(client),
            firestore=client,
            consent=ConsentStore(client),
            publisher=Publisher(settings.project),
            shares=Caps(client, settings),
            job_for=lambda aid, job_id, version: self.jobs.get((aid, job_id)),
        )
        self.sink = Sink(self.rt, clock=lambda: self.clock[0])
        self.notifier = self.sink.notifier
        self.envelope = Envelope(self.rt, self.sink, clock=lambda: self.clock[0])
        self.dead = self.sink.dead

    def deliver(self, job, event, when: datetime):
        self.clock[0] = when
        return self.notifier.deliver(Delivery.of(event, job), job, attempt(1))

    def run_timers(self, job, when: datetime) -> list:
        """Push the job's timers due by `when` through the envelope, and those it puts back that are due by
        then; returns the outcomes of those that sent or failed (not of those that only waited)."""
        self.clock[0] = when
        self.jobs[job.aid, job.id] = job
        start = len(self.sink.noticed)
        while True:
            with self.timers.lock:
                mine = [t for t in self.timers.items if Delivery.from_json(t[1]).job_id == job.id]
                due = [t for t in mine if t[0] <= when]
                self.timers.items = [t for t in self.timers.items if t not in due]
            if not due:
                break
            for _, data, attributes in due:
                body, code = self.envelope.push(push_body(data, attributes))
                assert code == 200, body
        return [o for o in self.sink.noticed[start:] if sent_or_failed(o)]


def sent_or_failed(out: Outcome) -> bool:
    """A timer's outcome that sent or failed, not one that only waited (a wait comes back at its time)."""
    waited = out.kind is Kind.RETRY and out.not_before is not None and not out.attempted
    return out.kind in (Kind.DELIVERED, Kind.PERMANENT) or (out.kind is Kind.RETRY and not waited)


def attempt(number: int) -> Attempt:
    message = PushMessage(data=b"", attributes={}, message_id="m", publish_time=None, delivery_attempt=1,
                          subscription="")  # fmt: skip
    return Attempt(number, message)


@pytest.fixture(scope="module")
def sandbox():
    s = Sandbox(workers=1, timeout=2.0, memory_mb=512)
    yield s
    s.close()


@pytest.fixture
def settings(stack):
    """Alert state in collections of this test's own."""
    return Settings(alerts_collection_prefix=f"t{uuid.uuid4().hex[:8]}_", time_scale=1.0)  # real seconds


@pytest.fixture
def fn(stack, firestore_client, sandbox, settings, aid):
    allow_email_domain(firestore_client, aid)  # the test account's recipients need no confirmation
    return Function(firestore_client, settings, sandbox, Timers(), [T0])


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


def failed(aid, subject_id, when=T0, **extra):
    return new_event(aid, "work", subject_id, "failed", time=when, **extra)


def mails(stack, to, count, timeout=10.0):
    return stack.smtp.wait_for(stack.smtp.to(to), count, timeout=timeout)


def sent(outcomes) -> int:
    return sum(o.kind is Kind.DELIVERED and o.reason != "already sent" for o in outcomes)


def test_redelivered_event_is_emailed_once(stack, fn, aid, to):
    j = job(aid, [to])
    ev = failed(aid, "w-1")
    assert fn.deliver(j, ev, at(0)).kind is Kind.DELIVERED
    again = fn.deliver(j, ev, at(5))  # Pub/Sub redelivers the same delivery
    assert (again.kind, again.reason) == (Kind.DELIVERED, "already sent")
    assert len(mails(stack, to, 2, timeout=2)) == 1


def test_concurrent_deliveries_of_one_event_send_one_email(stack, fn, aid, to):
    j = job(aid, [to])
    ev = failed(aid, "w-1")
    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(lambda _: fn.deliver(j, ev, at(0)), range(6)))
    kinds = [o.kind for o in outcomes]
    assert Kind.DELIVERED in kinds and set(kinds) <= {
        Kind.DELIVERED,
        Kind.RETRY,
    }  # RETRY: a wait (busy lease)
    assert all(o.reason in ("", "already sent", "another instance is sending it") or o.kind is Kind.DELIVERED
               for o in outcomes)  # fmt: skip
    assert len(mails(stack, to, 2, timeout=2)) == 1


def test_group_wait_then_group_interval_then_repeat_interval(stack, fn, aid, to):
    j = job(
        aid, [to], grouping={"by": ["verb"], "group_wait": 30, "group_interval": 300, "repeat_interval": 3600}
    )
    for i in range(3):
        assert fn.deliver(j, failed(aid, f"w-{i}", at(i)), at(i)).kind is Kind.ACCEPTED
    assert sent(fn.run_timers(j, at(29))) == 0  # group_wait not over
    assert sent(fn.run_timers(j, at(30))) == 1
    [first] = mails(stack, to, 1)
    assert first.subject == "[sysevents] 3 alert(s): verb=failed"
    assert all(f"work w-{i} failed" in first.body for i in range(3))

    # A new alert after the first digest waits for group_interval from it, not group_wait.
    fn.deliver(j, failed(aid, "w-new", at(40)), at(40))
    assert sent(fn.run_timers(j, at(329))) == 0
    assert sent(fn.run_timers(j, at(330))) == 1
    second = mails(stack, to, 2)[1]
    assert second.subject == "[sysevents] 1 alert(s): verb=failed" and "w-new" in second.body

    # A repeat of an alert already emailed waits for repeat_interval (after its email at 30 s) ...
    fn.deliver(j, failed(aid, "w-0", at(400)), at(400))
    assert sent(fn.run_timers(j, at(630))) == 0  # group_interval over, but only a repeat is pending
    assert sent(fn.run_timers(j, at(3630))) == 1
    third = mails(stack, to, 3)[2]
    assert "work w-0 failed (repeat)" in third.body

    # ... unless a new alert arrives: then the repeat rides along in the group_interval digest.
    fn.deliver(j, failed(aid, "w-1", at(3700)), at(3700))  # emailed at 30 s, 3670 s ago: new again
    fn.deliver(j, failed(aid, "w-new", at(3701)), at(3701))  # emailed at 330 s: a repeat
    fn.deliver(j, failed(aid, "w-brand-new", at(3702)), at(3702))
    assert sent(fn.run_timers(j, at(3929))) == 0
    assert sent(fn.run_timers(j, at(3930))) == 1
    fourth = mails(stack, to, 4)[3]
    assert "3 alert(s)" in fourth.subject
    assert "work w-new failed (repeat)" in fourth.body
    assert "work w-1 failed\n" in fourth.body and "work w-brand-new failed\n" in fourth.body
    assert len(mails(stack, to, 5, timeout=1)) == 4


def test_group_wait_counts_from_when_the_event_happened(stack, fn, aid, to):
    """The pipeline's own latency is not added to group_wait; an event older than group_wait still waits."""
    j = job(aid, [to], grouping={"by": ["verb"], "group_wait": 30})
    fn.deliver(j, failed(aid, "w-late", at(0)), at(12))  # reached the sink 12 s after it happened
    assert sent(fn.run_timers(j, at(29))) == 0 and sent(fn.run_timers(j, at(30))) == 1
    k = job(aid, [to], grouping={"by": ["verb"], "group_wait": 30})
    fn.deliver(k, failed(aid, "w-old", at(0)), at(1000))  # an old event: a full group_wait from now
    assert sent(fn.run_timers(k, at(1029))) == 0 and sent(fn.run_timers(k, at(1030))) == 1


def test_one_timer_per_group_for_a_burst(stack, fn, aid, to):
    j = job(aid, [to], grouping={"by": ["subject_id"], "group_wait": 10})
    for i in range(30):
        fn.deliver(j, failed(aid, f"s-{i % 3}", at(0)), at(i / 10))
    assert len(fn.timers.items) == 3  # one per group: the rest of the burst found it set
    assert sent(fn.run_timers(j, at(10))) == 3
    assert sorted(m.subject for m in mails(stack, to, 3)) == [
        f"[sysevents] 10 alert(s): subject_id=s-{i}" for i in range(3)
    ]


def test_digest_lists_max_events_and_counts_the_rest(stack, fn, aid, to):
    j = job(aid, [to], grouping={"by": ["verb"], "group_wait": 1, "max_events": 2})
    for i in range(5):
        fn.deliver(j, failed(aid, f"w-{i}"), at(0))
    assert sent(fn.run_timers(j, at(1))) == 1
    [mail] = mails(stack, to, 1)
    assert mail.subject == "[sysevents] 5 alert(s): verb=failed" and "... and 3 more not listed." in mail.body


def test_rate_limit_holds_back_the_rest_until_the_window_ends(stack, fn, aid, to):
    j = job(aid, [to], rate_limit={"max_emails": 2, "per_seconds": 3600})
    outcomes = [fn.deliver(j, failed(aid, f"w-{i}"), at(i)) for i in range(5)]
    assert [o.kind for o in outcomes] == [Kind.DELIVERED] * 2 + [Kind.ACCEPTED] * 3
    assert sent(fn.run_timers(j, at(3599))) == 0
    assert sent(fn.run_timers(j, at(3600))) == 1  # the window ended
    got = mails(stack, to, 3)
    assert got[2].subject == "[sysevents] 3 alert(s) held back by the rate limit"
    assert all(f"work w-{i} failed" in got[2].body for i in (2, 3, 4))


def test_silence_drops_matching_events_until_it_ends(stack, fn, aid, to):
    silence = {
        "matchers": {"subject_id": ["w-1", "w-2"]},
        "ends_at": at(60).isoformat(),
        "comment": "maintenance",
    }
    j = job(aid, [to], silences=[silence])
    dropped = fn.deliver(j, failed(aid, "w-1"), at(0))
    assert (dropped.kind, dropped.reason) == (Kind.FILTERED, "silenced by silence 0 (maintenance)")
    assert fn.deliver(j, failed(aid, "w-3"), at(0)).kind is Kind.DELIVERED
    assert fn.deliver(j, failed(aid, "w-2"), at(60)).kind is Kind.DELIVERED  # silence over


def test_mute_window_drops_events_inside_it(stack, fn, aid, to):
    window = {"weekdays": ["monday:friday"], "location": "Europe/Paris",
              "times": [{"start_time": "12:00", "end_time": "14:00"}], "name": "lunch"}  # fmt: skip
    j = job(aid, [to], mute_windows=[window])
    # T0 is Monday 12:00 UTC = 13:00 in Paris: muted; 13:00 UTC = 14:00 Paris: not.
    assert fn.deliver(j, failed(aid, "w-1"), at(0)).reason == "in mute window lunch"
    assert fn.deliver(j, failed(aid, "w-1"), at(3600)).kind is Kind.DELIVERED


def test_failing_digest_is_retried_then_dead_lettered(stack, fn, aid):
    to = f"ops+smtp451-{aid}@example.com"
    j = job(aid, [to], grouping={"by": ["verb"], "group_wait": 1}, retry_schedule=[0.5, 0.5])  # 3 attempts
    fn.deliver(j, failed(aid, "w-1"), at(0))
    outcomes = [o for t in range(1, 5) for o in fn.run_timers(j, at(t))]  # retried each second
    assert [o.kind for o in outcomes] == [Kind.RETRY] * 3
    assert outcomes[0].reason.startswith(f"recipients refused: {to}: 451")
    [reason] = fn.dead
    assert reason == outcomes[-1].reason
    [entry] = [s.to_dict() for s in fn.rt.alert_store.outbox.stream() if s.to_dict()["job_id"] == j.id]
    assert (entry["state"], entry["attempts"]) == ("dead", 3)


def test_concurrent_events_of_one_group_and_redeliveries_are_each_in_one_digest(
    stack, firestore_client, sandbox, settings, aid, to
):
    # Each accepted event is its own document: 8 threads of 40 events (and a redelivery of each) into one
    # group all succeed; two instances firing their timers at once send one digest listing every event once.
    clock = [T0]
    timers = Timers()
    allow_email_domain(firestore_client, aid)  # the recipient needs no confirmation
    one, other = (Function(firestore_client, settings, sandbox, timers, clock) for _ in range(2))
    j = job(aid, [to], grouping={"by": ["verb"], "group_wait": 10, "max_events": 100})
    events = [failed(aid, f"w-{i}") for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda ev: (one if hash(ev.id) % 2 else other).deliver(j, ev, at(0)),
                                 events + events))  # fmt: skip
    assert {o.kind for o in outcomes} == {Kind.ACCEPTED}
    assert len(timers.items) <= 2  # one per instance
    timers.items *= 2  # and each fired twice
    with ThreadPoolExecutor(4) as pool:
        fired = list(pool.map(lambda f: f.run_timers(j, at(10)), [one, other]))
    assert sum(sent(f) for f in fired) == 1
    [mail] = mails(stack, to, 1)
    assert mail.subject == "[sysevents] 40 alert(s): verb=failed"
    listed = sorted(line.split()[3] for line in mail.body.splitlines() if line.startswith("- "))
    assert listed == sorted(f"w-{i}" for i in range(40))
    assert sent(one.run_timers(j, at(1000))) == 0  # nothing left pending
    assert len(mails(stack, to, 2, timeout=2)) == 1


def test_a_failing_digest_template_is_dead_lettered_and_other_groups_still_flush(stack, fn, aid, to):
    bad = job(
        aid,
        [to],
        grouping={"by": ["verb"], "group_wait": 1},
        digest_template='if digest.count > 1 then error "too many: " + digest.count else {subject: "s", body: "b"}',
    )
    good = job(aid, [to], grouping={"by": ["verb"], "group_wait": 1})
    for i in range(2):
        fn.deliver(bad, failed(aid, f"bad-{i}"), at(0))
    [bad_out] = fn.run_timers(bad, at(1))
    assert bad_out.kind is Kind.PERMANENT and bad_out.reason.startswith("digest template error:")
    assert "too many: 2" in bad_out.reason
    fn.deliver(good, failed(aid, "good-1"), at(0))
    assert sent(fn.run_timers(good, at(1))) == 1
    [entry] = [s.to_dict() for s in fn.rt.alert_store.outbox.stream() if s.to_dict()["job_id"] == bad.id]
    assert entry["state"] == "dead" and len(entry["event_ids"]) == 2
    [mail] = mails(stack, to, 1)
    assert mail.subject == "[sysevents] 1 alert(s): verb=failed" and "good-1" in mail.body
    # The failed digest's events are not retried forever: nothing is pending for the bad job any more.
    fn.deliver(bad, failed(aid, "bad-2", at(1)), at(1))
    assert [o.kind for o in fn.run_timers(bad, at(400))] == [Kind.DELIVERED]  # one event: renders


def test_a_runaway_digest_template_is_dead_lettered_by_the_flush(stack, fn, aid, to):
    spin = "std.toString(std.foldl(function(a, b) a + b, std.range(1, 1e9), 0))"
    j = job(aid, [to], grouping={"by": ["verb"], "group_wait": 1}, digest_template=spin)
    fn.deliver(j, failed(aid, "w-1"), at(0))
    [out] = fn.run_timers(j, at(1))
    assert out.kind is Kind.PERMANENT and "digest template error: template " in out.reason


def test_a_pending_digest_never_goes_to_a_job_created_again_with_the_same_id(stack, fn, aid):
    """Account B's job's pending events stay B's: after B deletes the job and a job with the same id is
    created (a new generation, maybe in another account), the sweep drops B's group, mailing no one."""
    b_to, a_to = f"b-{aid}@example.com", f"a-{aid}@example.com"
    old = job(aid + "-b", [b_to], grouping={"by": ["verb"], "group_wait": 30})
    fn.deliver(old, failed(aid + "-b", "w-secret"), at(0))
    reborn = job(aid + "-a", [a_to], grouping={"by": ["verb"], "group_wait": 30}).model_copy(
        update={"id": old.id}
    )
    current = {reborn.key: reborn}  # the job store now has only the new generation
    fn.clock[0] = at(3600)
    report = fn.notifier.sweep(current.get, at(3600))
    assert report == {"rearmed": 0, "dropped_groups": 1, "kept_paused": 0}
    assert mails(stack, a_to, 1, timeout=2) == [] and mails(stack, b_to, 1, timeout=1) == []


def test_a_paused_jobs_pending_events_are_kept_by_the_sweep_and_sent_once_it_is_resumed(stack, fn, aid, to):
    # The sweep used to delete a paused job's groups (a person's pause, or auto-disable): accepted events
    # lost, only a log line left. They wait; resumed, the sweep re-arms the group and its digest goes out.
    j = job(aid, [to], grouping={"by": ["verb"], "group_wait": 30})
    for i in range(3):
        fn.deliver(j, failed(aid, f"w-{i}"), at(0))
    fn.timers.items.clear()  # the group's timer is lost (or fired while the job was paused)
    paused = j.model_copy(update={"state": JobState.PAUSED})
    assert fn.notifier.sweep({j.key: paused}.get, at(3600)) == {"rearmed": 0, "dropped_groups": 0,
                                                                 "kept_paused": 1}  # fmt: skip
    assert fn.notifier.sweep({j.key: j}.get, at(3600)) == {
        "rearmed": 1,
        "dropped_groups": 0,
        "kept_paused": 0,
    }
    assert sent(fn.run_timers(j, at(3600))) == 1
    [mail] = mails(stack, to, 1)
    assert mail.subject == "[sysevents] 3 alert(s): verb=failed"


def test_resolve_on_sends_a_resolution_only_for_what_fired(stack, fn, aid, to):
    j = job(aid, [to], resolve_on=["completed"])
    assert fn.deliver(j, new_event(aid, "work", "w-9", "completed", time=at(0)), at(0)).kind is Kind.FILTERED
    assert fn.deliver(j, failed(aid, "w-9"), at(1)).kind is Kind.DELIVERED
    resolved = fn.deliver(j, new_event(aid, "work", "w-9", "completed", time=at(2)), at(2))
    assert resolved.kind is Kind.DELIVERED
    got = mails(stack, to, 2)
    assert got[1].subject == f"[sysevents] Resolved: work w-9 (account {aid})"
    # resolved: a second completion has nothing to resolve
    assert fn.deliver(j, new_event(aid, "work", "w-9", "completed", time=at(3)), at(3)).kind is Kind.FILTERED


def test_events_accepted_while_their_group_flushes_are_each_in_exactly_one_digest(
    firestore_client, settings, aid, to
):
    # Accepts from 8 threads race three flushers that flush (and settles) the group as fast as it can: no
    # accept may be lost to a flush's transaction (nothing answered "already accepted" that was not), and
    # no event may be in two digests.
    store = AlertStore(firestore_client, settings)
    j = job(aid, [to], grouping={"by": ["verb"], "group_wait": 0, "group_interval": 1, "max_events": 100})
    events = [failed(aid, f"w-{i}") for i in range(160)]
    accepted: list = []
    done = threading.Event()

    def accept(ev):
        ce = ev.to_cloudevent()
        while True:
            try:
                return store.accept_grouped(j, j.config.grouping, ce, at(0), at(0))
            except Contended:  # nothing written: the notifier's wait delivers it again, as this does
                continue

    def flush_all(now) -> int:
        try:
            flushed = store.flush_group(
                j, group, now, lambda items, reason, oid: {"ids": [i["event"]["id"] for i in items]}
            )
        except Contended:  # the other flushers had the group every attempt: wrote nothing; its timer waits
            return 0
        if flushed.outbox_id is None:
            return 0
        entry = store.outbox.document(flushed.outbox_id).get().to_dict()
        store.settle(flushed.outbox_id, entry, "sent")
        return 1

    first = accept(events[0])
    group = first.group_id
    accepted.append(first)

    def flusher():
        n = 1
        while not done.is_set():
            n += flush_all(at(n * 10))  # a later flush each time: always due
        return n

    with ThreadPoolExecutor(11) as pool:
        flushes = [pool.submit(flusher) for _ in range(3)]  # as timers of several instances would
        accepted += list(pool.map(accept, events[1:]))
        done.set()
        n = max(f.result() for f in flushes)
    while flush_all(at(n * 10 + 10)):  # the last flusher's unsent digest, then what is still pending
        n += 1
    assert not store.pending.where(filter=firestore.FieldFilter("group_id", "==", group)).get()
    assert [a for a in accepted if a.duplicate] == []  # every accept was a first acceptance
    digests = [s.to_dict() for s in store.outbox.stream() if s.to_dict()["job_id"] == j.id]
    listed = [e for d in digests for e in d["payload"]["ids"]]  # (an entry's event_ids keep 100)
    assert sorted(listed) == sorted(e.id for e in events)  # each event in one digest, none twice
    assert len(digests) >= 2  # the flushes did interleave with the accepts


def test_a_flush_that_loses_its_group_to_another_flush_writes_nothing_and_is_tried_again(
    stack, fn, firestore_client, aid, to, monkeypatch
):
    # Another flush (a timer of another instance) holds the group's document in its transaction for longer
    # than Firestore waits for it: this flush, allowed one attempt, loses. It writes nothing, and its timer
    # answers "busy, again in 1 s" (a wait, not an attempt), instead of raising (a sink error: a failed
    # attempt of the job); tried again once the other is done, it sends the digest.
    import sysevents.alerts.store as store_module

    j = job(aid, [to], grouping={"by": ["verb"], "group_wait": 0, "group_interval": 1})
    fn.deliver(j, failed(aid, "w-1"), at(0))
    store = fn.rt.alert_store
    (group,) = {p.to_dict()["group_id"] for p in store.pending.stream() if p.to_dict()["job_id"] == j.id}
    (timer,) = [Delivery.from_json(t[1]) for t in fn.timers.items if Delivery.from_json(t[1]).job_id == j.id]
    monkeypatch.setattr(store_module, "TX_ATTEMPTS", 1)
    holding, release = threading.Event(), threading.Event()

    @firestore.transactional
    def other_flush(t):
        store.groups.document(group).get(transaction=t)  # it reads the group: Firestore locks it for it
        holding.set()
        release.wait(30)

    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(other_flush, firestore_client.transaction())
        assert holding.wait(30)
        with pytest.raises(Contended):
            store.flush_group(j, group, at(60), lambda items, reason, oid: {"n": len(items)})
        fn.clock[0] = at(60)
        out = fn.notifier.notice(timer, j, attempt(1))
        release.set()
        other.result()
    assert (out.kind, out.attempted, out.not_before) == (Kind.RETRY, False, at(61)), out
    assert "busy" in out.reason
    assert [e.id for e in store.outbox.stream() if e.to_dict()["job_id"] == j.id] == []
    monkeypatch.setattr(store_module, "TX_ATTEMPTS", 25)
    again = fn.notifier.notice(timer, j, attempt(1))
    assert again.kind is Kind.DELIVERED, again
    assert len(mails(stack, to, 1)) == 1


def test_an_accept_that_loses_every_attempt_to_concurrent_writes_is_tried_again_not_failed(
    stack, fn, firestore_client, aid, to, monkeypatch
):
    # A transaction of another delivery holds the event's `seen` record past the emulator's lock wait: the
    # accept, allowed one attempt, writes nothing and answers a wait of 1 s (not a failed attempt).
    import sysevents.alerts.store as store_module
    from sysevents.alerts.ids import hash_of

    j = job(aid, [to])
    event = failed(aid, "w-1")
    store = fn.rt.alert_store
    seen_ref = store.seen.document(hash_of(j.key, event.id))
    monkeypatch.setattr(store_module, "BATCH_ATTEMPTS", 1)
    holding, release = threading.Event(), threading.Event()

    @firestore.transactional
    def other(t):
        seen_ref.get(transaction=t)
        holding.set()
        release.wait(30)

    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(other, firestore_client.transaction())
        assert holding.wait(30)
        out = fn.deliver(j, event, at(0))
        release.set()
        held.result()
    assert (out.kind, out.attempted, out.not_before) == (Kind.RETRY, False, at(1)), out
    assert not seen_ref.get().exists
    monkeypatch.setattr(store_module, "BATCH_ATTEMPTS", 8)
    assert fn.deliver(j, event, at(1)).kind is Kind.DELIVERED
    assert len(mails(stack, to, 1)) == 1


def test_a_recipient_the_server_refuses_is_named_in_the_outcome_and_the_others_get_the_mail(
    stack, fn, aid, to
):
    refused = f"gone+smtp550-{aid}@example.com"
    j = job(aid, [to, refused])
    out = fn.deliver(j, failed(aid, "w-1"), at(0))
    assert out.kind is Kind.DELIVERED
    assert out.reason.startswith(f"sent; refused by the SMTP server: {refused}: 550 ")
    assert len(mails(stack, to, 1)) == 1
