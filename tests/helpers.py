"""Helpers for tests (importable as `helpers`)."""

from __future__ import annotations

import base64
import json
import time
import uuid

TIME_SCALE = 1 / 3000
"""The test stack's SYSEVENTS_TIME_SCALE: the default 27.6-hour retry schedule plays in about 33 s."""


EXAMPLE_HOOK = "https://hooks.example.com/x"


def webhook_job(
    job_id: str | None, aid: str, url: str = EXAMPLE_HOOK, *, fields: dict | None = None, **config
):
    """A `webhook_system_events` job of account `aid` posting to `url` (`job_id` None: a fresh id). `config`
    adds to its config, whose event filter is `system_event_type: failed` unless `config` names the types
    otherwise; `fields` are top-level fields of the job document (state, name, ...)."""
    from sysevents.jobs.registry import job_from_dict

    if "system_event_multiple_types" not in config:
        config.setdefault("system_event_type", "failed")
    return job_from_dict(
        {"workflow": "webhook_system_events", "config": {"webhook_url": url, **config}, **(fields or {})},
        job_id=job_id or f"job-{uuid.uuid4().hex[:8]}",
        aid=aid,
    )


def email_job(job_id: str, aid: str, recipients: list[str], **config):
    """An `email_system_events` job of account `aid` mailing `recipients`; its event filter is
    `system_event_type: failed` unless `config` names it otherwise."""
    from sysevents.jobs.registry import job_from_dict

    config.setdefault("system_event_type", "failed")
    return job_from_dict(
        {"workflow": "email_system_events", "config": {"recipients": recipients, **config}},
        job_id=job_id,
        aid=aid,
    )


def wait_until(check, timeout: float = 60.0, every: float = 0.2):
    """`check()`'s first truthy value, polled every `every` s for up to `timeout` s; then its last value.
    The one way tests wait: for a condition (`assert wait_until(...)`), or for a value to read on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(every)
    return check()


def push_body(data: bytes, attributes: dict[str, str] | None = None, **extra) -> bytes:
    """The body of a Pub/Sub push request carrying one message (a fresh message id unless `message_id`)."""
    return json.dumps(
        {
            "subscription": "projects/p/subscriptions/test",
            "message": {
                "data": base64.b64encode(data).decode(),
                "attributes": attributes or {},
                "messageId": extra.pop("message_id", None) or uuid.uuid4().hex,
                "publishTime": "2026-01-01T00:00:00Z",
            },
            **extra,
        }
    ).encode()


def pull(subscriber, path: str, count: int, timeout: float = 30.0, aid: str | None = None) -> list:
    """Synchronously pull and ack until `count` messages arrived or `timeout` passed. With `aid`, messages
    of other accounts (another test's late deliveries on a shared topic) are acked and left out."""
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        resp = subscriber.pull(subscription=path, max_messages=max(1, count - len(got)), timeout=5)
        if resp.received_messages:
            subscriber.acknowledge(subscription=path, ack_ids=[m.ack_id for m in resp.received_messages])
            got.extend(
                m.message
                for m in resp.received_messages
                if aid is None or m.message.attributes.get("aid") == aid
            )
        else:
            time.sleep(0.1)
    return got


def put_jobs(stack, store, *jobs) -> None:
    """Store jobs and wait until every running function's job cache has them."""
    for job in jobs:
        store.put(job)
    stack.wait_for_job_caches(since=store.last_write_time)


def publish_events(stack, publisher, *events, ordered: bool = False) -> list[str]:
    """Publish events to the ingest topic; returns once Pub/Sub stored them. `ordered`: with each event's
    ordering key, as a producer does whose subjects' events must stay in order end to end."""
    from sysevents.events.model import event_ordering_key

    return publisher.publish_all(
        [
            (stack.topology.ingest_topic, e.to_json(), {}, event_ordering_key(e) if ordered else "")
            for e in events
        ]
    )


def api_account(stack, aid: str, scope: str | None = None) -> dict[str, str]:
    """Create account `aid` through the stack's admin API (operator key) and a key for it; returns the
    environment the `sysevents` CLI reads (SYSEVENTS_API_URL, SYSEVENTS_API_KEY)."""
    import requests

    url = stack.function_urls["admin"].rstrip("/")
    operator = {"X-API-Key": stack.operator_key}
    r = requests.post(
        f"{url}/accounts", json={"aid": aid, "name": f"test {aid}"}, headers=operator, timeout=30
    )
    assert r.status_code in (201, 409), r.text
    body = {"name": "tests", **({"scope": scope} if scope else {})}
    r = requests.post(f"{url}/accounts/{aid}/keys", json=body, headers=operator, timeout=30)
    assert r.status_code == 201, r.text
    return {"SYSEVENTS_API_URL": url, "SYSEVENTS_API_KEY": r.json()["key"]}


def allow_email_domain(firestore_client, aid: str, domain: str = "example.com") -> None:
    """What an operator does for an account (PUT /email-policies): addresses at `domain`
    receive the account's alert emails without confirming first (sysevents.consent.store)."""
    from sysevents.consent.store import ConsentStore, Policy

    ConsentStore(firestore_client).set_policy(aid, Policy((domain,)))
