"""Producer identity (sysevents.events.producers): signatures, bindings of producers to accounts, keys and
their rotation, and the settings that configure them."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from sysevents.config import Settings
from sysevents.events.model import new_event
from sysevents.events.producers import (
    PRODUCER_ATTR,
    SIGNATURE_ATTR,
    ProducerConfigError,
    Producers,
    new_key,
    sign,
    signed,
)

KEY, OLD, OTHER = "k" * 32, "o" * 32, "x" * 32
BINDINGS = {"billing": ("12", "acme-*"), "ops": ("*",)}


def producers(keys: str = json.dumps({"billing": [KEY], "ops": [OTHER]})) -> Producers:
    return Producers.of(BINDINGS, keys)


def never_own() -> bool:
    return False


def refusal(p: Producers, data: bytes, attrs: dict, aid: str) -> str | None:
    return p.refusal(data, attrs, aid, never_own)


def test_an_event_signed_by_a_producer_bound_to_its_account_is_admitted():
    data, attrs = signed(new_event("12", "work", "w1", "failed"), "billing", KEY)
    assert set(attrs) == {PRODUCER_ATTR, SIGNATURE_ATTR} and attrs[SIGNATURE_ATTR].startswith("v1=")
    assert refusal(producers(), data, attrs, "12") is None
    data, attrs = signed(new_event("acme-7", "work", "w1", "failed"), "billing", KEY)
    assert refusal(producers(), data, attrs, "acme-7") is None  # a prefix
    data, attrs = signed(new_event("99", "work", "w1", "failed"), "ops", OTHER)
    assert refusal(producers(), data, attrs, "99") is None  # *


def test_another_account_is_refused_though_the_signature_is_good():
    for aid in ("13", "acme", "acm", "x-acme-1", "120"):
        data, attrs = signed(new_event(aid, "work", "w1", "failed"), "billing", KEY)
        assert refusal(producers(), data, attrs, aid) == (
            f"producer 'billing' may not publish for account {aid!r} (SYSEVENTS_PRODUCERS)"
        )


def test_a_wrong_key_does_not_verify():
    data, attrs = signed(new_event("12", "work", "w1", "failed"), "billing", OTHER)  # ops' key
    why = refusal(producers(), data, attrs, "12")
    assert why is not None and why.startswith("the signature of producer 'billing' does not verify")


@pytest.mark.parametrize("drop", [PRODUCER_ATTR, SIGNATURE_ATTR])
def test_missing_attributes_are_an_unsigned_event(drop):
    data, attrs = signed(new_event("12", "work", "w1", "failed"), "billing", KEY)
    del attrs[drop]
    why = refusal(producers(), data, attrs, "12")
    assert why is not None and why.startswith("unsigned event: this deployment binds producers")
    assert refusal(producers(), data, {}, "12") == why


def test_an_unknown_producer_is_refused():
    data = new_event("12", "work", "w1", "failed").to_json()
    assert refusal(producers(), data, sign("crm", KEY, "12", data), "12") == (
        "unknown producer 'crm': SYSEVENTS_PRODUCERS does not bind it"
    )


def test_a_signature_replayed_on_another_accounts_data_does_not_verify():
    mine = new_event("12", "work", "w1", "failed").to_json()
    attrs = sign("billing", KEY, "12", mine)
    theirs = new_event("13", "work", "w1", "failed").to_json()
    assert "does not verify" in refusal(producers(), theirs, attrs, "13")
    # nor on other bytes of the same account, nor for the same bytes claimed for another account
    changed = new_event("12", "work", "w1", "deleted").to_json()
    assert "does not verify" in refusal(producers(), changed, attrs, "12")
    assert "does not verify" in refusal(
        Producers.of({"billing": ("*",)}, f'{{"billing": ["{KEY}"]}}'), mine, attrs, "13"
    )


def test_fields_cannot_be_shifted_between_producer_account_and_data():
    data = b"{}"
    assert sign("ab", KEY, "c", data)[SIGNATURE_ATTR] != sign("a", KEY, "bc", data)[SIGNATURE_ATTR]
    assert sign("a", KEY, "b", b"c")[SIGNATURE_ATTR] != sign("a", KEY, "bc", b"")[SIGNATURE_ATTR]


def test_keys_rotate_every_key_listed_verifies():
    event = new_event("12", "work", "w1", "failed")
    old_data, old_attrs = signed(event, "billing", OLD)
    new_data, new_attrs = signed(event, "billing", KEY)
    both = producers(f'{{"billing": ["{KEY}", "{OLD}"], "ops": ["{OTHER}"]}}')
    assert refusal(both, old_data, old_attrs, "12") is None
    assert refusal(both, new_data, new_attrs, "12") is None
    after = producers(f'{{"billing": ["{KEY}"], "ops": ["{OTHER}"]}}')  # the old key removed
    assert "does not verify" in refusal(after, old_data, old_attrs, "12")
    assert refusal(after, new_data, new_attrs, "12") is None


def test_sysevents_own_events_and_deployments_without_bindings_are_admitted():
    data = new_event("13", "work", "w1", "failed").to_json()
    assert producers().refusal(data, {}, "13", lambda: True) is None  # sealed by sysevents
    off = Producers.of({}, None)
    assert not off.on and off.refusal(data, {}, "13", never_own) is None


def test_settings_that_cannot_be_used_are_refused_with_where():
    with pytest.raises(ProducerConfigError, match="binds 'ops' but SYSEVENTS_PRODUCER_KEYS has no key"):
        producers(f'{{"billing": ["{KEY}"]}}')
    with pytest.raises(ProducerConfigError, match="is not JSON"):
        producers("billing=" + KEY)
    with pytest.raises(ProducerConfigError, match=r"\['billing'\]\[1\]: a key has at least 32") as err:
        producers(f'{{"billing": ["{KEY}", "short"], "ops": ["{OTHER}"]}}')
    assert "short" not in str(err.value)  # keys are never shown
    with pytest.raises(ProducerConfigError, match="needs SYSEVENTS_SEALING_KEYS"):
        Producers.of(BINDINGS, f'{{"billing": ["{KEY}"], "ops": ["{OTHER}"]}}', sealed=False)
    with pytest.raises(ValidationError, match="producer 'billing': account pattern '1\\*2' must be"):
        Settings(producers={"billing": ["1*2"]})
    with pytest.raises(ValidationError, match="producer 'billing': no account patterns"):
        Settings(producers={"billing": []})
    assert Settings(producers={"billing": ["12", "acme-*"]}).producers == {"billing": ("12", "acme-*")}
    assert Settings().producers == {}


def test_new_keys_are_long_and_distinct():
    a, b = new_key(), new_key()
    assert a != b and len(a) >= 32
