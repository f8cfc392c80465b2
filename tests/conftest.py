"""Shared fixtures. Integration fixtures start the real local stack once per test session; every test that
uses it (directly or through another fixture) is marked `integration`, so `pytest -m "not integration"`
runs the offline tests only (`make unit`)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from helpers import TIME_SCALE

from sysevents.local.receiver import Receiver
from sysevents.local.stack import LocalStack

AUDIT_SEARCHES_PER_MINUTE = 10
"""The session stack's per-account audit search rate: a few searches reach it (the noisy-neighbour test)."""


def pytest_collection_modifyitems(items) -> None:
    """Mark `integration` every test whose fixtures (transitively) include the session stack."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[LocalStack]:
    """Pub/Sub, Firestore and BigQuery emulators plus every function, on free ports, for the whole session."""
    only = os.environ.get("SYSEVENTS_TEST_FUNCTIONS")  # e.g. "ingest,webhook" to iterate on a few functions
    s = LocalStack(
        tmp_path_factory.mktemp("stack"),
        functions=tuple(only.split(",")) if only else None,
        time_scale=TIME_SCALE,
        extra_env={"SYSEVENTS_ACCOUNT_AUDIT_SEARCHES_PER_MINUTE": str(AUDIT_SEARCHES_PER_MINUTE)},
    )
    s.start()
    saved = {k: os.environ.get(k) for k in s.env}
    os.environ.update(s.env)
    try:
        yield s
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        s.stop()


@pytest.fixture(scope="session")
def firestore_client(stack):
    from google.cloud import firestore

    return firestore.Client(project=stack.project)


@pytest.fixture(scope="session")
def store(firestore_client):
    from sysevents.jobs.store import JobStore

    return JobStore(firestore_client)


@pytest.fixture(scope="session")
def publisher(stack):
    from sysevents.transport.pubsub import Publisher

    return Publisher(stack.project)


@pytest.fixture(scope="session")
def subscriber(stack):
    from google.cloud import pubsub_v1

    return pubsub_v1.SubscriberClient()


@pytest.fixture
def aid(request) -> Iterator[str]:
    """A fresh account id per test: tests share the stack, accounts keep them apart. Afterwards the
    account's jobs are deleted, so retries a test leaves waiting in the delay queue end filtered instead
    of reaching later tests' dead-letter subscriptions."""
    value = f"acct-{uuid.uuid4().hex[:12]}"
    client = request.getfixturevalue("firestore_client") if "stack" in request.fixturenames else None
    yield value
    if client is not None:
        from sysevents.jobs.store import JobStore

        store = JobStore(client)
        for account in {value, f"{value}-other", f"{value}-a", f"{value}-b"}:
            for ref in store.collection(account).list_documents():
                store.delete(account, ref.id)  # through the store: the function's job caches learn of it


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def fresh_subscription(stack, subscriber) -> Iterator[Callable[[str], str]]:
    """Make a new pull subscription on a topic for this test only (see the emulator's dead-stream bug)."""
    made: list[str] = []

    def make(topic: str, **extra) -> str:
        path = subscriber.subscription_path(stack.project, f"t-{topic}-{uuid.uuid4().hex[:10]}")
        subscriber.create_subscription(
            request={"name": path, "topic": f"projects/{stack.project}/topics/{topic}", **extra}
        )
        made.append(path)
        return path

    yield make
    for path in made:
        subscriber.delete_subscription(subscription=path)


@pytest.fixture
def dead_letters(stack, fresh_subscription, request) -> str:
    """A fresh pull subscription on a sink's dead-letter topic: the sink the test module names in `SINK`,
    else the webhook sink."""
    sink = getattr(request.module, "SINK", "webhook")
    return fresh_subscription(stack.topology.sinks[sink].dead_letter_topic)
