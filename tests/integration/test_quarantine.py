"""Ingest quarantines whatever it cannot fully process, with a reason, and the quarantine is readable
(operator: GET /quarantine, `sysevents quarantine list`) without consuming the topic."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import requests
from click.testing import CliRunner
from helpers import wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysevents import ingest
from sysevents.cli import main
from sysevents.runtime import Runtime

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rt(stack):
    r = Runtime()
    yield r
    r.close()


def push(data: bytes) -> bytes:
    msg = {"data": base64.b64encode(data).decode(), "messageId": uuid.uuid4().hex, "attributes": {}}
    return json.dumps({"subscription": "projects/p/subscriptions/s", "message": msg}).encode()


def test_refused_events_are_listed_with_their_reasons_by_api_and_cli(stack, publisher, aid):
    bad = {
        json.dumps({"aid": aid, "subject_type": "planet", "subject_id": "x", "verb": "failed"}).encode():
            "unknown subject_type 'planet'",
        b"[" * 500 + b"]" * 500: "nested 500 levels deep",
        b'{"aid": "' + aid.encode() + b'", "subject_type": "work", "subject_id": "w", "verb": "failed", '
        b'"notes": "\\ud800"}': "unpaired surrogate",
    }  # fmt: skip
    publisher.publish_all([(stack.topology.ingest_topic, raw, {}) for raw in bad])
    url = stack.function_urls["admin"].rstrip("/") + "/quarantine"
    operator = {"X-API-Key": stack.operator_key}

    def listed() -> list[dict]:
        events = requests.get(url, params={"page_size": 200}, headers=operator, timeout=30).json()["events"]
        return [
            e
            for e in events
            if e.get("data", "").encode() in bad or e["reason"].startswith("event is nested 500")
        ]

    mine = wait_until(lambda: len(m := listed()) >= 3 and m, timeout=60, every=0.5) or listed()
    reasons = sorted(e["reason"] for e in mine)
    assert len(reasons) == 3 and all(any(w in r for r in reasons) for w in bad.values()), reasons
    named = requests.get(url, params={"aid": aid}, headers=operator, timeout=30).json()["events"]
    assert {e["aid"] for e in named} == {aid} and len(named) == 2  # the nested one names no account
    account_key = {"X-API-Key": "sek_not_the_operator"}
    assert requests.get(url, headers=account_key, timeout=30).status_code == 401

    env = {"SYSEVENTS_API_URL": stack.function_urls["admin"], "SYSEVENTS_OPERATOR_KEY": stack.operator_key}
    out = CliRunner(env=env).invoke(main, ["quarantine", "list", "--aid", aid])
    assert out.exit_code == 0, out.output
    assert "unknown subject_type 'planet'" in out.output and "unpaired surrogate" in out.output


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "aid": st.one_of(st.text(max_size=5), st.integers(), st.none(), JSONISH),
        "subject_type": st.one_of(st.sampled_from(["work", "WORK", "planet", ""]), JSONISH),
        "subject_id": st.one_of(st.text(max_size=5), JSONISH),
        "verb": st.one_of(st.sampled_from(["failed", "update", "exploded"]), JSONISH),
        "notes": JSONISH,
        "id": JSONISH,
        "time": st.one_of(
            st.sampled_from(["2026-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00", "x"]), JSONISH
        ),
    },
)


@given(
    body=st.one_of(
        FIELDS.map(lambda d: json.dumps(d, ensure_ascii=False).encode("utf-8", "surrogatepass")),
        FIELDS.map(lambda d: json.dumps({"specversion": "1.0", "data": d}).encode()),
        st.binary(max_size=200),
        st.integers(1, 3000).map(lambda n: b"{" * n + b"}" * n),
    )
)
@settings(
    max_examples=120, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
def test_ingest_accepts_or_quarantines_with_a_reason_never_an_error(rt, body):
    """Over the wire format, through the real ingest (job cache, publisher): every message is matched or
    quarantined with a reason, and answered 200 -- never a 5xx that Pub/Sub would retry, never a crash."""
    text, status = ingest.process(rt, push(body))
    assert status == 200, text
    assert text.startswith("matched ") or (
        text.startswith("quarantined: ") and len(text) > len("quarantined: ")
    )


def push_with(data: bytes, attributes: dict[str, str]) -> bytes:
    msg = {"data": base64.b64encode(data).decode(), "messageId": uuid.uuid4().hex, "attributes": attributes}
    return json.dumps({"subscription": "projects/p/subscriptions/s", "message": msg}).encode()


def test_a_producer_cannot_set_loop_protection_marks_only_sysevents_publishes_do(rt, aid):
    """The origin mark steers ingest's rules (sysevents.jobs.origin): a producer's event carrying it, in any
    form, is quarantined with the reason; sysevents' own sealed publish of the same event is matched; a
    sealed event changed by one byte is quarantined again."""
    from sysevents.events.model import new_event
    from sysevents.jobs import origin

    for mark in ({"job_id": "x", "kind": "test", "hops": 0}, {"hops": "many"}, "anything"):
        forged = new_event(aid, "work", "w-1", "failed", sysevents_origin=mark).to_json()
        text, status = ingest.process(rt, push(forged))
        assert status == 200 and text == (
            "quarantined: data.sysevents_origin is set by sysevents only; a producer's event may not carry it"
        )
    own = new_event(aid, "work", "w-1", "failed", **origin.mark("x", origin.Kind.LIFECYCLE)).to_json()
    sealed = origin.seal(own, rt.settings.sealing_keys)
    assert ingest.process(rt, push_with(own, sealed)) == ("matched 0", 200)
    changed = own.replace(b'"w-1"', b'"w-2"')
    assert ingest.process(rt, push_with(changed, sealed))[0].startswith("quarantined: data.sysevents_origin")
