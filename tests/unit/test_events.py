import json

import pytest

from sysevents.events.model import (
    MAX_EVENT_BYTES,
    SUBJECT_TYPES,
    VERBS,
    InvalidEvent,
    event_from_bytes,
    new_event,
)


def envelope(**data):
    base = {"aid": "12", "subject_type": "work", "subject_id": "w1", "verb": "failed"}
    return {"specversion": "1.0", "id": "e1", "time": "2026-01-02T03:04:05Z", "data": {**base, **data}}


def test_all_subject_types_and_verbs_are_the_documented_ones():
    assert len(SUBJECT_TYPES) == 25 and "topic-document" in SUBJECT_TYPES and "segmentml" in SUBJECT_TYPES
    assert VERBS == (
        "created",
        "updated",
        "deleted",
        "started",
        "syncing",
        "synced",
        "synccomplete",
        "completed",
        "failed",
    )


def test_cloudevent_round_trip_keeps_free_form_fields():
    ev = event_from_bytes(json.dumps(envelope(notes="disk full", rows=3)).encode())
    ce = ev.to_cloudevent()
    assert ce["specversion"] == "1.0" and ce["id"] == "e1"
    assert ce["type"] == "com.sysevents.work.failed" and ce["subject"] == "work/w1"
    assert ce["time"] == "2026-01-02T03:04:05Z"
    assert ce["data"] == {
        "aid": "12",
        "subject_type": "work",
        "subject_id": "w1",
        "verb": "failed",
        "notes": "disk full",
        "rows": 3,
    }
    assert event_from_bytes(ev.to_json()) == ev


def test_update_is_an_alias_of_updated():
    assert event_from_bytes(json.dumps(envelope(verb="update")).encode()).verb == "updated"


def test_flat_event_takes_the_message_id_as_stable_id():
    raw = json.dumps({"aid": 12, "subject_type": "segment", "subject_id": 7, "verb": "created"}).encode()
    ev = event_from_bytes(raw, fallback_id="msg-1")
    assert (ev.id, ev.aid, ev.subject_id) == ("msg-1", "12", "7")
    assert event_from_bytes(raw, fallback_id="msg-1").id == ev.id


def test_unknown_subject_type_lists_valid_values():
    with pytest.raises(InvalidEvent) as err:
        event_from_bytes(json.dumps(envelope(subject_type="planet")).encode())
    assert (
        "data.subject_type: unknown subject_type 'planet'; valid values: account, auth," in err.value.reason
    )
    assert "workflow" in err.value.reason


def test_unknown_verb_lists_valid_values():
    with pytest.raises(
        InvalidEvent, match="data.verb: unknown verb 'exploded'; valid values: created, updated"
    ):
        event_from_bytes(json.dumps(envelope(verb="exploded")).encode())


def test_missing_fields_are_named():
    doc = envelope()
    del doc["data"]["subject_id"], doc["data"]["aid"]
    with pytest.raises(InvalidEvent) as err:
        event_from_bytes(json.dumps(doc).encode())
    assert (
        "data.aid: Field required" in err.value.reason
        and "data.subject_id: Field required" in err.value.reason
    )


def test_not_json():
    with pytest.raises(InvalidEvent, match="not valid JSON"):
        event_from_bytes(b"{nope")


def test_not_an_object():
    with pytest.raises(InvalidEvent, match="must be a JSON object, got array"):
        event_from_bytes(b"[1, 2]")


def test_oversize_event_is_refused_before_parsing():
    raw = json.dumps(envelope(notes="x" * MAX_EVENT_BYTES)).encode()
    with pytest.raises(InvalidEvent, match=f"bytes; the limit is {MAX_EVENT_BYTES} bytes"):
        event_from_bytes(raw)


def test_bad_time_and_wrong_specversion():
    with pytest.raises(InvalidEvent, match="time:"):
        event_from_bytes(json.dumps({**envelope(), "time": "yesterday"}).encode())
    with pytest.raises(InvalidEvent, match="specversion: unsupported '0.3'"):
        event_from_bytes(json.dumps({**envelope(), "specversion": "0.3"}).encode())


def test_new_event_validates():
    ev = new_event("12", "work", "w1", "update", actor="user-1", notes="n")
    assert ev.verb == "updated" and ev.data.actor == "user-1" and ev.to_cloudevent()["data"]["notes"] == "n"
    with pytest.raises(InvalidEvent, match="subject_type"):
        new_event("12", "nope", "w1", "failed")
