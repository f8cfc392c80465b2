"""What a job cache missed of one account's writes (`changes.missed`), checked against a model of the
writes: every write after the cache's last sync began (less its margin) and past the seq it saw is read
again, none other, and when the marker no longer lists one of them the account is reloaded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sysevents.jobs.changes import Marker, missed


def marker_of(writes: list[tuple[str, int]], keep: int) -> Marker:
    """The marker after `writes` ((job id, commit time), times increasing), listing the last `keep`."""
    entries = [(n + 1, job_id, writes[n - 1][1] if n else 0) for n, (job_id, _) in enumerate(writes)]
    return Marker("12", len(writes), tuple(entries[-keep:]) if keep else (), writes[-1][1] if writes else 0)


@st.composite
def histories(draw):
    gaps = draw(st.lists(st.integers(1, 5), min_size=0, max_size=30))
    times = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    writes = [(draw(st.sampled_from("abcde")), t) for t in times]
    keep = draw(st.integers(0, 12))
    since = draw(st.integers(0, (times[-1] if times else 0) + 2))
    seen = draw(st.one_of(st.none(), st.integers(0, len(writes))))
    return writes, keep, since, seen


@given(histories())
def test_missed_names_exactly_the_writes_after_since_and_past_seen_or_asks_for_a_reload(history):
    writes, keep, since, seen = history
    m = marker_of(writes, keep)
    wanted = [n + 1 for n, (_, t) in enumerate(writes) if t > since and (seen is None or n + 1 > seen)]
    listed = {e[0] for e in m.recent}
    got = missed(m, since, seen)
    if all(n in listed for n in wanted):
        assert got == {writes[n - 1][0] for n in wanted}
    else:
        assert got is None


def test_a_write_just_before_the_oldest_listed_and_after_since_is_missed():
    writes = [("a", 10), ("b", 20), ("c", 30)]
    assert missed(marker_of(writes, 2), since=15, seen=None) == {"b", "c"}  # a (10) is before since
    assert missed(marker_of(writes, 1), since=15, seen=None) is None  # only c listed; b at 20 > 15 unlisted
    assert missed(marker_of(writes, 1), since=15, seen=2) == {"c"}  # b was seen at the last sync
    assert missed(marker_of(writes, 1), since=25, seen=None) == {"c"}  # b committed before since


def test_a_marker_that_started_over_is_not_trusted():
    assert missed(marker_of([("a", 10)], 5), since=0, seen=4) is None
