"""Signed consent links (sysevents.consent.tokens) and the allowed-domain rule, without servers."""

import pytest

from sysevents.consent.store import Policy
from sysevents.consent.tokens import CONFIRM, UNSUBSCRIBE, InvalidLink, sign, verify
from sysevents.jobs.secrets import generate_key

KEY = generate_key()
DAY = 86_400


def test_a_token_carries_purpose_account_and_address_and_hides_them():
    token = sign(KEY, CONFIRM, "acct-1", "ops@example.org", now=1000)
    grant = verify(KEY, token, ttl=DAY, now=1000 + 60)
    assert (grant.purpose, grant.aid, grant.address) == (CONFIRM, "acct-1", "ops@example.org")
    assert "ops" not in token and "acct-1" not in token


def test_a_confirm_token_expires_and_an_unsubscribe_token_does_not():
    confirm = sign(KEY, CONFIRM, "a", "x@example.org", now=1000)
    with pytest.raises(InvalidLink, match="expired"):
        verify(KEY, confirm, ttl=DAY, now=1000 + DAY + 1)
    stop = sign(KEY, UNSUBSCRIBE, "a", "x@example.org", now=1000)
    assert verify(KEY, stop, ttl=DAY, now=1000 + 400 * DAY).purpose == UNSUBSCRIBE


@pytest.mark.parametrize(
    "token",
    [
        sign(KEY, CONFIRM, "a", "x@example.org")[:-6] + "AAAAAA",  # changed
        sign(generate_key(), CONFIRM, "a", "x@example.org"),  # another deployment's
        "not-a-token-at-all-" * 4,
    ],
)
def test_a_changed_or_foreign_token_is_refused(token):
    with pytest.raises(InvalidLink, match="not valid"):
        verify(KEY, token, ttl=DAY)


def test_rotated_keys_still_verify_old_tokens():
    old = generate_key()
    token = sign(old, CONFIRM, "a", "x@example.org")
    assert verify(f"{generate_key()},{old}", token, ttl=DAY).aid == "a"


def test_an_allowed_domain_covers_its_subdomains_only():
    p = Policy(("example.com",))
    assert p.allows("a@example.com") and p.allows("a@ops.example.com") and p.allows("a@EXAMPLE.com")
    assert not p.allows("a@notexample.com") and not p.allows("a@example.com.evil.org")
