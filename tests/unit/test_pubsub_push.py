import base64
import json

import pytest

from sysevents.transport.pubsub import BadPushRequest, clip_attribute, parse_push


def test_push_body_is_read():
    body = {
        "subscription": "projects/p/subscriptions/s",
        "deliveryAttempt": 3,
        "message": {
            "data": base64.b64encode(b"hi").decode(),
            "attributes": {"a": "b"},
            "messageId": "9",
            "publishTime": "2026-01-01T00:00:00Z",
        },
    }
    msg = parse_push(json.dumps(body).encode())
    assert (msg.data, msg.attributes, msg.message_id, msg.delivery_attempt) == (b"hi", {"a": "b"}, "9", 3)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"nope", "not JSON"),
        (b"{}", "lacks 'message'"),
        (b'{"message": {"data": "***"}}', "not base64"),
        (b'{"deliveryAttempt": "x", "message": {"data": ""}}', "deliveryAttempt must be a positive integer"),
        (b'{"deliveryAttempt": [1], "message": {"data": ""}}', "deliveryAttempt must be a positive integer"),
        (b'{"deliveryAttempt": -2, "message": {"data": ""}}', "deliveryAttempt must be a positive integer"),
        (b'{"message": {"data": "", "attributes": ["a"]}}', "attributes must be an object of strings"),
        (b'{"message": {"data": "", "attributes": {"a": 1}}}', "attributes must be an object of strings"),
    ],
)
def test_bad_push_bodies(body, message):
    with pytest.raises(BadPushRequest, match=message):
        parse_push(body)


def test_attributes_are_clipped_to_pubsub_limit():
    assert len(clip_attribute("é" * 1000).encode()) <= 1024
    assert clip_attribute("short") == "short"


def test_whether_pubsub_reported_the_attempt_is_kept():
    data = base64.b64encode(b"x").decode()
    reported = parse_push(json.dumps({"deliveryAttempt": 1, "message": {"data": data}}))
    silent = parse_push(json.dumps({"message": {"data": data}}))  # the emulator's push body
    assert (reported.delivery_attempt, reported.attempt_reported) == (1, True)
    assert (silent.delivery_attempt, silent.attempt_reported) == (1, False)
