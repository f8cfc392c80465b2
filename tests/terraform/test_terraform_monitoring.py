"""Monitoring, checked offline: the log-based metrics (logging_metrics.tf), the alert policies
(monitoring.tf) and the dashboard (dashboard.tf).

The metric definitions, alert filters and the dashboard JSON are locals that need no provider: the
embedded Terraform computes them (tfhelpers.evaluate_locals), so these tests read the values Terraform would
send. The log lines they count are the ones sysevents.obs.logs writes: each metric filter is run against such
lines, parsed the way Cloud Logging parses a structured JSON line.
"""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any

import pytest
from tfhelpers import TF_DIR, blocks, evaluate_locals, one, parse, root_blocks

from sysevents import topology as topology_mod
from sysevents.obs import logs

METRICS = {"deliveries", "delivery_latency", "retries", "dead_lettered", "quarantined", "ingest_fanout"}
NAMES = [
    "log_metrics",
    "metric_types",
    "function_services",
    "delivery_group_by",
    "subscriptions",
    "oldest_unacked_thresholds",
    "function_requests",
    "function_errors",
    "quarantine_holds",
    "alert_text",
    "oldest_unacked_text",
    "dashboard_json",
]
ALERTS = [
    "dead_letter_backlog",
    "delivery_success_rate",
    "quarantine_spike",
    "function_error_rate",
    "oldest_unacked",
]
NEW_VARIABLES = [
    "metrics_per_job_labels",
    "delivery_success_rate_threshold",
    "delivery_success_rate_window_seconds",
    "quarantine_alert_threshold",
    "quarantine_alert_window_seconds",
    "function_error_rate_threshold",
    "function_error_rate_window_seconds",
    "function_error_ignored_response_codes",
    "oldest_unacked_alert_seconds",
    "oldest_unacked_hold_alert_seconds",
    "oldest_unacked_alert_seconds_by_subscription",
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
    return evaluate(tmp_path_factory, metrics_per_job_labels=False, function_error_ignored_response_codes=[])


@pytest.fixture(scope="module")
def topo() -> topology_mod.Topology:
    return topology_mod.load()


@pytest.fixture(scope="module")
def policies() -> dict[str, dict]:
    return {
        name: body
        for (kind, name), body in blocks("resource").items()
        if kind == "google_monitoring_alert_policy"
    }


def condition(policy: dict) -> dict:
    return one(one(policy, "conditions"), "condition_threshold")


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
    """The filters run against lines written by sysevents.obs.logs: the field names agree."""
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


# -- alert policies -------------------------------------------------------------------------------------------------
def test_every_alert_exists_is_enabled_notifies_and_is_documented(policies):
    assert set(policies) == set(ALERTS)
    for name, policy in policies.items():
        assert policy["enabled"] is True, name
        assert policy["notification_channels"] == "${local.alert_channels}", name
        doc = one(policy, "documentation")
        assert doc["mime_type"] == "text/markdown", name
        if name == "oldest_unacked":
            assert doc["content"] == "${local.oldest_unacked_text[each.key].documentation}"
            assert (
                one(policy, "conditions")["display_name"]
                == "${local.oldest_unacked_text[each.key].condition}"
            )
        elif name != "dead_letter_backlog":
            assert doc["content"] == f"${{local.alert_text.{name}.documentation}}", name
            assert one(policy, "conditions")["display_name"] == f"${{local.alert_text.{name}.condition}}", (
                name
            )
        else:
            assert len(doc["content"]) > 100
        assert policy["display_name"].startswith("${var.name}: "), name
        assert one(policy, "alert_strategy")["auto_close"], name
        severities = re.findall(r"CRITICAL|ERROR|WARNING", policy.get("severity", "ERROR"))
        assert severities and set(severities) <= {"CRITICAL", "ERROR", "WARNING"}, name


MONITORING_VARIABLE = re.compile(r"\$\{(metric|resource)\.label\.[a-z_]+\}")


@pytest.mark.parametrize("values", ["tf", "tf_without_job_labels"])
def test_alert_texts_render(request, values):
    """Condition names and documentation, as Terraform renders them: what is left of ${...} is a
    Monitoring documentation variable of a label the condition's series have."""
    tf = request.getfixturevalue(values)
    texts = dict(tf["alert_text"]) | {f"oldest_unacked/{k}": v for k, v in tf["oldest_unacked_text"].items()}
    assert set(tf["oldest_unacked_text"]) == set(tf["subscriptions"])
    for name, text in texts.items():
        assert 10 < len(text["condition"]) <= 300 and "${" not in text["condition"], name
        assert len(text["documentation"]) > 150, name
        leftover = MONITORING_VARIABLE.sub("", text["documentation"])
        assert "${" not in leftover and "$${" not in text["documentation"], name
        assert "00000" not in text["condition"] + text["documentation"], f"{name}: a float printed in full"
    success = tf["alert_text"]["delivery_success_rate"]
    if values == "tf":
        assert success["condition"] == "Delivery success rate below 95% over 60 min (per job)"
        assert (
            "${metric.label.job_id}" in success["documentation"]
            and "More than 5% " in success["documentation"]
        )
    else:
        assert (
            success["condition"].endswith("(per sink)")
            and "${metric.label.job_id}" not in success["documentation"]
        )
    assert "${resource.label.service_name}" in tf["alert_text"]["function_error_rate"]["documentation"]


def test_alerts_notify_the_email_channels_and_the_given_ones():
    locals_ = parse(TF_DIR / "monitoring.tf")["locals"][0]
    channels = locals_["alert_channels"]
    assert "google_monitoring_notification_channel.email" in channels
    assert "var.alert_notification_channels" in channels


def test_the_dead_letter_backlog_alert_stays(policies):
    threshold = condition(policies["dead_letter_backlog"])
    assert "num_undelivered_messages" in threshold["filter"]
    assert "module.topology.dead_letter_holds" in threshold["filter"]


def test_delivery_success_rate_is_the_dead_lettered_share_per_job(policies, tf, tf_without_job_labels):
    policy = policies["delivery_success_rate"]
    c = condition(policy)
    assert "${local.metric_types.deliveries}" in c["filter"]
    assert 'metric.labels.outcome = \\"dead_lettered\\"' in c["filter"]
    assert "${local.metric_types.deliveries}" in c["denominator_filter"]
    assert 'one_of(\\"delivered\\", \\"dead_lettered\\")' in c["denominator_filter"]
    # success < threshold  <=>  dead-lettered share > 1 - threshold
    assert (c["comparison"], c["threshold_value"]) == (
        "COMPARISON_GT",
        "${1 - var.delivery_success_rate_threshold}",
    )
    for agg in (one(c, "aggregations"), one(c, "denominator_aggregations")):
        assert agg["alignment_period"] == "${var.delivery_success_rate_window_seconds}s"
        assert (agg["per_series_aligner"], agg["cross_series_reducer"]) == ("ALIGN_DELTA", "REDUCE_SUM")
        assert agg["group_by_fields"] == "${local.delivery_group_by}"
    assert tf["delivery_group_by"] == ["metric.label.sink", "metric.label.aid", "metric.label.job_id"]
    assert tf_without_job_labels["delivery_group_by"] == ["metric.label.sink"]
    assert policy["depends_on"] == ["${google_logging_metric.metric}"]


def test_quarantine_spike_counts_quarantined_events_in_a_window(policies):
    policy = policies["quarantine_spike"]
    c = condition(policy)
    assert "${local.metric_types.quarantined}" in c["filter"]
    assert (c["comparison"], c["threshold_value"]) == ("COMPARISON_GT", "${var.quarantine_alert_threshold}")
    agg = one(c, "aggregations")
    assert agg["alignment_period"] == "${var.quarantine_alert_window_seconds}s"
    assert (agg["per_series_aligner"], agg["cross_series_reducer"]) == ("ALIGN_DELTA", "REDUCE_SUM")
    assert policy["depends_on"] == ["${google_logging_metric.metric}"]


def test_function_error_rate_is_cloud_runs_5xx_share_per_function(policies, tf, tf_without_job_labels, topo):
    c = condition(policies["function_error_rate"])
    assert (c["filter"], c["denominator_filter"]) == (
        "${local.function_errors}",
        "${local.function_requests}",
    )
    assert (c["comparison"], c["threshold_value"]) == (
        "COMPARISON_GT",
        "${var.function_error_rate_threshold}",
    )
    for agg in (one(c, "aggregations"), one(c, "denominator_aggregations")):
        assert agg["group_by_fields"] == ["resource.label.service_name"]
        assert agg["alignment_period"] == "${var.function_error_rate_window_seconds}s"
    requests, errors = tf["function_requests"], tf["function_errors"]
    assert 'metric.type = "run.googleapis.com/request_count"' in requests
    assert 'resource.type = "cloud_run_revision"' in requests
    for name in topo.functions:
        assert f'"sysevents-{name}"' in requests
    assert errors.startswith(requests + " AND ")
    assert 'metric.labels.response_code_class = "5xx"' in errors
    assert 'metric.labels.response_code != "503"' in errors  # redelivery on purpose, by default
    assert "!=" not in tf_without_job_labels["function_errors"]  # function_error_ignored_response_codes = []


def test_one_oldest_unacked_alert_per_topology_subscription(policies, tf, topo):
    policy = policies["oldest_unacked"]
    assert policy["for_each"] == "${local.subscriptions}"
    assert set(tf["subscriptions"]) == set(topo.subscriptions)
    c = condition(policy)
    assert 'metric.type = \\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\\"' in c["filter"]
    assert 'resource.type = \\"pubsub_subscription\\"' in c["filter"]
    assert 'resource.labels.subscription_id = \\"${each.key}\\"' in c["filter"]
    assert (c["comparison"], c["threshold_value"]) == (
        "COMPARISON_GT",
        "${local.oldest_unacked_thresholds[each.key]}",
    )
    assert one(c, "aggregations")["per_series_aligner"] == "ALIGN_MAX"
    for name, sub in topo.subscriptions.items():
        expected = 3600 if sub.push_function else 518400
        assert tf["oldest_unacked_thresholds"][name] == expected, name
        assert tf["oldest_unacked_thresholds"][name] < sub.message_retention_seconds, name


def test_oldest_unacked_thresholds_can_be_set_per_subscription(tmp_path):
    rc, values, err = evaluate_locals(
        tmp_path,
        ["oldest_unacked_thresholds"],
        {
            "oldest_unacked_alert_seconds": 900,
            "oldest_unacked_alert_seconds_by_subscription": {"deliveries-email-push": 7200},
        },
    )
    assert rc == 0, err
    thresholds = values["oldest_unacked_thresholds"]
    assert thresholds["deliveries-email-push"] == 7200
    assert thresholds["deliveries-webhook-push"] == 900
    assert thresholds["system-events-quarantine-hold"] == 518400


def test_oldest_unacked_overrides_are_checked_at_plan():
    checks = blocks("check")
    names = one(checks[("oldest_unacked_thresholds_name_subscriptions",)], "assert")["condition"]
    assert "var.oldest_unacked_alert_seconds_by_subscription" in names and "local.subscriptions" in names
    retention = one(checks[("oldest_unacked_thresholds_below_retention",)], "assert")["condition"]
    assert "message_retention_seconds" in retention


def test_quarantine_alert_points_at_the_quarantine_hold(tf, topo):
    holds = [
        s.name
        for s in topo.subscriptions.values()
        if s.topic == topo.quarantine_topic and not s.push_function
    ]
    assert tf["quarantine_holds"] == holds and holds


# -- dashboard ------------------------------------------------------------------------------------------------------
def dashboard(values: dict) -> dict:
    return json.loads(values["dashboard_json"])


def datasets(doc: dict) -> list[dict]:
    return [
        d
        for t in doc["mosaicLayout"]["tiles"]
        if "xyChart" in t["widget"]
        for d in t["widget"]["xyChart"]["dataSets"]
    ]


def test_the_dashboard_is_the_json_terraform_sends():
    resource = root_blocks("resource")[("google_monitoring_dashboard", "sysevents")]
    assert resource["dashboard_json"] == "${local.dashboard_json}"


def test_the_dashboard_parses_and_charts_every_metric(tf):
    doc = dashboard(tf)
    assert doc["displayName"].startswith("sysevents")
    filters = [d["timeSeriesQuery"]["timeSeriesFilter"]["filter"] for d in datasets(doc)]
    for name, metric_type in tf["metric_types"].items():
        assert any(f'metric.type="{metric_type}"' in f for f in filters), name
    for builtin in (
        "run.googleapis.com/request_count",
        "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
        "pubsub.googleapis.com/subscription/num_undelivered_messages",
    ):
        assert any(builtin in f for f in filters), builtin


def test_dashboard_charts_are_well_formed(tf):
    doc = dashboard(tf)
    tiles = doc["mosaicLayout"]["tiles"]
    columns = doc["mosaicLayout"]["columns"]
    cells = set()
    for tile in tiles:
        assert tile["xPos"] + tile["width"] <= columns
        for x in range(tile["xPos"], tile["xPos"] + tile["width"]):
            for y in range(tile["yPos"], tile["yPos"] + tile["height"]):
                assert (x, y) not in cells, f"tiles overlap at {x},{y}"
                cells.add((x, y))
        assert tile["widget"]["title"]
    for d in datasets(doc):
        agg = d["timeSeriesQuery"]["timeSeriesFilter"]["aggregation"]
        assert agg["perSeriesAligner"].startswith("ALIGN_") and agg["crossSeriesReducer"].startswith(
            "REDUCE_"
        )
        assert agg.get("groupByFields", ["x"]), "an empty list is left out (the API drops it: a diff)"
        assert d["plotType"] in ("LINE", "STACKED_BAR", "STACKED_AREA", "HEATMAP")
        assert "${" in d["legendTemplate"] or d["legendTemplate"].isidentifier()
    percentiles = {
        d["timeSeriesQuery"]["timeSeriesFilter"]["aggregation"]["crossSeriesReducer"]
        for d in datasets(doc)
        if tf["metric_types"]["delivery_latency"] in d["timeSeriesQuery"]["timeSeriesFilter"]["filter"]
    }
    assert percentiles == {"REDUCE_PERCENTILE_50", "REDUCE_PERCENTILE_95", "REDUCE_PERCENTILE_99"}


def test_per_job_charts_only_with_the_job_labels(tf, tf_without_job_labels):
    def titles(values):
        return [t["widget"]["title"] for t in dashboard(values)["mosaicLayout"]["tiles"]]

    assert "Top 10 jobs by dead letters" in titles(tf)
    assert not [t for t in titles(tf_without_job_labels) if "jobs" in t.lower() and "Top" in t]
    for d in datasets(dashboard(tf_without_job_labels)):
        assert "metric.label.job_id" not in d["timeSeriesQuery"]["timeSeriesFilter"]["aggregation"].get(
            "groupByFields", []
        )
    top = [
        d
        for d in datasets(dashboard(tf))
        if "pickTimeSeriesFilter" in d["timeSeriesQuery"]["timeSeriesFilter"]
    ]
    assert top and all(
        d["timeSeriesQuery"]["timeSeriesFilter"]["pickTimeSeriesFilter"]["numTimeSeries"] == 10 for d in top
    )


def test_the_dashboard_charts_every_subscription(tf, topo):
    (age,) = [
        d
        for d in datasets(dashboard(tf))
        if "oldest_unacked_message_age" in d["timeSeriesQuery"]["timeSeriesFilter"]["filter"]
    ]
    for name in topo.subscriptions:
        assert f'"{name}"' in age["timeSeriesQuery"]["timeSeriesFilter"]["filter"], name


# -- variables ------------------------------------------------------------------------------------------------------
def test_monitoring_variables_are_typed_described_and_validated():
    variables = root_blocks("variable")
    for name in NEW_VARIABLES:
        var = variables[(name,)]
        assert var["type"] and len(var["description"]) > 30, name
        if var["type"] != "bool":
            assert var.get("validation"), f"{name} can be wrong: validate it"


def test_wrong_monitoring_values_are_refused(tmp_path):
    wrong = {
        "delivery_success_rate_threshold": 1.5,
        "delivery_success_rate_window_seconds": 90,
        "quarantine_alert_threshold": 2.5,
        "quarantine_alert_window_seconds": 30,
        "function_error_rate_threshold": 0,
        "function_error_rate_window_seconds": 61,
        "function_error_ignored_response_codes": ["404"],
        "oldest_unacked_alert_seconds": 10,
        "oldest_unacked_hold_alert_seconds": 0,
        "oldest_unacked_alert_seconds_by_subscription": {"deliveries-email-push": 5},
        "alert_notification_channels": ["my-channel"],
    }
    rc, _, err = evaluate_locals(tmp_path, [], wrong)
    assert rc != 0
    for name in wrong:
        assert f"var.{name} is" in err, name


def test_the_examples_set_the_monitoring_thresholds():
    prod = parse(TF_DIR / "examples" / "production.tfvars")
    assert {"delivery_success_rate_threshold", "oldest_unacked_alert_seconds"} <= set(prod)
