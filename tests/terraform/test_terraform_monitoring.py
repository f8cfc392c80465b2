"""Monitoring, checked offline: the log-based metrics (logging_metrics.tf).

The metric definitions are locals that need no provider: the
embedded Terraform computes them (tfhelpers.evaluate_locals), so these tests read the values Terraform would
send. The log lines they count are the ones sysevents.logs writes: each metric filter is run against such
lines, parsed the way Cloud Logging parses a structured JSON line.
"""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any

import pytest
from tfhelpers import evaluate_locals, one, root_blocks

from sysevents import logs
from sysevents import topology as topology_mod

METRICS = {"deliveries", "delivery_latency", "retries", "dead_lettered", "quarantined", "ingest_fanout"}
NAMES = [
    "log_metrics",
    "metric_types",
    "function_services",
]


def evaluate(tmp_path_factory, **variables) -> dict[str, Any]:
    rc, values, err = evaluate_locals(tmp_path_factory.mktemp("monitoring"), NAMES, variables)
    assert rc == 0, err
    return values


@pytest.fixture(scope="module")
def tf(tmp_path_factory) -> dict[str, Any]:
    return evaluate(tmp_path_factory)


@pytest.fixture(scope="module")
def tf_without_job_labels(tmp_path_factory) -> dict[str, Any]:
    return evaluate(tmp_path_factory, metrics_per_job_labels=False)


@pytest.fixture(scope="module")
def topo() -> topology_mod.Topology:
    return topology_mod.load()


# -- the log lines, as Cloud Logging stores them --------------------------------------------------------------------
MOVED_OUT = {"severity", "time"}  # special fields that leave jsonPayload (message stays: jsonPayload.message)


def log_entry(line: str, service: str) -> dict[str, Any]:
    """A LogEntry as Cloud Logging makes it from one structured JSON line of a Cloud Run service: the
    special fields move out of the payload (labels to `labels`), the rest stays in jsonPayload."""
    doc = json.loads(line)
    payload = {
        k: v for k, v in doc.items() if not k.startswith("logging.googleapis.com/") and k not in MOVED_OUT
    }
    return {
        "resource": {"type": "cloud_run_revision", "labels": {"service_name": service}},
        "severity": doc["severity"],
        "labels": doc.get(logs.LABELS, {}),
        "trace": doc.get(logs.TRACE),
        "jsonPayload": payload,
    }


def lines_of(write) -> list[str]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter("webhook"))
    logger = logging.getLogger("sysevents.test.monitoring")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    write(logger)
    return stream.getvalue().splitlines()


def field(entry: dict, path: str) -> Any:
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def split_top(text: str, sep: str) -> list[str]:
    """Split on sep outside quotes and parentheses."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and quoted:
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif not quoted and c == "(":
            depth += 1
        elif not quoted and c == ")":
            depth -= 1
        elif not quoted and depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            start = i + len(sep)
            i = start
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def matches(query: str, entry: dict) -> bool:
    """The Logging query language, as far as the metric filters use it: AND, parenthesized OR,
    field="value", field=~"regex" and field:* (the field exists)."""
    for term in split_top(query, " AND "):
        if term.startswith("(") and term.endswith(")"):
            if not any(matches(alt, entry) for alt in split_top(term[1:-1], " OR ")):
                return False
        elif m := re.fullmatch(r'([\w.]+)=~"(.*)"', term):
            value = field(entry, m[1])
            if not isinstance(value, str) or not re.search(m[2], value):
                return False
        elif m := re.fullmatch(r'([\w.]+)="(.*)"', term):
            if field(entry, m[1]) != m[2]:
                return False
        elif m := re.fullmatch(r"([\w.]+):\*", term):
            if field(entry, m[1]) is None:
                return False
        else:
            raise AssertionError(f"filter term this test does not know: {term!r}")
    return True


def extract(extractor: str, entry: dict) -> Any:
    m = re.fullmatch(r"EXTRACT\(([\w.]+)\)", extractor)
    assert m, extractor
    return field(entry, m[1])


def outcome_line(outcome: str, **overrides) -> dict:
    fields = {
        "sink": "webhook",
        "outcome": outcome,
        "aid": "12",
        "job_id": "j-1",
        "event_id": "e-1",
        "attempt": 1,
        "reason": "why",
        "status": 200,
        "latency_ms": 12.5,
    } | overrides
    (line,) = lines_of(lambda log: logs.outcome(log, **fields))
    return log_entry(line, "sysevents-webhook")


def event_line(kind: str, **fields) -> dict:
    (line,) = lines_of(lambda log: logs.event(log, kind, f"a {kind} line", **fields))
    return log_entry(line, "sysevents-ingest")


# -- log-based metrics ----------------------------------------------------------------------------------------------
def test_log_metrics_are_one_resource_over_the_definitions(tf):
    assert set(tf["log_metrics"]) == METRICS
    metric = root_blocks("resource")[("google_logging_metric", "metric")]
    assert metric["for_each"] == "${local.log_metrics}"
    assert metric["name"] == "${var.name}/${each.key}"
    assert metric["filter"] == "${each.value.filter}"
    assert metric["label_extractors"] == "${{for k, l in each.value.labels : k => l.extractor}}"
    assert one(metric, "metric_descriptor")["metric_kind"] == "DELTA"
    # Labels cannot be removed from a log-based metric: a new label set replaces the metric.
    labels = root_blocks("resource")[("terraform_data", "metric_labels")]
    assert labels["for_each"] == "${local.log_metrics}"
    assert labels["input"] == "${sort(keys(each.value.labels))}"
    lifecycle = one(metric, "lifecycle")
    assert lifecycle["replace_triggered_by"] == ["${terraform_data.metric_labels[each.key]}"]
    for name, metric_type in tf["metric_types"].items():
        assert metric_type == f"logging.googleapis.com/user/sysevents/{name}"
        assert re.fullmatch(r"[A-Za-z0-9_./-]{1,100}", f"sysevents/{name}")


def test_metrics_read_only_this_deployments_functions(tf, topo):
    services = {f"sysevents-{name}" for name in topo.functions}
    assert set(tf["function_services"].values()) == services
    for name, metric in tf["log_metrics"].items():
        f = metric["filter"]
        assert 'resource.type="cloud_run_revision"' in f, name
        m = re.search(r'resource\.labels\.service_name=~"([^"]+)"', f)
        assert m, name
        assert {s for s in services if re.search(m[1], s)} == services
        assert not re.search(m[1], "sysevents-webhook-copy") and not re.search(m[1], "other-webhook")


@pytest.mark.parametrize(
    ("metric", "kind"),
    [
        ("deliveries", "delivery"),
        ("delivery_latency", "delivery"),
        ("retries", "delivery"),
        ("dead_lettered", "delivery"),
        ("quarantined", "quarantine"),
        ("ingest_fanout", "ingest"),
    ],
)
def test_each_metric_counts_lines_of_its_kind(tf, metric, kind):
    f = tf["log_metrics"][metric]["filter"]
    assert f'jsonPayload.sysevents.kind="{kind}"' in f
    assert set(re.findall(r'jsonPayload\.sysevents\.kind="(\w+)"', f)) == {kind}


@pytest.mark.parametrize(
    ("metric", "counted"),
    [
        ("deliveries", set(logs.OUTCOMES)),
        ("delivery_latency", set(logs.OUTCOMES)),
        ("retries", {"retry", "waiting"}),
        ("dead_lettered", {"dead_lettered"}),
        ("quarantined", set()),
        ("ingest_fanout", set()),
    ],
)
def test_each_metric_matches_the_lines_sysevents_logs_writes(tf, metric, counted):
    """The filters run against lines written by sysevents.logs: the field names agree."""
    f = tf["log_metrics"][metric]["filter"]
    for outcome in logs.OUTCOMES:
        assert matches(f, outcome_line(outcome)) == (outcome in counted), (metric, outcome)
    assert matches(f, event_line("quarantine", reason="not JSON", aid=None)) == (metric == "quarantined")
    ingest = event_line("ingest", aid="12", event_id="e-1", matched=3)
    assert matches(f, ingest) == (metric == "ingest_fanout")
    other = log_entry(lines_of(lambda log: log.info("not structured"))[0], "sysevents-webhook")
    assert not matches(f, other)
    elsewhere = outcome_line("delivered")
    elsewhere["resource"]["labels"]["service_name"] = "someone-elses-service"
    assert not matches(f, elsewhere)


def test_latency_counts_only_lines_with_a_latency(tf):
    f = tf["log_metrics"]["delivery_latency"]["filter"]
    assert matches(f, outcome_line("delivered"))
    assert not matches(f, outcome_line("waiting", latency_ms=None, status=None))


@pytest.mark.parametrize(
    ("metric", "labels"),
    [
        ("deliveries", {"sink", "outcome", "aid", "job_id"}),
        ("delivery_latency", {"sink", "outcome"}),
        ("retries", {"sink", "outcome", "aid", "job_id"}),
        ("dead_lettered", {"sink", "aid", "job_id"}),
        ("quarantined", set()),
        ("ingest_fanout", set()),
    ],
)
def test_labels_are_extracted_from_the_payload(tf, tf_without_job_labels, metric, labels):
    defined = tf["log_metrics"][metric]["labels"]
    assert set(defined) == labels
    entry = outcome_line("dead_lettered")
    for name, label in defined.items():
        assert label["extractor"] == f"EXTRACT(jsonPayload.sysevents.{name})"
        assert extract(label["extractor"], entry) == entry["labels"][name]  # the same value in both
        assert len(label["description"]) > 10
    assert len(defined) <= 10, "log-based metrics take at most 10 labels"
    assert set(tf_without_job_labels["log_metrics"][metric]["labels"]) == labels - {"aid", "job_id"}


def test_distributions_extract_numbers_into_buckets(tf):
    latency = tf["log_metrics"]["delivery_latency"]
    assert (latency["value_type"], latency["unit"]) == ("DISTRIBUTION", "ms")
    assert latency["value_extractor"] == "EXTRACT(jsonPayload.sysevents.latency_ms)"
    assert extract(latency["value_extractor"], outcome_line("delivered", latency_ms=12.34)) == 12.3
    exponential = latency["buckets"]["exponential"]
    assert exponential["growth_factor"] > 1 and exponential["scale"] == 1
    assert 2 ** exponential["num_finite_buckets"] >= 600_000, "up to the longest attempt (10 minutes)"
    fanout = tf["log_metrics"]["ingest_fanout"]
    assert fanout["value_type"] == "DISTRIBUTION"
    assert fanout["value_extractor"] == "EXTRACT(jsonPayload.sysevents.matched)"
    assert extract(fanout["value_extractor"], event_line("ingest", matched=3)) == 3
    bounds = fanout["buckets"]["explicit"]
    assert bounds[0] == 1 and bounds == sorted(set(bounds)), "0 matched jobs is the underflow bucket"
    for name, m in tf["log_metrics"].items():
        if m["value_type"] != "DISTRIBUTION":
            assert (m["value_type"], m["value_extractor"]) == ("INT64", None), name
    resource = root_blocks("resource")[("google_logging_metric", "metric")]
    assert resource["value_extractor"] == "${each.value.value_extractor}"
    assert "bucket_options" in resource["dynamic"][0]
