"""The messaging topology (topics, subscriptions, sinks, functions), loaded from topology.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class RetryPolicy:
    minimum_backoff_seconds: int
    maximum_backoff_seconds: int


@dataclass(frozen=True)
class Subscription:
    name: str
    topic: str
    ack_deadline_seconds: int
    message_retention_seconds: int
    push_function: str | None = None
    retry_policy: RetryPolicy | None = None
    dead_letter_topic: str | None = None
    max_delivery_attempts: int | None = None
    enable_message_ordering: bool = False
    push_path: str = ""  # appended to the function's URL ("/dead-letters": the function's recorder route)


@dataclass(frozen=True)
class Sink:
    name: str
    topic: str
    dead_letter_topic: str
    subscription: str
    timer_topic: str | None = None  # alert group timers (sysevents.alerts), on their own subscription
    slow_topic: str | None = (
        None  # deliveries of jobs whose receivers answer slowly, on their own subscription
    )


@dataclass(frozen=True)
class Function:
    """A function entry. The optional fields are deployment facts read by Terraform (see topology.json's
    description); None means Terraform's default."""

    name: str
    entry_point: str
    description: str
    invoked_by: str = "pubsub"  # "pubsub": only its push subscriptions call it; "users": HTTP API behind IAM
    project_roles: list[str] | None = None  # None: Terraform's default (roles/datastore.viewer)
    dataset_roles: list[str] = field(default_factory=list)
    publishes: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # env var -> secret name (topology "secrets")
    env: dict[str, str] = field(default_factory=dict)
    memory: str | None = None
    cpu: str | None = None
    timeout_seconds: int | None = None
    min_instances: int | None = None
    max_instances: int | None = None
    concurrency: int | None = None
    schedules: list[dict] = field(default_factory=list)  # [{name, cron, time_zone, path, body}]
    waits: bool = (
        False  # puts waits on the delay queue (sysevents.transport.delays): may enqueue release tasks
    )


@dataclass(frozen=True)
class Topology:
    ingest_topic: str
    quarantine_topic: str
    delay_queue: str
    topics: tuple[str, ...]
    functions: dict[str, Function]
    sinks: dict[str, Sink]
    subscriptions: dict[str, Subscription]

    def sink_subscription(self, sink: str) -> Subscription:
        return self.subscriptions[self.sinks[sink].subscription]


def parse(doc: dict) -> Topology:
    subs = {}
    for s in doc["subscriptions"]:
        rp = s.get("retry_policy")
        subs[s["name"]] = Subscription(
            name=s["name"],
            topic=s["topic"],
            ack_deadline_seconds=s["ack_deadline_seconds"],
            message_retention_seconds=s["message_retention_seconds"],
            push_function=s.get("push_function"),
            retry_policy=RetryPolicy(**rp) if rp else None,
            dead_letter_topic=s.get("dead_letter_topic"),
            max_delivery_attempts=s.get("max_delivery_attempts"),
            enable_message_ordering=bool(s.get("enable_message_ordering", False)),
            push_path=s.get("push_path", ""),
        )
    topo = Topology(
        ingest_topic=doc["ingest_topic"],
        quarantine_topic=doc["quarantine_topic"],
        delay_queue=doc["delay_queue"],
        topics=tuple(t["name"] for t in doc["topics"]),
        functions={f["name"]: Function(**f) for f in doc["functions"]},
        sinks={s["name"]: Sink(**s) for s in doc["sinks"]},
        subscriptions=subs,
    )
    _check(topo)
    return topo


def _check(topo: Topology) -> None:
    known = set(topo.topics)
    for name in (topo.ingest_topic, topo.quarantine_topic):
        if name not in known:
            raise ValueError(f"topology: topic {name!r} is not declared")
    for sub in topo.subscriptions.values():
        if sub.topic not in known or (sub.dead_letter_topic and sub.dead_letter_topic not in known):
            raise ValueError(f"topology: subscription {sub.name!r} names an undeclared topic")
        if sub.push_function and sub.push_function not in topo.functions:
            raise ValueError(f"topology: subscription {sub.name!r} pushes to unknown function")
        if sub.push_path and not (
            sub.push_path.startswith("/") and sub.push_path[1:].replace("-", "").isalnum()
        ):
            raise ValueError(f"topology: subscription {sub.name!r}: push_path must look like /name")
        if sub.push_function and not (
            sub.dead_letter_topic and sub.retry_policy and sub.max_delivery_attempts
        ):
            raise ValueError(
                f"topology: push subscription {sub.name!r} needs retry, dead letter and max attempts"
            )
    for sink in topo.sinks.values():
        if sink.timer_topic and sink.timer_topic not in known:
            raise ValueError(f"topology: sink {sink.name!r} names an undeclared timer topic")
        if sink.slow_topic and sink.slow_topic not in known:
            raise ValueError(f"topology: sink {sink.name!r} names an undeclared slow topic")
        if sink.subscription not in topo.subscriptions:
            raise ValueError(f"topology: sink {sink.name!r} names an unknown subscription")
    held = {s.topic for s in topo.subscriptions.values()}
    for name in known - held:
        raise ValueError(f"topology: topic {name!r} has no subscription; its messages would be lost")


@cache
def load() -> Topology:
    text = resources.files("sysevents").joinpath("topology.json").read_text()
    return parse(json.loads(text))
