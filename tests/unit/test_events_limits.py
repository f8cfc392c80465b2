"""What event_from_bytes refuses on the wire, and how it says so: each case once crashed ingest or let an
event through that could not be written back as UTF-8 JSON."""

import json
import re
import time

import pytest

from sysevents.delivery.message import BadDelivery, Delivery
from sysevents.events.model import (
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    InvalidEvent,
    event_from_bytes,
    event_from_dict,
    new_event,
)
from sysevents.events.strictjson import MAX_REASON_BYTES

BASE = {"aid": "12", "subject_type": "work", "subject_id": "w1", "verb": "failed"}
DEPTH_LIMIT = (
    f"the limit is {MAX_DEPTH} ({MAX_DEPTH - 1} for a flat event, whose fields become the CloudEvents data)"
)


def envelope(**data):
    return {"specversion": "1.0", "id": "e1", "time": "2026-01-02T03:04:05Z", "data": {**BASE, **data}}


def wire(doc) -> bytes:
    return json.dumps(doc).encode()


def reason(raw: bytes, **kw) -> str:
    with pytest.raises(InvalidEvent) as err:
        event_from_bytes(raw, **kw)
    return err.value.reason


def writes_back(raw: bytes):
    ev = event_from_bytes(raw, fallback_id="m")
    json.dumps(ev.to_cloudevent(), ensure_ascii=False).encode()
    Delivery(ev, "j1", 1).to_json()
    assert event_from_bytes(ev.to_json()) == ev
    return ev


def nested(depth: int, leaf="x"):
    for _ in range(depth):
        leaf = [leaf]
    return leaf


# -- nesting -------------------------------------------------------------------------------------------
def test_deep_json_is_refused_without_parsing_it():
    raw = b'{"data":{"notes":' + b"[" * 20000 + b"]" * 20000 + b"}}"  # 40 KB; json.loads recursed too deep
    assert len(raw) < MAX_EVENT_BYTES
    assert reason(raw) == f"event is nested 20002 levels deep; {DEPTH_LIMIT}"


def test_counting_depth_takes_one_pass():
    raw = b"[" * 40 + b'"' + b'\\"' * 20000  # an unterminated string of escaped quotes
    start = time.perf_counter()
    assert reason(raw) == f"event is nested 40 levels deep; {DEPTH_LIMIT}"
    assert time.perf_counter() - start < 2  # a regular expression took 12 s on this


def test_deep_data_is_refused_at_parse_time():
    # json.loads managed 500 levels; writing the event back did not ("Maximum serialization depth exceeded").
    assert reason(wire(envelope(notes=nested(500)))) == f"event is nested 502 levels deep; {DEPTH_LIMIT}"


def test_depth_limit_counts_the_whole_envelope():
    writes_back(wire(envelope(notes=nested(MAX_DEPTH - 2))))
    assert reason(wire(envelope(notes=nested(MAX_DEPTH - 1)))).startswith(
        f"event is nested {MAX_DEPTH + 1} levels deep; the limit is {MAX_DEPTH}"
    )
    # Brackets inside strings are text, not nesting.
    writes_back(wire(envelope(notes="[{" * 1000)))


def test_flat_events_get_one_level_less_as_their_fields_become_data():
    writes_back(wire({**BASE, "notes": nested(MAX_DEPTH - 2)}))
    assert reason(wire({**BASE, "notes": nested(MAX_DEPTH - 1)}), fallback_id="m") == (
        f"event is nested {MAX_DEPTH} levels deep; {DEPTH_LIMIT}"
    )


def test_event_from_dict_applies_the_same_depth_limit():
    with pytest.raises(InvalidEvent, match=f"event is nested 202 levels deep; the limit is {MAX_DEPTH}"):
        event_from_dict(envelope(notes=nested(200)))


# -- text that is not Unicode --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, where",
    [
        (wire(envelope(notes="disk \ud800 full")), "data.notes"),
        (wire(envelope(notes={"rows": ["ok", "\udfff"]})), "data.notes.rows.1"),
        (wire({**envelope(), "id": "e\udc00"}), "id"),
        (wire(envelope(aid="1\ud83d")), "data.aid"),
    ],
)
def test_unpaired_surrogates_are_refused_naming_the_field(raw, where):
    assert b"\\ud" in raw  # escaped, as json.dumps writes them; json.loads accepts them
    assert reason(raw) == f"{where}: contains an unpaired surrogate (not valid Unicode text)"


def test_unpaired_surrogates_in_keys_are_refused():
    assert reason(wire(envelope(**{"a\ud800": 1}))) == (
        "data: key 'a\\ud800' contains an unpaired surrogate (not valid Unicode text)"
    )
    assert reason(wire(envelope(notes={"\udbff": 1}))).startswith("data.notes: key '\\udbff' contains")


def test_paired_surrogate_escapes_are_fine():
    ev = writes_back(
        b'{"id":"e1","aid":"1","subject_type":"work","subject_id":"w","verb":"failed","n":"\\ud83d\\ude00"}'
    )
    assert ev.data.model_extra["n"] == "\U0001f600"


def test_bytes_that_are_not_utf8_are_refused():
    assert reason(b'{"notes":"\xed\xa0\x80"}') == (  # a surrogate encoded as UTF-8: json.loads took it
        "event is not valid UTF-8 text: byte 0xed at offset 10 (invalid continuation byte)"
    )
    assert reason(b"\xff{}") == "event is not valid UTF-8 text: byte 0xff at offset 0 (invalid start byte)"
    utf16 = wire(envelope()).decode().encode("utf-16-le")  # json.loads took UTF-16 and UTF-32
    assert reason(utf16) == "event contains NUL bytes (UTF-16 or UTF-32 text?); send UTF-8 JSON"
    assert "byte order mark" in reason(wire(envelope()).decode().encode("utf-16"))


def test_bom_and_empty_bodies_are_refused():
    assert reason(b"\xef\xbb\xbf" + wire(envelope())) == (
        "event starts with a byte order mark (BOM); send UTF-8 JSON without one"
    )
    assert reason(b"") == "event is empty; expected a JSON object"
    assert reason(b" \n") == "event is empty; expected a JSON object"


# -- numbers JSON cannot carry -------------------------------------------------------------------------
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_refused(literal):
    raw = wire(envelope(rows=0)).replace(b'"rows": 0', f'"rows": {literal}'.encode())
    assert reason(raw) == f"data.rows: {literal} is not allowed: JSON numbers must be finite"


def test_numbers_out_of_range_are_refused():
    raw = wire(envelope(rows=0)).replace(b'"rows": 0', b'"rows": -1e400')
    assert reason(raw) == "data.rows: number -1e400 is out of range"
    raw = wire(envelope(rows=0)).replace(b'"rows": 0', b'"rows": ' + b"9" * 5000)
    assert reason(raw) == "data.rows: number has 5000 digits; the limit is 4300"


def test_non_finite_floats_from_python_callers_are_refused():
    with pytest.raises(InvalidEvent, match=r"^data.ratio: nan is not allowed: JSON numbers must be finite$"):
        new_event("12", "work", "w1", "failed", ratio=float("nan"))


# -- id and time ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, kind", [(7, "number"), (0, "number"), (False, "boolean"), ({"a": 1}, "object"), (["e"], "array")]
)
def test_ids_must_be_strings(value, kind):
    assert reason(wire({**envelope(), "id": value}), fallback_id="m") == f"id: must be a string, got {kind}"


@pytest.mark.parametrize(
    "value, kind", [(1767322800, "number"), (0, "number"), (True, "boolean"), ({}, "object"), ([], "array")]
)
def test_times_must_be_strings(value, kind):
    assert reason(wire({**envelope(), "time": value})) == (
        f"time: must be a string (an RFC 3339 timestamp such as 2026-01-02T03:04:05Z), got {kind}"
    )


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-00:01"])
def test_times_out_of_range_are_refused(value):
    assert reason(wire({**envelope(), "time": value})) == (
        f"time: {value} is out of range; times must lie between 0001-01-01 and 9999-12-31 UTC"
    )


def test_missing_id_and_time_still_fall_back():
    ev = writes_back(wire({**BASE, "id": "", "time": None}))
    assert ev.id == "m"


# -- reasons in plain language -------------------------------------------------------------------------
PY_TYPES = re.compile(r"\b(NoneType|None|True|False|dict|dictionary|list|tuple|int|float|str|bool)\b")


@pytest.mark.parametrize(
    "doc, expected",
    [
        ([1, 2], "event must be a JSON object, got array"),
        (None, "event must be a JSON object, got null"),
        ("x", "event must be a JSON object, got string"),
        (
            {"data": [1]},
            "data: must be a JSON object carrying aid, subject_type, subject_id and verb, got array",
        ),
        ({**envelope(), "specversion": 1.0}, "specversion: must be the string '1.0', got number"),
        ({**envelope(), "specversion": None}, "specversion: must be the string '1.0', got null"),
        (
            envelope(subject_type=None),
            "data.subject_type: subject_type must be a string, got null; valid values:",
        ),
        (envelope(verb=["failed"]), "data.verb: verb must be a string, got array; valid values:"),
    ],
)
def test_reasons_name_json_types_not_python_ones(doc, expected):
    got = reason(wire(doc))
    assert got.startswith(expected) and not PY_TYPES.search(got)


@pytest.mark.parametrize("field", ["aid", "subject_id", "actor", "subject_type", "verb"])
@pytest.mark.parametrize("value", [None, True, 1.5, [], {}, [1], {"a": None}])
def test_no_reason_mentions_a_python_type(field, value):
    if field == "actor" and value is None:  # actor is optional
        value = {}
    got = reason(wire(envelope(**{field: value})))
    assert got.startswith(f"data.{field}: ") and not PY_TYPES.search(got), got


def test_long_values_are_cut_short_in_reasons():
    got = reason(wire(envelope(subject_type="planet" * 5000)))
    assert (
        got.startswith("data.subject_type: unknown subject_type 'planetplanet")
        and "...'; valid values:" in got
    )
    assert len(got.encode()) <= MAX_REASON_BYTES  # a Pub/Sub attribute value holds at most 1024 bytes
    assert len(InvalidEvent("x\n" * 5000).reason.encode()) <= MAX_REASON_BYTES
    assert "\n" not in InvalidEvent("a\nb").reason


# -- everything accepted can be written back -----------------------------------------------------------
def test_null_free_form_fields_round_trip():
    ev = writes_back(wire(envelope(notes=None, extra={"kept": None})))
    assert "notes" not in ev.to_cloudevent()["data"] and ev.to_cloudevent()["data"]["extra"] == {"kept": None}


def test_a_flat_event_that_outgrows_the_limit_as_a_cloudevent_is_refused():
    doc = {**BASE, "id": "e1", "notes": ""}
    doc["notes"] = "x" * (MAX_EVENT_BYTES - len(wire(doc)))
    assert len(wire(doc)) == MAX_EVENT_BYTES
    assert re.fullmatch(
        rf"event is \d+ bytes once written as a CloudEvent; the limit is {MAX_EVENT_BYTES} bytes",
        reason(wire(doc)),
    )


def test_control_characters_and_odd_keys_are_kept():
    ev = writes_back(wire(envelope(notes="a\x00b\u2028c\x7f", **{"": 1, "__class__": 2, "model_fields": 3})))
    assert ev.to_cloudevent()["data"]["notes"] == "a\x00b\u2028c\x7f"


# -- delivery messages ---------------------------------------------------------------------------------
def delivery_reason(raw: bytes) -> str:
    with pytest.raises(BadDelivery) as err:
        Delivery.from_json(raw)
    return str(err.value)


def test_delivery_round_trip():
    d = Delivery(event_from_bytes(wire(envelope(notes=nested(MAX_DEPTH - 2)))), "j1", 3)
    assert Delivery.from_json(d.to_json()) == d


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"[]", "must be a JSON object, got array"),
        (b'{"job": 1}', "job: must be a JSON object with id and version, got number"),
        (b'{"job": {"id": null, "version": 1}}', "job.id: must be a non-empty string, got null"),
        (b'{"job": {"id": "j", "version": 1e400}}', "job.version: must be an integer, got number"),
        (b'{"job": {"id": "j", "version": 1}, "event": []}', "event must be a JSON object, got array"),
        (b"[" * 5000 + b"]" * 5000, "message is nested 5000 levels deep; the limit is 33"),
        (b"\xff", "message is not valid UTF-8 text: byte 0xff at offset 0 (invalid start byte)"),
    ],
)
def test_malformed_deliveries_say_why(raw, expected):
    assert delivery_reason(raw) == f"malformed delivery message: {expected}"


def test_ordering_keys_stay_inside_pubsubs_limit_for_the_longest_ids():
    from sysevents.events.model import MAX_ID_CHARS, event_ordering_key, ordering_key

    longest = new_event("a" * MAX_ID_CHARS, "work", "\U0001f600" * MAX_ID_CHARS, "failed")  # 4-byte UTF-8
    key = event_ordering_key(longest)
    assert key.startswith("sha256:") and len(key.encode()) <= 1024
    assert event_ordering_key(new_event("acct-1", "work", "w-1", "failed")) == "acct-1/w-1"
    assert ordering_key("x" * 600) != ordering_key("x" * 601)  # hashed, still one key per subject
