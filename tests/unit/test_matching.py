import random
import re

from helpers import webhook_job
from hypothesis import given, settings
from hypothesis import strategies as st

from sysevents.events.model import SUBJECT_TYPES, VERBS, new_event
from sysevents.jobs.matching import JobIndex, matches
from sysevents.jobs.model import JobState


def job(job_id, aid="12", verbs=("failed",), sources=None, state="active"):
    config = {"system_event_multiple_types": list(verbs)}
    if sources is not None:
        config["system_event_sources"] = sources
    return webhook_job(job_id, aid, "https://h.example.com", fields={"state": state}, **config)


def test_filter_semantics():
    ev = new_event("12", "work", "w1", "failed")
    assert matches(job("a").filter, ev)  # no sources: every subject type
    assert matches(job("a", sources={"work": []}).filter, ev)  # []: every subject of the type
    assert matches(job("a", sources={"work": ["w1", "w2"]}).filter, ev)
    assert not matches(job("a", sources={"work": ["w2"]}).filter, ev)
    assert not matches(job("a", sources={"segment": []}).filter, ev)
    assert not matches(job("a", verbs=("created",)).filter, ev)
    assert not matches(job("a", aid="13").filter, ev)  # never another account's events


def test_index_updates_and_paused_jobs():
    idx = JobIndex([job("a"), job("b", sources={"work": ["w1"]}), job("c", state="paused")])
    ev = new_event("12", "work", "w1", "failed")
    assert [j.id for j in idx.match(ev)] == ["a", "b"]
    idx.upsert(job("b", sources={"work": ["w9"]}))
    assert [j.id for j in idx.match(ev)] == ["a"]
    idx.upsert(job("c"))
    idx.remove(("12", "a"))
    assert [j.id for j in idx.match(ev)] == ["c"]
    idx.upsert(job("c", state="paused"))
    assert idx.match(ev) == [] and idx.get(("12", "c")).state is JobState.PAUSED


def test_the_same_job_id_in_two_accounts_is_two_jobs():
    idx = JobIndex([job("same", aid="12"), job("same", aid="13", verbs=("created",))])
    assert [j.aid for j in idx.match(new_event("12", "work", "w1", "failed"))] == ["12"]
    assert [j.aid for j in idx.match(new_event("13", "work", "w1", "created"))] == ["13"]
    idx.remove(("13", "same"))
    assert idx.get(("12", "same")) is not None and idx.get(("13", "same")) is None


ids = st.sampled_from(["s1", "s2", "s3"])
sources = st.one_of(
    st.none(), st.dictionaries(st.sampled_from(SUBJECT_TYPES[:4]), st.lists(ids, max_size=2), max_size=3)
)
jobs_strategy = st.lists(
    st.tuples(
        st.sampled_from(["1", "2"]), st.lists(st.sampled_from(VERBS[:3]), min_size=1, max_size=3), sources
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(
    jobs_strategy,
    st.sampled_from(["1", "2"]),
    st.sampled_from(SUBJECT_TYPES[:4]),
    ids,
    st.sampled_from(VERBS[:3]),
)
def test_index_agrees_with_the_predicate(specs, aid, subject_type, subject_id, verb):
    jobs = [job(f"j{i}", aid=a, verbs=v, sources=s) for i, (a, v, s) in enumerate(specs)]
    ev = new_event(aid, subject_type, subject_id, verb)
    expected = sorted(j.id for j in jobs if matches(j.filter, ev))
    assert [j.id for j in JobIndex(jobs).match(ev)] == expected


def test_candidates_do_not_grow_with_unrelated_jobs():
    rng = random.Random(1)
    noise = [job(f"n{i}", aid=str(rng.randint(100, 999)), sources={"work": [f"x{i}"]}) for i in range(5000)]
    idx = JobIndex([*noise, job("mine", sources={"work": ["w1"]})])
    ev = new_event("12", "work", "w1", "failed")
    assert [j.id for j in idx.match(ev)] == ["mine"]
    assert sum(len(b) for k, b in idx._by_key.items() if k[0] == "12") == 1


# Content filters: each CEL expression with an independent Python reading of it (None: the field is
# missing or of another type, which CEL calls an error and matching calls "no match").
def _notes(e):
    n = e.data.model_extra.get("notes")
    return n if isinstance(n, str) else None


def _count(e):
    c = e.data.model_extra.get("count")
    return c if isinstance(c, int | float) and not isinstance(c, bool) else None  # CEL compares across


CONTENT = [
    (None, lambda e: True),
    ('event.data.notes.contains("perm")', lambda e: _notes(e) is not None and "perm" in _notes(e)),
    ('event.data.actor == "sync-bot"', lambda e: e.data.actor == "sync-bot"),
    (
        'has(event.data.actor) && event.data.actor != "sync-bot"',
        lambda e: e.data.actor not in (None, "sync-bot"),
    ),
    ("event.data.count > 2", lambda e: _count(e) is not None and _count(e) > 2),
    (
        'event.subject_id in ["s1", "s3"] || event.verb == "created"',
        lambda e: e.subject_id in ("s1", "s3") or e.verb == "created",
    ),
    (
        'event.data.notes.matches("^p.r") && event.data.count < 5',
        lambda e: (
            _notes(e) is not None
            and re.match("p.r", _notes(e)) is not None
            and _count(e) is not None
            and _count(e) < 5
        ),
    ),
]
EXCLUDE = CONTENT[1:]


def _truth(spec, ev):
    aid, verbs, srcs, content, excludes = spec
    base = aid == ev.aid and ev.verb in verbs
    if srcs is not None:
        wanted = srcs.get(ev.subject_type)
        base = base and wanted is not None and (not wanted or ev.subject_id in wanted)
    return base and CONTENT[content][1](ev) and not any(EXCLUDE[x][1](ev) for x in excludes)


filtered_jobs = st.lists(
    st.tuples(
        st.sampled_from(["1", "2"]),
        st.lists(st.sampled_from(VERBS[:3]), min_size=1, max_size=3),
        sources,
        st.integers(0, len(CONTENT) - 1),
        st.lists(st.integers(0, len(EXCLUDE) - 1), max_size=2),
    ),
    max_size=25,
)
extras = st.fixed_dictionaries(
    {},
    optional={
        "notes": st.one_of(st.sampled_from(["perm denied", "pxr", "disk full", ""]), st.integers(0, 3)),
        "count": st.one_of(st.integers(-1, 6), st.sampled_from(["3", 2.5, None])),
    },
)


@settings(max_examples=200, deadline=None)
@given(
    filtered_jobs,
    st.sampled_from(["1", "2"]),
    st.sampled_from(SUBJECT_TYPES[:4]),
    ids,
    st.sampled_from(VERBS[:3]),
    st.sampled_from([None, "sync-bot", "ana"]),
    extras,
)
def test_index_and_content_filters_agree_with_a_direct_evaluation(specs, aid, st_, sid, verb, actor, extra):
    jobs = []
    for i, (a, verbs, srcs, content, excludes) in enumerate(specs):
        config = {"system_event_multiple_types": list(verbs), "exclude": [EXCLUDE[x][0] for x in excludes]}
        if srcs is not None:
            config["system_event_sources"] = srcs
        if CONTENT[content][0] is not None:
            config["filter"] = CONTENT[content][0]
        jobs.append(webhook_job(f"j{i}", a, "https://h.example.com", **config))
    ev = new_event(aid, st_, sid, verb, actor=actor, **extra)
    expected = sorted(f"j{i}" for i, spec in enumerate(specs) if _truth(spec, ev))
    assert sorted(j.id for j in jobs if matches(j.filter, ev)) == expected
    assert [j.id for j in JobIndex(jobs).match(ev)] == expected
