"""Pub/Sub plumbing: reading push requests, publishing with confirmation, provisioning the topology."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.protobuf import duration_pb2

from sysevents.topology import Topology

log = logging.getLogger(__name__)

MAX_ATTRIBUTE_BYTES = 1024  # Pub/Sub's limit for an attribute value
PUBLISH_TIMEOUT = 60.0


class BadPushRequest(ValueError):
    """A request that is not a Pub/Sub push body."""


@dataclass(frozen=True)
class PushMessage:
    data: bytes
    attributes: dict[str, str]
    message_id: str
    publish_time: str | None
    delivery_attempt: int  # 1 when Pub/Sub does not say (the emulator never does)
    subscription: str | None
    ordering_key: str | None = None
    attempt_reported: bool = False  # Pub/Sub sent deliveryAttempt (subscriptions with a dead-letter policy)


FIRST_ID_ATTR = "first_message_id"
FIRST_TIME_ATTR = "first_publish_time"
"""Message attributes: the id and publish time of the message a retry was first published as."""


def first_publish(msg: PushMessage) -> tuple[str | None, str | None]:
    """The message id and publish time that a flat event lacking `id` or `time` takes: its first
    publication's, carried through every retry (a retry is a new message), so every read of the event, by
    ingest or the audit archive, first time or retried, gives the same id and time."""
    message_id = msg.attributes.get(FIRST_ID_ATTR) or msg.message_id or None
    published = msg.attributes.get(FIRST_TIME_ATTR) or msg.publish_time
    if published and not _is_timestamp(published):
        published = None  # not the producer's mistake: the event takes the time it is read instead
    return message_id, published


@functools.cache
def _timestamps() -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(datetime)  # built once: building one costs more than the event's own validation


def _is_timestamp(value: str) -> bool:
    from pydantic import ValidationError

    try:
        _timestamps().validate_python(value)
    except ValidationError:
        return False
    return True


def first_publish_attributes(msg: PushMessage) -> dict[str, str]:
    """The attributes that keep `first_publish` on a retry of `msg`."""
    message_id, published = first_publish(msg)
    return {k: v for k, v in ((FIRST_ID_ATTR, message_id), (FIRST_TIME_ATTR, published)) if v}


def parse_push(body: bytes | str | Mapping[str, Any]) -> PushMessage:
    """Read a push request body: `{"subscription", "message": {"data", "attributes", "messageId", ...}}`."""
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BadPushRequest(f"push body is not JSON: {err}") from None
    msg = body.get("message") if isinstance(body, Mapping) else None
    if not isinstance(msg, Mapping):
        raise BadPushRequest("push body lacks 'message'")
    try:
        data = base64.b64decode(msg.get("data", ""), validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise BadPushRequest("push message data is not base64") from None
    reported = body.get("deliveryAttempt") or msg.get("deliveryAttempt")
    text = str(reported) if isinstance(reported, int | str) and not isinstance(reported, bool) else ""
    if reported is not None and not (text.isascii() and text.isdigit() and len(text) <= 6):
        raise BadPushRequest(f"push deliveryAttempt must be a positive integer, got {str(reported)[:40]!r}")
    attempt = int(text or 1)
    attributes = msg.get("attributes") or {}
    if not isinstance(attributes, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise BadPushRequest("push message attributes must be an object of strings")
    return PushMessage(
        data=data,
        attributes=dict(attributes),
        message_id=str(msg.get("messageId") or msg.get("message_id") or ""),
        publish_time=msg.get("publishTime") or msg.get("publish_time"),
        delivery_attempt=max(attempt, 1),
        attempt_reported=reported is not None,
        subscription=body.get("subscription"),
        ordering_key=msg.get("orderingKey") or None,
    )


def handle_push(
    name: str, project: str, body: bytes, handle: Callable[[PushMessage], tuple[str, int]]
) -> tuple[str, int]:
    """Parse a Pub/Sub push and handle it inside its event's trace (the `traceparent` attribute). Not a
    Pub/Sub push: nothing to quarantine or dead-letter; 400 tells the caller."""
    from sysevents.obs import logs

    try:
        msg = parse_push(body)
    except BadPushRequest as err:
        log.error("%s: %s", name, err)
        return str(err), 400
    with logs.traced(msg.attributes.get(logs.TRACEPARENT_ATTR), project):
        return handle(msg)


def clip_attribute(value: str) -> str:
    """Shorten a value to fit a Pub/Sub attribute (1024 bytes), marking the cut."""
    raw = value.encode()
    if len(raw) <= MAX_ATTRIBUTE_BYTES:
        return value
    return raw[: MAX_ATTRIBUTE_BYTES - 3].decode(errors="ignore") + "..."


@dataclass
class Publisher:
    """Publishes to topics of one project; `publish_all` returns once Pub/Sub has stored every message."""

    project: str
    client: pubsub_v1.PublisherClient = field(
        default_factory=lambda: pubsub_v1.PublisherClient(
            publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
        )
    )

    def path(self, topic: str) -> str:
        return self.client.topic_path(self.project, topic)

    def publish(self, topic: str, data: bytes, ordering_key: str = "", **attributes: str):
        return self.client.publish(
            self.path(topic),
            data,
            ordering_key=ordering_key,
            **{k: clip_attribute(str(v)) for k, v in attributes.items()},
        )

    def dead_letter(
        self,
        topic: str,
        data: bytes,
        attributes: Mapping[str, str],
        reason: str,
        attempts: int,
        source_message_id: str | None = None,
    ) -> dict[str, str]:
        """Publish a message that failed for good to a dead-letter topic, unchanged, with why and how many
        attempts it took (every sink's dead letters look alike); returns the attributes it carried."""
        attrs = {
            **attributes,
            "reason": reason,
            "attempts": str(attempts),
            "dead_lettered_at": datetime.now(UTC).isoformat(),
        }
        if source_message_id:
            attrs["source_message_id"] = source_message_id
        self.publish_all([(topic, data, attrs)])
        return attrs

    def publish_all(
        self, messages: Iterable[tuple[str, bytes, dict[str, str]] | tuple[str, bytes, dict[str, str], str]]
    ) -> list[str]:
        """Each message is (topic, data, attributes) or (topic, data, attributes, ordering_key)."""
        sent = []
        for topic, data, attrs, *key in messages:
            sent.append(
                (topic, key[0] if key else "", self.publish(topic, data, key[0] if key else "", **attrs))
            )
        out = []
        for topic, key, future in sent:
            try:
                out.append(future.result(timeout=PUBLISH_TIMEOUT))
            except Exception:
                if key:  # an ordering key stops publishing after a failure until resumed
                    self.client.resume_publish(self.path(topic), key)
                raise
        return out


def _duration(seconds: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(seconds))


def provision(
    topology: Topology,
    project: str,
    push_endpoints: Mapping[str, str],
    *,
    backoff_override: tuple[int, int] | None = None,
    publisher: pubsub_v1.PublisherClient | None = None,
    subscriber: pubsub_v1.SubscriberClient | None = None,
) -> None:
    """Create the topology's topics and subscriptions (idempotent). Used by the local stack and the tests;
    production uses Terraform, which reads the same topology.json.

    `push_endpoints` maps function name to URL; push subscriptions of functions not in it are skipped
    (a partial local stack). `backoff_override` (min, max seconds) shortens the retry
    policy for local runs.
    """
    publisher = publisher or pubsub_v1.PublisherClient()
    subscriber = subscriber or pubsub_v1.SubscriberClient()
    for topic in topology.topics:
        try:
            publisher.create_topic(name=publisher.topic_path(project, topic))
        except gexc.AlreadyExists:
            pass
    for sub in topology.subscriptions.values():
        if sub.push_function and sub.push_function not in push_endpoints:
            log.warning("provision: skipping %s: function %s is not running", sub.name, sub.push_function)
            continue
        request: dict[str, Any] = {
            "name": subscriber.subscription_path(project, sub.name),
            "topic": publisher.topic_path(project, sub.topic),
            "ack_deadline_seconds": sub.ack_deadline_seconds,
            "message_retention_duration": _duration(sub.message_retention_seconds),
        }
        if sub.push_function:
            request["push_config"] = {
                "push_endpoint": push_endpoints[sub.push_function].rstrip("/") + sub.push_path
            }
        if sub.retry_policy:
            lo, hi = backoff_override or (
                sub.retry_policy.minimum_backoff_seconds,
                sub.retry_policy.maximum_backoff_seconds,
            )
            request["retry_policy"] = {"minimum_backoff": _duration(lo), "maximum_backoff": _duration(hi)}
        if sub.enable_message_ordering:
            request["enable_message_ordering"] = True
        if sub.dead_letter_topic:
            request["dead_letter_policy"] = {
                "dead_letter_topic": publisher.topic_path(project, sub.dead_letter_topic),
                "max_delivery_attempts": sub.max_delivery_attempts,
            }
        try:
            subscriber.create_subscription(request=request)
        except gexc.AlreadyExists:
            pass
