"""BigQuery export targets are bound to the account: its own datasets only, never the audit dataset."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sysevents.config import Settings
from sysevents.sinks.bigquery.targets import account_dataset, encode_aid, refusal

S = Settings(SYSEVENTS_PROJECT="p1", audit_dataset="sysevents", export_projects=("p2",))
AIDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)


def test_an_account_may_write_to_its_own_datasets_only():
    own = account_dataset(S, "acct-1")
    assert own == "export_acct_h1"
    assert refusal(S, "acct-1", None, own) is None
    assert refusal(S, "acct-1", "p1", own + "__daily") is None
    assert refusal(S, "acct-1", "p2", own) is None  # an allowed extra project
    field, why = refusal(S, "acct-1", None, account_dataset(S, "acct-2"))
    assert field == "config.dataset" and "this account's dataset 'export_acct_h1'" in why
    assert refusal(S, "acct-1", None, own + "x")  # not a suffix of its own name


def test_the_audit_dataset_and_other_projects_are_refused():
    assert refusal(S, "a", None, "sysevents") == (
        "config.dataset",
        "the audit dataset cannot be an export target",
    )
    assert refusal(S, "a", "p1", "sysevents")[0] == "config.dataset"
    assert refusal(S, "a", "elsewhere", account_dataset(S, "a"))[0] == "config.project"


@given(AIDS, AIDS)
def test_no_two_accounts_share_a_dataset(a, b):
    """The encoding is injective and never makes '__', so `<own>__<suffix>` of one account is never
    another's: whatever one account may name, no other may."""
    assert "__" not in encode_aid(a)
    if a != b:
        da, db = account_dataset(S, a), account_dataset(S, b)
        assert da != db
        assert refusal(S, b, None, da) is not None and refusal(S, b, None, da + "__x") is not None


@pytest.mark.parametrize("aid", ["a_b", "a-b", "a.b", "a__b"])
def test_lookalike_accounts_get_different_datasets(aid):
    others = {"a_b", "a-b", "a.b", "a__b"} - {aid}
    assert all(account_dataset(S, aid) != account_dataset(S, o) for o in others)
