"""Every sink through the one envelope, for every outcome (in-process, against the real emulators, the
stack's SMTP server and real HTTP receivers): delivered, retried, permanent (dead-lettered to the topic
and the job's list), and the state policy's refusals -- paused, deleted, re-created, workflow changed,
another account -- and a malformed delivery."""

from __future__ import annotations

import uuid

import pytest
from helpers import allow_email_domain, pull, push_body, wait_until, webhook_job

from sysevents.config import Settings
from sysevents.delivery.envelope import Envelope
from sysevents.delivery.message import Delivery
from sysevents.events.model import new_event
from sysevents.jobs.model import JobState
from sysevents.jobs.registry import job_from_dict
from sysevents.local.processes import free_port
from sysevents.runtime import Runtime
from sysevents.sinks.bigquery.sink import BigQuerySink
from sysevents.sinks.bigquery.targets import account_dataset
from sysevents.sinks.email.sink import EmailSink
from sysevents.sinks.webhook.sink import WebhookSink

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rt(stack):
    r = Runtime()
    yield r
    r.close()


def deliver(rt, sink, job, event=None, attempt=1, **delivery_fields):
    event = event or new_event(job.aid, "work", f"w-{uuid.uuid4().hex[:6]}", "failed")
    d = Delivery.of(event, job)
    if delivery_fields:
        d = Delivery(**{**d.__dict__, **delivery_fields})
    attrs = {**d.attributes(), **({"attempt": str(attempt)} if attempt > 1 else {})}
    return d, Envelope(rt, sink).push(push_body(d.to_json(), attrs))


def email(aid, to):
    return job_from_dict(
        {"workflow": "email_system_events", "config": {"recipients": [to], "system_event_type": "failed"}},
        job_id=f"em-{uuid.uuid4().hex[:8]}",
        aid=aid,
    )


def bigquery(aid, dataset, **config):
    return job_from_dict(
        {
            "workflow": "bigquery_system_events",
            "config": {"dataset": dataset, "table": "events", "system_event_type": "failed", **config},
        },
        job_id=f"bq-{uuid.uuid4().hex[:8]}",
        aid=aid,
    )


def cached(rt, aid, job_id, version=None):
    """Wait until the runtime's job cache has seen the job at `version` (None: seen it deleted)."""

    def seen() -> bool:
        job = rt.cache.get(aid, job_id)
        return (job.version if job else None) == version

    if not wait_until(seen, timeout=30, every=0.02):
        raise AssertionError(f"the job cache did not catch up with {aid}/{job_id} v{version}")


def stats(rt, job):
    s = rt.accounting.stats(job)
    keys = ("received", "delivered", "accepted", "filtered", "dead_lettered", "pending", "delayed")
    return {k: s[k] for k in keys}


@pytest.fixture
def sinks(rt):
    return {"webhook": WebhookSink(rt), "email": EmailSink(rt), "bigquery": BigQuerySink(rt)}


@pytest.fixture
def destinations(stack, rt, receiver, aid):
    """For each sink: a job whose destination accepts, one that fails for now, one that refuses for good."""
    allow_email_domain(rt.firestore, aid)  # the email jobs' recipients need no confirmation
    dataset = f"{account_dataset(Settings(), aid)}__{uuid.uuid4().hex[:8]}"
    receiver.replies["/retry"].extend([503] * 5)
    receiver.replies["/refuse"].extend([410] * 5)
    return {
        "webhook": {
            "delivered": webhook_job(None, aid, receiver.url("/ok")),
            "retry": webhook_job(None, aid, receiver.url("/retry")),
            "permanent": webhook_job(None, aid, receiver.url("/refuse")),
        },
        "email": {
            "delivered": email(aid, f"ok-{aid}@example.com"),
            "retry": email(aid, f"x+smtp451-{aid}@example.com"),
            "permanent": email(aid, f"x+smtp550-{aid}@example.com"),
        },
        "bigquery": {
            "delivered": bigquery(aid, dataset),
            "permanent": bigquery(aid, dataset, table="missing", create_if_missing=False),
        },
    }


OUTCOMES = {
    "delivered": (200, "delivered", {"received": 1, "delivered": 1, "pending": 0}),
    "retry": (200, "retry: ", {"received": 1, "delivered": 0, "pending": 1, "delayed": 1}),
    "permanent": (200, "dead-lettered: ", {"received": 1, "dead_lettered": 1, "pending": 0}),
}


@pytest.mark.parametrize(
    ("sink_name", "case", "status", "text", "counts"),
    [
        (sink, case, *OUTCOMES[case])
        for sink in ("webhook", "email", "bigquery")
        for case in OUTCOMES
        if (sink, case) != ("bigquery", "retry")  # test_a_bigquery_insert_that_fails_is_retried
    ],
)
def test_outcomes_from_the_destination(
    rt, sinks, destinations, subscriber, fresh_subscription, stack, sink_name, case, status, text, counts
):
    job = destinations[sink_name][case]
    dead = fresh_subscription(stack.topology.sinks[sink_name].dead_letter_topic)
    rt.jobs.put(job)
    delivery, (body, code) = deliver(rt, sinks[sink_name], job)
    assert (code, body.startswith(text)) == (status, True), body
    got = stats(rt, job)
    assert {k: got[k] for k in counts} == counts
    listed = rt.accounting.dead_letters(job)
    if case == "permanent":
        [msg] = pull(subscriber, dead, 1, timeout=30)
        assert msg.attributes["job_id"] == job.id and msg.attributes["reason"] == body.removeprefix(text)
        assert msg.attributes["webhook_id"] == delivery.id
        assert [d["webhook_id"] for d in listed] == [delivery.id] and listed[0]["reason"] == msg.attributes[
            "reason"
        ]
    else:
        assert listed == []
    # The first attempt's record (a retry's next attempts are the stack's, released by the delay queue).
    first = rt.accounting.attempts(job)[-1]
    assert first["attempt"] == 1
    assert (
        first["outcome"] == {"delivered": "delivered", "retry": "retry", "permanent": "dead_lettered"}[case]
    )


def test_a_bigquery_insert_that_fails_is_retried(stack, aid):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: every BigQuery call fails
    rt = Runtime(Settings(bigquery_endpoint=closed, bigquery_timeout=2))
    try:
        job = bigquery(aid, f"{account_dataset(rt.settings, aid)}__x")
        rt.jobs.put(job)
        _, (body, code) = deliver(rt, BigQuerySink(rt), job)
        assert code == 200 and body.startswith("retry: ") and "(next at " in body
        assert stats(rt, job)["pending"] == 1
    finally:
        rt.close()


@pytest.mark.parametrize("sink_name", ["webhook", "email", "bigquery"])
@pytest.mark.parametrize("refusal", ["paused", "deleted", "recreated", "workflow changed", "another account"])
def test_the_state_policy_refuses_with_the_reason(rt, sinks, destinations, sink_name, refusal, receiver, aid):
    job = destinations[sink_name]["delivered"]
    stored = rt.jobs.put(job)
    event = None
    fields = {}
    if refusal == "paused":
        stored = rt.jobs.put(job.model_copy(update={"state": JobState.PAUSED, "version": 2}))
        cached(rt, aid, job.id, 2)  # a pause applies once the instance's job cache has it (milliseconds)
        why = f"job {job.id} is paused"
    elif refusal == "deleted":
        cached(rt, aid, job.id, 1)
        rt.jobs.delete(job.aid, job.id)
        cached(rt, aid, job.id, None)
        why = f"job {job.id} no longer exists"
    elif refusal == "recreated":
        fields = {"generation": "an-earlier-one"}
        why = f"job {job.id} was deleted and created again since the event matched"
    elif refusal == "workflow changed":
        other = "email" if sink_name != "email" else "webhook"
        changed = {
            "email": email(aid, f"x-{aid}@example.com"),
            "webhook": webhook_job(None, aid, receiver.url("/x")),
        }[other]
        stored = rt.jobs.put(
            changed.model_copy(update={"id": job.id, "generation": job.generation, "version": 2})
        )
        cached(rt, aid, job.id, 2)
        why = f"job {job.id} is now a {stored.workflow.value} job"
    else:
        event = new_event(f"{aid}-intruder", "work", "w-1", "failed")
        why = f"the event's account is not job {job.id}'s account"
    delivery, (body, code) = deliver(rt, sinks[sink_name], job, event=event, **fields)
    if refusal == "paused":  # kept unsent in the job's dead letters, for `resume` with replay
        why += ": kept in its dead letters (resume with replay sends it)"
        assert (code, body) == (200, f"dead-lettered: {why}")
        [kept] = rt.accounting.dead_letters(stored)
        assert (kept["webhook_id"], kept["reason"]) == (delivery.id, why)
    else:
        assert (code, body) == (200, f"filtered: {why}")
    # Still the job's delivery (paused, workflow changed): counted. Another job's, or nobody's (deleted,
    # re-created, another account's event): counted nowhere.
    counted = refusal in ("paused", "workflow changed")
    assert stats(rt, stored) == {
        "received": int(counted), "delivered": 0, "accepted": 0, "filtered": int(refusal == "workflow changed"),
        "dead_lettered": int(refusal == "paused"), "pending": 0, "delayed": 0,
    }  # fmt: skip
    assert receiver.at("/ok") == []


@pytest.mark.parametrize("sink_name", ["webhook", "email", "bigquery"])
def test_a_malformed_delivery_is_dead_lettered_with_the_reason(
    rt, sinks, stack, subscriber, fresh_subscription, sink_name
):
    dead = fresh_subscription(stack.topology.sinks[sink_name].dead_letter_topic)
    body, code = Envelope(rt, sinks[sink_name]).push(
        push_body(b'{"event": {"id": 1}, "job": {}}', {"job_id": "x"})
    )
    assert code == 200 and body.startswith("dead-lettered: malformed delivery message: ")
    [msg] = pull(subscriber, dead, 1, timeout=30)
    assert msg.attributes["reason"].startswith("malformed delivery message: ")
    assert msg.data == b'{"event": {"id": 1}, "job": {}}'


def test_a_sink_that_raises_gets_a_retry_with_the_error_then_a_dead_letter(
    rt, stack, subscriber, fresh_subscription, aid
):
    class Broken(WebhookSink):
        def deliver(self, delivery, job, attempt):
            raise KeyError("a bug in the sink")

    dead = fresh_subscription(stack.topology.sinks["webhook"].dead_letter_topic)
    job = webhook_job(None, aid, "http://127.0.0.1:9/never")
    rt.jobs.put(job)
    event = new_event(aid, "work", "w-1", "failed")
    sink = Broken(rt)
    last = job.config.max_attempts
    for attempt in range(1, last):  # each attempt as the delay queue would release it
        _, (body, code) = deliver(rt, sink, job, event=event, attempt=attempt)
        assert code == 200 and body.startswith("retry: sink error: KeyError: 'a bug in the sink' (next at ")
    _, (body, code) = deliver(rt, sink, job, event=event, attempt=last)
    assert code == 200 and body == "dead-lettered: sink error: KeyError: 'a bug in the sink'"
    [msg] = pull(subscriber, dead, 1, timeout=30)
    assert msg.attributes["attempts"] == str(last)
    assert [d["reason"] for d in rt.accounting.dead_letters(job)] == [
        "sink error: KeyError: 'a bug in the sink'"
    ]


@pytest.mark.parametrize("busy", ["the account's cap", "every worker"])
def test_a_busy_template_sandbox_is_a_wait_and_the_delivery_still_arrives(
    rt, sinks, receiver, aid, monkeypatch, busy
):
    # The account's renders at their cap on this instance, or every worker held by other accounts' renders:
    # the delivery waits (the same attempt, no attempt spent) and the delay queue brings it back.
    job = webhook_job(None, aid, receiver.url("/templated"), json_template="{id: event.id}")
    rt.jobs.put(job)
    sandbox = rt.sandbox
    if busy == "every worker":
        monkeypatch.setattr(sandbox, "max_wait", 0.2)
        held = [sandbox._idle.get() for _ in range(sandbox.size)]
    else:
        monkeypatch.setattr(sandbox, "per_account", 1)
        sandbox._enter(aid)  # one render of the account's in the sandbox already
    try:
        delivery, (body, code) = deliver(rt, sinks["webhook"], job)
    finally:
        if busy == "every worker":
            for worker in held:
                sandbox._idle.put(worker)
        else:
            sandbox._leave(aid)
    assert code == 200 and body.startswith("waiting: template sandbox busy: "), body
    assert {k: stats(rt, job)[k] for k in ("received", "pending", "delayed", "dead_lettered")} == {
        "received": 1, "pending": 1, "delayed": 1, "dead_lettered": 0,
    }  # fmt: skip
    [got] = wait_until(lambda: receiver.at("/templated"), timeout=60)
    assert got.json() == {"id": delivery.event.id}
    assert wait_until(lambda: stats(rt, job)["delivered"] == 1, timeout=30)
    assert [(a["attempt"], a["outcome"]) for a in rt.accounting.attempts(job)] == [(1, "delivered")]


def test_a_failure_streak_reads_zero_again_once_a_delivery_succeeds(rt, receiver, aid):
    # The retries this test's attempts put on the delay queue come back to the stack's own webhook function:
    # they are due long after the test (a day each, scaled), on a path of this test's own, so that no
    # delivery but the test's own changes the streak while it reads it.
    receiver.replies["/flaky-streak"].extend([503, 503])
    job = webhook_job(None, aid, receiver.url("/flaky-streak"), retry_schedule=[86_400, 86_400])
    rt.jobs.put(job)
    sink = WebhookSink(rt)
    event = new_event(aid, "work", "w-1", "failed")
    for attempt in (1, 2):
        deliver(rt, sink, job, event=event, attempt=attempt)
    failing = rt.accounting.stats(job)
    assert failing["consecutive_failures"] == 2 and failing["failing_since"] is not None
    _, (body, code) = deliver(rt, sink, job, event=event, attempt=3)
    assert (code, body) == (200, "delivered")
    recovered = rt.accounting.stats(job)
    assert recovered["consecutive_failures"] == 0 and recovered["failing_since"] is None


# -- ordered subjects: the key's head is one delivery, named -----------------------------------------------
def ordered_job(rt, aid, url):
    job = webhook_job(None, aid, url, ordered=True)
    rt.jobs.put(job)
    return job


def parked_items(rt, job, key) -> list[dict]:
    ref = rt.key_queues._ref(job, key)
    return [s.to_dict() for s in ref.collection("items").stream()]


def test_a_redelivered_head_goes_ahead_instead_of_waiting_behind_itself(rt, receiver, aid):
    # The head failed and blocked its subject, then its retry could not be put away (503): Pub/Sub redelivers
    # the same message, without the head attribute. It must go ahead, not be parked behind itself (which
    # held the subject for good: no task existed for the head), and its ending moves the subject on.
    job = ordered_job(rt, aid, receiver.url("/ord-head"))
    sink = WebhookSink(rt)
    first, second = (new_event(aid, "work", "A", "failed", notes=n) for n in ("a0", "a1"))
    key = job.ordering_key(first)
    d1 = Delivery.of(first, job)
    rt.key_queues.block(job, key, d1.id)  # what the failed attempt committed before its put failed
    _, (body, code) = deliver(rt, sink, job, event=second)
    assert code == 200 and body.startswith("waiting"), body  # behind the head, as it should be
    _, (body, code) = deliver(rt, sink, job, event=first)  # the head's redelivery
    assert (code, body) == (200, "delivered")
    got = receiver.wait_for("/ord-head", 2, timeout=30)  # the parked one, released as the new head
    assert [r.json()["data"]["notes"] for r in got] == ["a0", "a1"]
    wait_until(lambda: not rt.key_queues._ref(job, key).get().exists)  # and then the subject is free


def test_a_repeated_ending_of_a_head_moves_its_subject_on_once(
    rt, stack, aid, fresh_subscription, subscriber
):
    # advance() after the dead-letter publish failed (500, redelivered) ran twice for one head: two heads in
    # flight and the subject's order lost. Only the key's current head moves it on.
    job = webhook_job(None, aid, "http://127.0.0.1:9/never", ordered=True)
    topic = f"ord-{uuid.uuid4().hex[:8]}"
    rt.publisher.client.create_topic(name=rt.publisher.path(topic))
    sub = fresh_subscription(topic)
    events = [new_event(aid, "work", "A", "failed", notes=f"a{i}") for i in range(3)]
    d1, d2, d3 = (Delivery.of(e, job) for e in events)
    key = job.ordering_key(events[0])
    queues = rt.key_queues
    queues.block(job, key, d1.id)
    for d in (d2, d3):
        assert queues.admit(job, key, _push_message(d), d.id) == "parked"
    assert queues.admit(job, key, _push_message(d1), d1.id) == "head"
    assert queues.advance(job, key, topic, d1.id) is True  # d1 ended: d2 is the head
    assert queues.advance(job, key, topic, d1.id) is False  # d1's ending again: nothing moves
    [released] = pull(subscriber, sub, 1)
    assert Delivery.from_json(released.data).id == d2.id and released.attributes["head"] == "1"
    assert pull(subscriber, sub, 1, timeout=2) == []
    assert [i["delivery_id"] for i in parked_items(rt, job, key)] == [d3.id]
    assert queues.advance(job, key, topic, d2.id) is True  # d2's ending releases d3
    assert Delivery.from_json(pull(subscriber, sub, 1)[0].data).id == d3.id


def test_what_waits_behind_a_head_goes_on_after_the_job_stops_being_ordered(rt, receiver, aid):
    job = ordered_job(rt, aid, receiver.url("/ord-off"))
    sink = WebhookSink(rt)
    first, second = (new_event(aid, "work", "A", "failed", notes=n) for n in ("a0", "a1"))
    key = job.ordering_key(first)
    rt.key_queues.block(job, key, Delivery.of(first, job).id)
    _, (body, _) = deliver(rt, sink, job, event=second)
    assert body.startswith("waiting"), body
    config = job.config.model_copy(update={"ordered": False})
    unordered = rt.jobs.put(job.model_copy(update={"config": config, "version": job.version + 1}))
    assert unordered.ordering_key(first) == ""
    d1 = Delivery.of(first, unordered)
    body, code = Envelope(rt, sink).push(push_body(d1.to_json(), {**d1.attributes(), "head": "1"}))
    assert (code, body) == (200, "delivered")
    got = receiver.wait_for("/ord-off", 2, timeout=30)  # the parked one was released, not stranded
    assert sorted(r.json()["data"]["notes"] for r in got) == ["a0", "a1"]


def _push_message(d):
    from sysevents.transport.pubsub import parse_push

    return parse_push(push_body(d.to_json(), d.attributes()))


def test_a_redelivered_message_puts_the_same_retry_task_again(rt, receiver, aid, monkeypatch):
    # Its retry was put away, then the push failed (say the accounting commit), so Pub/Sub redelivers it:
    # the second put must name the same task, so the queue releases one retry, not two. (The name used to
    # hold the jittered release time: never the same twice.)
    receiver.replies["/redelivered"].extend([503] * 5)  # the stack may release the first retry meanwhile
    job = webhook_job(None, aid, receiver.url("/redelivered"))
    rt.jobs.put(job)
    names: list[str] = []
    put = rt.delays.put
    monkeypatch.setattr(
        rt.delays, "put", lambda release, at, name: (names.append(name), put(release, at, name))
    )
    d = Delivery.of(new_event(aid, "work", "w-1", "failed"), job)
    body = push_body(d.to_json(), d.attributes())
    for _ in range(2):
        assert Envelope(rt, WebhookSink(rt)).push(body)[1] == 200
    assert len(names) == 2 and names[0] == names[1]


def test_a_bigquery_row_redelivered_by_pubsub_is_stored_once(rt, aid):
    # Pub/Sub redelivers a message whose insert landed (its answer was lost): its own attempt attribute
    # still says 1, but Pub/Sub reports deliveryAttempt 2, and the sink looks before writing again.
    from google.cloud import bigquery as bq

    from sysevents.sinks.bigquery.export import target_of

    job = bigquery(aid, f"{account_dataset(rt.settings, aid)}__{uuid.uuid4().hex[:8]}")
    rt.jobs.put(job)
    d = Delivery.of(new_event(aid, "work", "w-1", "failed"), job)
    message_id = uuid.uuid4().hex
    sink = BigQuerySink(rt)
    first = Envelope(rt, sink).push(push_body(d.to_json(), d.attributes(), message_id=message_id))
    again = Envelope(rt, sink).push(
        push_body(d.to_json(), d.attributes(), message_id=message_id, deliveryAttempt=2)
    )
    assert first == ("delivered", 200) and again == ("delivered", 200)
    query = f"SELECT COUNT(*) AS n FROM {target_of(job, rt.settings.project).sql} WHERE event_id = @id"  # noqa: S608
    config = bq.QueryJobConfig(query_parameters=[bq.ScalarQueryParameter("id", "STRING", d.event.id)])
    [row] = rt.bigquery.query(query, job_config=config).result(timeout=30)
    assert row["n"] == 1


def test_a_fan_out_published_twice_is_counted_once(rt, receiver, aid):
    # Ingest's publish failed part way (503), so Pub/Sub redelivers the event and ingest publishes every
    # delivery again, as new messages. Each (job, event) delivery is settled under a key of its own, not
    # its message id: counted once; the receiver may get it twice, with one webhook-id.
    from sysevents.ingest import _fan_out

    job = webhook_job(None, aid, receiver.url("/fanned"))
    rt.jobs.put(job)
    cached(rt, aid, job.id, job.version)
    event = new_event(aid, "work", "w-1", "failed")
    [(_, data, attrs, _)] = [m for m in _fan_out(rt, event) if m[2]["job_id"] == job.id]
    sink = WebhookSink(rt)
    for _ in range(2):  # two publications: two message ids
        assert Envelope(rt, sink).push(push_body(data, attrs)) == ("delivered", 200)
    got = receiver.wait_for("/fanned", 2)
    assert len({r.headers["webhook-id"] for r in got}) == 1
    assert stats(rt, job) == {"received": 1, "delivered": 1, "accepted": 0, "filtered": 0, "dead_lettered": 0,
                              "pending": 0, "delayed": 0}  # fmt: skip
