"""Content filters: compiling (errors with positions, limits), evaluating (never raising), hostile input."""

from datetime import UTC, datetime

import pytest

from sysevents.events.model import new_event
from sysevents.filters import (
    MAX_FILTER_CHARS,
    MAX_FILTER_CONCATS,
    MAX_FILTER_LOOPS,
    MAX_FILTER_NODES,
    FilterError,
    compile_filter,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def ev(verb="failed", subject_type="work", subject_id="w1", **extra):
    return new_event("12", subject_type, subject_id, verb, time=T0, **extra)


def test_user_stories():
    failed_permission = compile_filter('event.verb == "failed" && event.data.notes.contains("permission")')
    assert failed_permission.matches(ev(notes="no permission to write"))
    assert not failed_permission.matches(ev(notes="disk full"))
    assert not failed_permission.matches(ev("completed", notes="permission granted"))
    assert not failed_permission.matches(ev())  # no notes: no match, no exception

    sync_bot = compile_filter('event.data.actor == "sync-bot"')  # an `exclude` entry
    assert sync_bot.matches(ev(actor="sync-bot"))
    assert not sync_bot.matches(ev(actor="ana")) and not sync_bot.matches(ev())

    human_segment_update = compile_filter(
        'event.subject_type == "segment" && event.verb == "updated" && has(event.data.actor)'
        ' && !event.data.actor.endsWith("-bot")'
    )
    assert human_segment_update.matches(ev("updated", "segment", "s1", actor="ana"))
    assert not human_segment_update.matches(ev("updated", "segment", "s1", actor="sync-bot"))
    assert not human_segment_update.matches(ev("updated", "segment", "s1"))
    assert not human_segment_update.matches(ev("updated", "work", "w1", actor="ana"))


def test_variables_and_types():
    e = ev(subject_id="w9", count=3, tags=["a", "b"], nested={"k": {"v": 1.5}}, ok=True)
    for text in (
        'event.aid == "12" && event.subject_id == "w9" && event.subject_type == "work"',
        'event.time == timestamp("2026-03-01T12:00:00Z") && event.time.getHours("Europe/Paris") == 13',
        "event.data.count > 2 && event.data.count < 3.5",
        '"b" in event.data.tags && event.data.tags.exists(t, t.startsWith("a"))',
        "event.data.nested.k.v == 1.5 && event.data.ok",
        'event.data.verb == "failed" && event.data.aid == "12"',
        'event.data.notes.matches("^x") || true',  # `||` absorbs the missing field's error
    ):
        assert compile_filter(text).matches(e), text
    for text in (
        "event.data.count > 3",
        'event.data.count == "3"',  # a type mismatch
        "event.data.tags.size() > 2",
        "event.data.missing.deeper == 1",
        "event.data.ok && event.data.count / 0 == 1",  # an evaluation error
        "event.data.count",  # not a boolean at run time (dyn at compile time)
    ):
        assert not compile_filter(text).matches(e), text


def test_integers_beyond_64_bits_are_numbers():
    e = ev(big=2**70, small=1)
    assert compile_filter("event.data.big > 1e20").matches(e)
    assert compile_filter("event.data.small == 1").matches(e)


def test_compiled_once_per_text():
    assert compile_filter("event.verb == 'failed'") is compile_filter("event.verb == 'failed'")


@pytest.mark.parametrize(
    ("text", "reason", "position"),
    [
        ("event.verb ==", "Syntax error", (1, 14)),
        ('event.verb == "failed" &&\n  evnt.aid == "1"', "undeclared reference to 'evnt.aid'", (2, 7)),
        ("event.verb + 1 > 0", "no matching overload", (1, 12)),
        ("event.subject_id", "must be true or false, but it gives a string", None),
        ("   ", "empty", None),
        ('event.data.notes.matches("(a")', "invalid regular expression", (1, 25)),
        ("event.data.notes.matches(event.data.pattern)", "string literal", (1, 25)),
        ("event.data.l.exists(x, x == event.data.notes)", "only its own variables, not event.data", (1, 29)),
        ("event.data.l.exists(x, x.exists(y, y == 1))", "inside another's body", (1, 32)),
    ],
)
def test_compile_errors_say_what_and_where(text, reason, position):
    with pytest.raises(FilterError) as err:
        compile_filter(text)
    assert reason in err.value.reason
    assert err.value.position == position
    assert isinstance(err.value, ValueError)
    if position:
        assert str(err.value).startswith(f"line {position[0]}, column {position[1]}: ")


def test_size_limits():
    with pytest.raises(FilterError, match="characters"):
        compile_filter("true || " * (MAX_FILTER_CHARS // 8) + "true")
    numbers = ",".join(str(i % 10) for i in range(MAX_FILTER_NODES))
    with pytest.raises(FilterError, match="syntax nodes"):
        compile_filter(f"event.data.n in [{numbers}]")
    with pytest.raises(FilterError, match="nested too deeply"):
        compile_filter("(" * 40 + "true" + ")" * 40)
    loops = " && ".join(f"event.data.l{i}.exists(x, x == 1)" for i in range(MAX_FILTER_LOOPS + 1))
    with pytest.raises(FilterError, match="list macros"):
        compile_filter(loops)
    concat = " + ".join(["event.data.notes"] * (MAX_FILTER_CONCATS + 2))
    with pytest.raises(FilterError, match="concatenations") as err:
        compile_filter(f"({concat}).size() > 0")
    assert err.value.position is not None
    compile_filter(" + ".join(["event.data.notes"] * (MAX_FILTER_CONCATS + 1)) + ' == ""')  # at the limit


def test_hostile_expressions_are_refused_or_bounded():
    with pytest.raises(FilterError):  # a quadratic loop
        compile_filter("event.data.l.exists(x, event.data.l.exists(y, x == y))")
    with pytest.raises(FilterError):  # a string blown up per element
        compile_filter('event.data.l.map(x, event.data.notes + "x").size() > 0')
    with pytest.raises(FilterError, match="invalid repetition size"):  # RE2 refuses huge programs
        compile_filter('event.data.notes.matches("(a{100}){100}")')
    bomb = compile_filter('event.data.notes.matches("(a+)+$") || event.data.notes.matches("(a|aa)*b")')
    assert not bomb.matches(ev(notes="a" * 30_000 + "!"))  # RE2: linear time, no backtracking
    many = compile_filter("event.data.l.exists(x, x < 0)")
    assert not many.matches(ev(l=list(range(20_000))))  # past the runtime's iteration budget: no match
    assert many.matches(ev(l=[3, -1]))
