"""The meter counts the calls a Firestore client really makes, and the units Firestore bills for them,
against the emulator (sysevents.obs.metering: what the benchmarks report)."""

from __future__ import annotations

import uuid

import pytest

from sysevents.obs.metering import Meter, message_bytes, meter_firestore, meter_publisher

pytestmark = pytest.mark.integration


@pytest.fixture
def metered(stack):
    from google.cloud import firestore

    meter = Meter()
    return meter_firestore(firestore.Client(project=stack.project), meter), meter


def test_commits_count_one_call_and_each_write(metered):
    from google.cloud import firestore

    client, meter = metered
    root = client.collection(f"m-{uuid.uuid4().hex[:8]}")
    batch = client.batch()
    for i in range(3):
        batch.set(root.document(f"d{i}"), {"i": i})
    batch.commit()
    batch = client.batch()
    batch.delete(root.document("d0"))
    batch.set(root.document("d1"), {"n": firestore.Increment(1)}, merge=True)
    batch.commit()
    got = meter.snapshot()
    assert (got["firestore.calls"], got["firestore.commit"]) == (2, 2)
    assert (got["firestore.writes"], got["firestore.deletes"]) == (4, 1)
    assert "firestore.reads" not in got


def test_reads_count_documents_asked_for_and_returned(metered):
    client, meter = metered
    root = client.collection(f"m-{uuid.uuid4().hex[:8]}")
    for i in range(2):
        root.document(f"d{i}").set({"i": i})
    before = meter.snapshot()
    assert root.document("d0").get().exists
    assert not root.document("missing").get().exists
    assert len(list(root.stream())) == 2
    assert list(client.collection(f"empty-{uuid.uuid4().hex[:8]}").stream()) == []
    got = meter.snapshot()
    assert got["firestore.calls"] - before["firestore.calls"] == 4
    assert got["firestore.reads"] == 1 + 1 + 2 + 1  # a missing document and an empty query bill one read


def test_publishes_are_counted_with_their_size(stack):
    from sysevents.transport.pubsub import Publisher

    meter = Meter()
    publisher = meter_publisher(Publisher(stack.project), meter)
    topic = stack.topology.sinks["webhook"].dead_letter_topic
    publisher.publish_all([(topic, b"abc", {"k": "vv"}), (topic, b"x", {})])
    got = meter.snapshot()
    assert got["pubsub.published"] == 2
    assert got["pubsub.published_bytes"] == message_bytes(b"abc", {"k": "vv"}) + 1 == 7


def test_busy_time_counts_overlapping_requests_once():
    now = [100.0]
    meter = Meter(clock=lambda: now[0])
    with meter.request(b"not a push"):  # 100 .. 103
        now[0] += 1
        with meter.request(b"{}"):  # 101 .. 102, while the first is in flight
            now[0] += 1
        now[0] += 1
    now[0] += 10  # idle
    with meter.request(b"{}"):  # 113 .. 115, still in flight when read
        now[0] += 2
        assert meter.snapshot()["busy_s"] == 5
    got = meter.snapshot()
    assert (got["pushes"], got["push_bytes"], got["busy_s"]) == (3, 0, 5)


def test_a_push_is_counted_with_its_message_size():
    import base64
    import json

    meter = Meter()
    body = {"message": {"data": base64.b64encode(b"12345").decode(), "attributes": {"ab": "c"}}}
    with meter.request(json.dumps(body).encode()):
        pass
    assert meter.snapshot()["push_bytes"] == 5 + 3
