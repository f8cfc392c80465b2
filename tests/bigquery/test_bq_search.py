"""Audit-log search: filters, pagination, and never another account's events."""

from datetime import UTC, datetime, timedelta

import pytest
from bq_helpers import rows
from helpers import wait_until

from sysevents.auditlog.search import InvalidSearch, search_audit
from sysevents.events.model import new_event

pytestmark = pytest.mark.integration


@pytest.fixture
def archived(stack, publisher, bq, audit, aid):
    """Two accounts with look-alike events, archived through the real pipeline."""
    other = aid + "-other"
    t0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
    mine = [new_event(aid, "work", "w-1", "failed", time=t0 + timedelta(minutes=i)) for i in range(5)]
    mine += [
        new_event(aid, "work", "w-2", "failed", time=t0),
        new_event(aid, "user", "w-1", "created", time=t0),
        new_event(aid, "work", "w-1", "completed", time=t0 - timedelta(days=1)),
    ]
    theirs = [new_event(other, "work", "w-1", "failed", time=t0 + timedelta(minutes=i)) for i in range(3)]
    publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in mine + theirs])
    for account, n in ((aid, len(mine)), (other, len(theirs))):
        assert wait_until(lambda a=account, n=n: len(rows(bq, audit, "aid = @aid", aid=a)) >= n)
    return mine, theirs, t0


def search(aid, bq, audit, **kw):
    return search_audit(aid, client=bq, table=audit, **kw)


def test_search_filters_within_the_callers_account_only(archived, aid, bq, audit):
    mine, theirs, t0 = archived
    page = search(aid, bq, audit, subject_type="work", subject_id="w-1", verb="failed")
    assert [e["id"] for e in page.events] == [e.id for e in reversed(mine[:5])]  # newest first
    assert {e["data"]["aid"] for e in page.events} == {aid}
    assert page.next_page_token is None
    assert {e["id"] for e in search(aid, bq, audit).events} == {e.id for e in mine}
    assert {e["id"] for e in search(aid + "-other", bq, audit).events} == {e.id for e in theirs}
    ranged = search(aid, bq, audit, start=t0, end=(t0 + timedelta(minutes=2)).isoformat())
    assert {e["id"] for e in ranged.events} == {mine[0].id, mine[1].id, mine[5].id, mine[6].id}
    assert search(aid, bq, audit, verb="update").events == []


def test_search_pages_through_everything_once(archived, aid, bq, audit):
    mine, _, _ = archived
    seen, token, pages = [], None, 0
    while True:
        page = search(aid, bq, audit, page_size=3, page_token=token)
        seen += [e["id"] for e in page.events]
        pages += 1
        token = page.next_page_token
        if token is None:
            break
    assert pages == 3 and sorted(seen) == sorted(e.id for e in mine) and len(seen) == len(set(seen))


def test_page_tokens_do_not_cross_accounts_or_filters(archived, aid, bq, audit):
    token = search(aid, bq, audit, page_size=2).next_page_token
    with pytest.raises(InvalidSearch, match="belongs to a different search"):
        search(aid + "-other", bq, audit, page_size=2, page_token=token)
    with pytest.raises(InvalidSearch, match="belongs to a different search"):
        search(aid, bq, audit, page_size=2, page_token=token, verb="failed")
    with pytest.raises(InvalidSearch, match="page_token: not a token"):
        search(aid, bq, audit, page_token="garbage!")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"verb": "exploded"}, "unknown verb 'exploded'; valid values: created"),
        ({"subject_type": "planet"}, "unknown subject_type 'planet'"),
        ({"page_size": 0}, "page_size: must be between 1 and 1000"),
        ({"start": "yesterday"}, "start: not an ISO 8601 time"),
        ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "end: must be after start"),
    ],
)
def test_bad_search_input_names_the_parameter(kw, message, bq, audit):
    with pytest.raises(InvalidSearch) as err:
        search_audit("acct-x", client=bq, table=audit, **kw)
    assert message in err.value.reason
