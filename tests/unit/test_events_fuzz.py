"""Fuzzing the wire format: whatever arrives, event_from_bytes returns an event that can be written back
(to_json, to_cloudevent, a delivery) and read again unchanged, or raises InvalidEvent with a reason.
Never another exception: that is an HTTP 500 and a redelivery loop in ingest."""

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysevents.delivery.message import Delivery
from sysevents.events.model import (
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    SUBJECT_TYPES,
    VERBS,
    InvalidEvent,
    event_from_bytes,
)
from sysevents.events.strictjson import MAX_REASON_BYTES, _depth_of_text

# Fixed and database-free, so every run tries the same inputs and takes the same (short) time.
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def check(raw: bytes) -> None:
    try:
        ev = event_from_bytes(raw, fallback_id="msg-1")
    except InvalidEvent as err:
        assert err.reason and "\n" not in err.reason and len(err.reason.encode()) <= MAX_REASON_BYTES
        return
    body = ev.to_json()
    json.dumps(ev.to_cloudevent(), ensure_ascii=False).encode()
    delivery = Delivery(ev, "job-1", 1)
    assert Delivery.from_json(delivery.to_json()) == delivery
    assert event_from_bytes(body) == ev


# -- building blocks -----------------------------------------------------------------------------------
chars = st.one_of(
    st.characters(),
    st.characters(max_codepoint=0x7F),
    st.sampled_from(["\x00", "\x1f", "\x7f", "\u2028", "\ufeff", "\\", '"', "[", "{", "\U0001f600"]),
    st.integers(0xD800, 0xDFFF).map(chr),  # unpaired surrogates (st.characters() leaves them out); rarer
)
plain = st.text(st.characters(), max_size=12)
texts = st.one_of(plain, plain, plain, st.text(chars, max_size=12))
keys = st.one_of(
    texts,
    st.sampled_from(
        ["id", "time", "data", "specversion", "aid", "actor", "notes", "", "__class__", "model_fields"]
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(),  # NaN and infinities too: json.dumps writes them as NaN / Infinity
    texts,
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=16,
)

offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
    lambda m: timedelta(minutes=m)
)  # RFC 3339: whole minutes
good_times = st.one_of(
    st.builds(
        lambda dt, off: dt.replace(tzinfo=timezone(off)).isoformat(),
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
        offsets,
    ),
    st.datetimes().map(lambda dt: dt.isoformat()),  # naive: read as UTC
    st.datetimes(timezones=st.just(UTC)).map(lambda dt: dt.isoformat().replace("+00:00", "Z")),
)
times = st.one_of(
    good_times,
    good_times,
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59.999999-23:59",
            "2026-02-30T00:00:00Z",
            "2026-01-02T03:04:05.1234567Z",
            "2026-01-02T23:59:60Z",
            "2026-01-02",
            "1700000000",
            "1e20",
            "-1",
        ]
    ),
    texts,
)
good_ids = st.text(st.characters(), min_size=1, max_size=10)
ids = st.one_of(good_ids, good_ids, good_ids, st.just("x" * 257), texts)


def maybe(good, weight: int = 17):
    """A good value `weight` times in 20, else any value at all, or (1 in 20) _ABSENT: left out."""
    return st.integers(0, 19).flatmap(
        lambda n: good if n < weight else values if n < 19 else st.just(_ABSENT)
    )


_ABSENT = object()

field_values = {
    "aid": maybe(st.one_of(st.text(min_size=1, max_size=8), st.integers())),
    "subject_type": maybe(st.sampled_from(SUBJECT_TYPES).map(str.upper) | st.sampled_from(SUBJECT_TYPES)),
    "subject_id": maybe(st.one_of(st.text(min_size=1, max_size=8), st.integers())),
    "verb": maybe(st.sampled_from((*VERBS, "update", " Failed "))),
    "actor": maybe(st.one_of(st.none(), st.text(max_size=8))),
}


@st.composite
def documents(draw):
    data = {k: v for k, v in ((k, draw(s)) for k, s in field_values.items()) if v is not _ABSENT}
    data.update(draw(st.dictionaries(keys, values, max_size=3)))
    top = {}
    for key, strategy in (("id", ids), ("time", times)):
        value = draw(maybe(strategy))
        if value is not _ABSENT:
            top[key] = value
    if draw(st.booleans()):  # flat, as producers send it
        return {**data, **top}
    envelope = {
        "specversion": draw(maybe(st.just("1.0"), 19)),
        **top,
        "data": draw(maybe(st.just(data), 19)),
    }
    envelope.update(
        draw(st.dictionaries(st.sampled_from(["source", "type", "subject", "x"]), values, max_size=2))
    )
    return {k: v for k, v in envelope.items() if v is not _ABSENT}


def encode(doc, ensure_ascii: bool) -> bytes:
    # ensure_ascii=False leaves surrogates raw (invalid UTF-8 once encoded); True escapes them as \udxxx.
    return json.dumps(doc, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")


def nest(depth: int, leaf: str, opener: str) -> str:
    return (opener * depth) + leaf + ("]" if opener == "[" else "}") * depth


VALID = {"aid": "12", "subject_type": "work", "subject_id": "w1", "verb": "failed"}


# -- the fuzz tests ------------------------------------------------------------------------------------
@settings(FUZZ, max_examples=200)
@given(documents(), st.booleans())
def test_any_document_is_accepted_and_writes_back_or_refused(doc, ensure_ascii):
    check(encode(doc, ensure_ascii))


@FUZZ
@given(
    st.one_of(st.integers(0, MAX_DEPTH + 3), st.integers(0, 30000)),
    st.sampled_from(["[", '{"a":']),
    st.sampled_from(["envelope", "flat", "top"]),
)
def test_any_nesting_is_accepted_or_refused(depth, opener, where):
    inner = nest(depth, "1", opener)
    if where == "top":
        raw = inner
    elif where == "flat":
        raw = json.dumps({**VALID, "id": "e"})[:-1] + f', "notes": {inner}}}'
    else:
        raw = json.dumps({"specversion": "1.0", "id": "e", "data": VALID})[:-2] + f', "notes": {inner}}}}}'
    check(raw.encode())


@FUZZ
@given(
    st.integers(MAX_EVENT_BYTES - 400, MAX_EVENT_BYTES + 20),
    st.sampled_from(["x", "é", "\u20ac", "\U0001f600", "\\n", "\\ud800", "[", "\\u00e9"]),
    st.booleans(),
)
def test_events_near_the_size_limit_are_accepted_or_refused(size, pad, flat):
    doc = {**VALID, "id": "e"} if flat else {"specversion": "1.0", "id": "e", "data": VALID}
    head = json.dumps(doc)[: -1 if flat else -2] + ', "notes": "'
    tail = '"}' if flat else '"}}'
    room = size - len(head.encode()) - len(tail)
    body = pad * max(0, room // len(pad.encode()))
    check((head + body + tail).encode())


@FUZZ
@given(
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-Infinity",
            "1e400",
            "-1e400",
            "1e-400",
            "-0",
            "-0.0",
            "1.7976931348623157e308",
            "9" * 4300,
            "9" * 4301,
            "-" + "9" * 5000,
            "123456789012345678901234567890",
            "0.1e1",
            "01",
            "1.",
            "+1",
        ]
    ),
    st.sampled_from(["aid", "subject_id", "notes", "id", "time", "actor", "verb"]),
    st.booleans(),
)
def test_any_number_literal_is_accepted_or_refused(literal, field, flat):
    values = {**VALID, "id": "e", field: "@@"}
    if flat:
        doc = values
    else:
        top = {k: values.pop(k) for k in ("id", "time") if k in values}
        doc = {"specversion": "1.0", **top, "data": values}
    check(json.dumps(doc).replace('"@@"', literal).encode())


GOOD = json.dumps(
    {
        "specversion": "1.0",
        "id": "e1",
        "time": "2026-01-02T03:04:05Z",
        "data": {**VALID, "notes": "disk full"},
    }
).encode()


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300),
        st.builds(lambda cut: GOOD[:cut], st.integers(0, len(GOOD))),
        st.builds(
            lambda at, junk: GOOD[:at] + junk + GOOD[at:],
            st.integers(0, len(GOOD)),
            st.binary(min_size=1, max_size=6),
        ),
        st.builds(
            lambda at, b: GOOD[:at] + bytes([b]) + GOOD[at + 1 :],
            st.integers(0, len(GOOD) - 1),
            st.integers(0, 255),
        ),
        st.sampled_from(
            [
                b"",
                b" ",
                b"\xef\xbb\xbf" + GOOD,
                GOOD.replace(b"disk", b"\xed\xa0\x80"),  # a surrogate, UTF-8 encoded: json.loads took it
                GOOD.decode().encode("utf-16"),
                GOOD.decode().encode("utf-32-be"),
            ]
        ),
    )
)
def test_any_bytes_are_accepted_or_refused(raw):
    check(raw)


def depth_of(value) -> int:
    if isinstance(value, dict | list):
        return 1 + max(map(depth_of, value.values() if isinstance(value, dict) else value), default=0)
    return 0


@settings(FUZZ, max_examples=80)
@given(values, st.booleans())
def test_depth_is_counted_as_the_parser_nests(value, ensure_ascii):
    text = json.dumps(value, ensure_ascii=ensure_ascii)
    assert _depth_of_text(text) == depth_of(value)
    assert _depth_of_text(text[: len(text) // 2]) <= depth_of(value)
