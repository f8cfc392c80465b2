import copy
import json
from importlib import resources

import pytest

from sysevents import topology


def doc():
    return json.loads(resources.files("sysevents").joinpath("topology.json").read_text())


def test_topology_loads_and_every_push_subscription_is_dead_lettered():
    topo = topology.load()
    assert topo.ingest_topic in topo.topics and topo.quarantine_topic in topo.topics
    pushed = [s for s in topo.subscriptions.values() if s.push_function]
    assert {s.push_function for s in pushed} >= {"ingest", "webhook"}
    for s in pushed:
        assert s.dead_letter_topic and s.retry_policy and s.max_delivery_attempts >= 5


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["topics"].pop(), "has no subscription|undeclared topic"),
        (lambda d: d["subscriptions"][0].update(push_function="nope"), "unknown function"),
        (
            lambda d: d["subscriptions"][0].pop("dead_letter_topic"),
            "needs retry, dead letter and max attempts",
        ),
        (
            lambda d: d["subscriptions"].append(
                {"name": "x", "topic": "zz", "ack_deadline_seconds": 10, "message_retention_seconds": 600}
            ),
            "undeclared topic",
        ),
    ],
)
def test_inconsistent_topologies_are_refused(mutate, message):
    d = copy.deepcopy(doc())
    mutate(d)
    with pytest.raises(ValueError, match=message):
        topology.parse(d)


def test_a_topic_nobody_reads_is_refused():
    d = copy.deepcopy(doc())
    d["topics"].append({"name": "orphan-topic"})
    with pytest.raises(ValueError, match="'orphan-topic' has no subscription; its messages would be lost"):
        topology.parse(d)
