"""The pieces of "slow down" handling that need no server: the sender's reading of a push-back, the
attempt's push-back count, the in-flight cap and the learned rate's growth."""

from __future__ import annotations

from sysevents.config import Settings
from sysevents.delivery.attempt import PUSHBACKS_ATTR, PUSHED_AT_ATTR, Attempt, release_state
from sysevents.delivery.outcome import Kind, Outcome
from sysevents.delivery.ratelimit import DEFAULT_CEILING, GROWTH, REGIME, learned_of, pace_of, rate_now
from sysevents.delivery.waits import MAX_PUSHBACKS, too_many_pushbacks
from sysevents.sinks.webhook.pacing import InFlight
from sysevents.sinks.webhook.sender import WebhookSender
from sysevents.transport.pubsub import PushMessage


def sender() -> WebhookSender:
    return WebhookSender(Settings(webhook_max_retry_after=60), renderer=lambda *a, **k: b"{}")


def test_429_and_503_with_retry_after_are_push_backs_other_failures_are_not():
    s = sender()
    with_wait = s._answer(429, "7", 3.0)
    assert with_wait.pushback and with_wait.kind is Kind.RETRY and with_wait.retry_after == 7
    assert not with_wait.counts_against_receiver  # never an auto-disable streak
    bare = s._answer(429, None, 3.0)
    assert bare.pushback and bare.retry_after is None
    busy = s._answer(503, "120", 3.0)
    assert busy.pushback and busy.retry_after == 60  # bounded by webhook_max_retry_after
    for status, ra in ((503, None), (500, "5"), (408, None)):
        failed = s._answer(status, ra, 3.0)
        assert failed.kind is Kind.RETRY and not failed.pushback and failed.counts_against_receiver, status
    assert s._answer(200, None, 1.0).kind is Kind.DELIVERED


def message(attrs: dict[str, str]) -> PushMessage:
    return PushMessage(data=b"{}", attributes=attrs, message_id="m1", publish_time=None, delivery_attempt=1,
                       subscription=None)  # fmt: skip


def test_an_attempt_counts_its_push_backs_and_remembers_the_first():
    first = Attempt.of(message({}))
    assert (first.pushbacks, first.pushed_at) == (0, 0.0)
    once = first.later(slot=True, pushback=True, now=1000.0)
    twice = Attempt.of(message(once.attributes_for_release())).later(slot=True, pushback=True, now=2000.0)
    assert (twice.pushbacks, twice.pushed_at, twice.number) == (2, 1000.0, 1)  # not an attempt
    attrs = twice.attributes_for_release()
    assert attrs[PUSHBACKS_ATTR] == "2" and float(attrs[PUSHED_AT_ATTR]) == 1000.0
    assert PUSHBACKS_ATTR not in release_state(attrs) and PUSHED_AT_ATTR not in release_state(attrs)
    assert twice.next().pushbacks == 2  # a real retry later keeps the count
    waited = first.later(slot=True)  # a rate-limit slot is no push-back
    assert (waited.pushbacks, waited.pushed_at) == (0, 0.0)
    assert Attempt.of(message({PUSHBACKS_ATTR: "x" * 9, PUSHED_AT_ATTR: "nan"})).pushbacks == 0
    assert str(MAX_PUSHBACKS) in too_many_pushbacks("HTTP 429")


def test_the_in_flight_cap_is_halved_by_a_timeout_and_regained_answer_by_answer():
    f = InFlight(ceiling=4)
    assert [f.take("j") for _ in range(5)] == [True, True, True, True, False]
    assert f.take("other")  # per job
    f.done("j", Outcome.retry("timed out", latency_ms=15000))
    assert f.cap("j") == 2 and f.latency("j") == 15.0
    assert not f.take("j")  # 3 still in flight, over the lowered cap
    for _ in range(3):
        f.done("j", Outcome.delivered(latency_ms=1000))
    assert f.cap("j") == 4 and 1.0 < f.latency("j") < 15.0  # a moving average
    f.done("j", None)  # the send raised: the slot is given back, nothing learned
    assert f.take("j")


def test_the_learned_rate_grows_additively_up_to_its_ceiling_and_ends_with_its_regime():
    doc = {"pace_rate": 2.0, "pace_decreased_at": 100.0, "pace_at": 100.0, "pace_ceiling": 3.0, "tat": 0}
    assert rate_now(doc, 100.0) == 2.0
    assert abs(rate_now(doc, 110.0) - 2.0 * (1 + 10 * GROWTH)) < 1e-9
    assert rate_now(doc, 10_000.0) == 3.0  # the ceiling (the configured rate_limit) bounds it
    assert learned_of(doc, 100.0 + REGIME + 1) is None  # no push-back for REGIME seconds: forgotten
    assert learned_of({"tat": 5.0}, 0.0) is None  # a configured rate alone is no learned pace
    shown = pace_of(doc, 105.0)
    assert shown is not None and shown["per_second"] == round(2.0 * (1 + 5 * GROWTH), 3)
    assert rate_now({**doc, "pace_ceiling": None}, 1e9) == DEFAULT_CEILING
