"""API keys without Firestore: scopes nest (read < jobs < admin), and a new key's expiry is bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sysevents.admin.keys import SCOPE_DOCS, SCOPES, Principal, expiry_for

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def key(scope: str) -> Principal:
    return Principal(operator=False, aid="a", prefix="sek_00000000", name="k", scope=scope)


@pytest.mark.parametrize(
    ("scope", "allowed"),
    [("read", {"read"}), ("jobs", {"read", "jobs"}), ("admin", {"read", "jobs", "admin"})],
)
def test_each_scope_allows_what_the_narrower_ones_do(scope, allowed):
    assert {needed for needed in SCOPES if key(scope).has_scope(needed)} == allowed


def test_an_unknown_stored_scope_allows_nothing_and_the_operator_everything():
    assert not any(key("superuser").has_scope(s) for s in SCOPES)
    operator = Principal(operator=True, aid=None, prefix="sek_00000000", name="operator", scope="admin")
    assert all(operator.has_scope(s) for s in SCOPES)


def test_every_scope_is_documented():
    assert set(SCOPE_DOCS) == set(SCOPES)


def test_expiry_is_in_the_future_and_within_the_bound():
    assert expiry_for(None, None, 365, NOW) is None  # never expires
    assert expiry_for(NOW + timedelta(days=365), None, 365, NOW) == NOW + timedelta(days=365)
    with pytest.raises(ValueError, match="in the future"):
        expiry_for(NOW, None, 365, NOW)
    with pytest.raises(ValueError, match="at most 30 days ahead"):
        expiry_for(NOW + timedelta(days=30, seconds=1), None, 30, NOW)


def test_a_minted_key_expires_no_later_than_its_minter():
    minter = NOW + timedelta(days=2)
    assert expiry_for(None, minter, 365, NOW) == minter
    assert expiry_for(NOW + timedelta(days=1), minter, 365, NOW) == NOW + timedelta(days=1)
    with pytest.raises(ValueError, match="when the key minting it expires"):
        expiry_for(NOW + timedelta(days=3), minter, 365, NOW)
