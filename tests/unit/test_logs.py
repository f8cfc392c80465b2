"""sysevents.obs.logs: Cloud Logging structured JSON lines, the readable text format, W3C trace context."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator

import pytest

from sysevents.obs import logs

# The examples of the W3C Trace Context recommendation (https://www.w3.org/TR/trace-context/).
W3C_VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
W3C_NOT_SAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
PROJECT = "acme-sysevents-prod"
SPECIAL = ("severity", "message", "time", logs.LABELS)
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


class Capture:
    """A logger whose records go through one formatter into a string, one line per record."""

    def __init__(self, formatter: logging.Formatter):
        self.stream = io.StringIO()
        handler = logging.StreamHandler(self.stream)
        handler.setFormatter(formatter)
        handler.addFilter(logs.TraceFilter())
        self.logger = logging.getLogger(f"sysevents.test.{id(self)}")
        self.logger.handlers[:] = [handler]
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def entries(self) -> list[dict]:
        return [json.loads(line) for line in self.lines()]


@pytest.fixture
def json_log() -> Capture:
    return Capture(logs.JsonFormatter("webhook"))


@pytest.fixture
def text_log() -> Capture:
    return Capture(logs.TextFormatter("webhook"))


@pytest.fixture
def trace() -> Iterator[logs.TraceContext]:
    with logs.traced(W3C_VALID, PROJECT, child=False) as ctx:
        yield ctx


def deliver(logger: logging.Logger, **overrides) -> None:
    fields = {
        "sink": "webhook",
        "outcome": "delivered",
        "aid": "12",
        "job_id": "j-1",
        "event_id": "e-1",
        "attempt": 1,
        "reason": "HTTP 200",
        "status": 200,
        "latency_ms": 12.34,
        "workflow": "webhook_system_events",
    }
    logs.outcome(logger, **(fields | overrides))


# -- W3C traceparent ----------------------------------------------------------------------------------------------
def test_traceparent_examples_of_the_recommendation_parse():
    assert logs.parse_traceparent(W3C_VALID) == (TRACE_ID, SPAN_ID, 1)
    trace_id, span_id, flags = logs.parse_traceparent(W3C_NOT_SAMPLED)
    assert (trace_id, span_id, flags) == (TRACE_ID, SPAN_ID, 0)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        42,
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # another version
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # the forbidden version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # 31 digits
        "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",  # 33 digits
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",  # 15 digits
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",  # one flag digit
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n",
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "4bf92f3577b34da6a3ce929d0e0e4736/00f067aa0ba902b7;o=1",  # X-Cloud-Trace-Context, not W3C
    ],
)
def test_anything_but_a_strict_version_00_traceparent_is_refused(value):
    assert logs.parse_traceparent(value) is None


def test_new_traceparents_are_valid_random_and_sampled():
    values = {logs.new_traceparent() for _ in range(50)}
    assert len(values) == 50
    for value in values:
        parsed = logs.parse_traceparent(value)
        assert parsed is not None and parsed.flags == 1
    assert logs.parse_traceparent(logs.new_traceparent(sampled=False)).flags == 0


def test_a_child_keeps_the_trace_and_flags_with_a_new_span():
    child = logs.parse_traceparent(logs.child_traceparent(W3C_NOT_SAMPLED))
    assert child.trace_id == TRACE_ID and child.flags == 0 and child.span_id != SPAN_ID
    assert logs.child_traceparent(W3C_VALID) != logs.child_traceparent(W3C_VALID)


def test_a_child_of_nothing_starts_a_new_trace():
    for parent in (None, "garbage"):
        child = logs.parse_traceparent(logs.child_traceparent(parent))
        assert child is not None and child.trace_id != TRACE_ID


def test_set_trace_gives_this_hop_its_own_span_and_reset_restores():
    assert logs.current_traceparent() is None
    token = logs.set_trace(W3C_VALID, PROJECT)
    try:
        current = logs.parse_traceparent(logs.current_traceparent())
        assert current.trace_id == TRACE_ID and current.span_id != SPAN_ID
        inner = logs.set_trace(logs.current_traceparent(), PROJECT)
        assert logs.parse_traceparent(logs.current_traceparent()).trace_id == TRACE_ID
        logs.reset_trace(inner)
        assert logs.parse_traceparent(logs.current_traceparent()) == current
    finally:
        logs.reset_trace(token)
    assert logs.current_traceparent() is None


def test_set_trace_without_a_valid_traceparent_starts_one():
    for value in (None, "", "00-zz"):
        with logs.traced(value, PROJECT) as ctx:
            assert logs.parse_traceparent(ctx.traceparent) is not None
            assert ctx.traceparent == logs.current_traceparent()
            assert ctx.trace == f"projects/{PROJECT}/traces/{ctx.trace_id}"
    assert logs.current_traceparent() is None


def test_set_trace_can_keep_the_given_span():
    with logs.traced(W3C_VALID, PROJECT, child=False) as ctx:
        assert logs.current_traceparent() == W3C_VALID and ctx.span_id == SPAN_ID and ctx.sampled


# -- JSON lines -------------------------------------------------------------------------------------------------------
def test_every_json_line_parses_and_has_the_special_fields(json_log):
    json_log.logger.debug("debug")
    json_log.logger.info("info with a\nnewline and %s", "args")
    json_log.logger.warning("warning")
    json_log.logger.error("error")
    json_log.logger.critical("critical")
    deliver(json_log.logger)
    logs.event(
        json_log.logger, "ingest", "ingest: event e-1 matched 3 jobs", aid="12", event_id="e-1", matched=3
    )
    lines = json_log.lines()
    assert len(lines) == 7
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        for key in SPECIAL:
            assert key in entry, (key, entry)
        assert RFC3339_UTC.fullmatch(entry["time"]), entry["time"]
        assert entry[logs.LABELS]["function"] == "webhook"
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in entry[logs.LABELS].items())
        location = entry[logs.SOURCE_LOCATION]
        assert location["file"].endswith("test_logs.py") and location["line"].isdigit()
    assert [e["severity"] for e in entries[:5]] == ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    assert entries[1]["message"] == "info with a\nnewline and args"


def test_no_trace_fields_outside_a_trace(json_log):
    json_log.logger.info("no trace")
    (entry,) = json_log.entries()
    assert logs.TRACE not in entry and logs.SPAN_ID not in entry


def test_trace_fields_come_from_the_traceparent(json_log, trace):
    json_log.logger.info("traced")
    (entry,) = json_log.entries()
    assert entry[logs.TRACE] == f"projects/{PROJECT}/traces/{TRACE_ID}"
    assert entry[logs.SPAN_ID] == SPAN_ID
    assert entry[logs.TRACE_SAMPLED] is True


def test_the_trace_is_the_one_current_when_logging(json_log):
    with logs.traced(W3C_VALID, PROJECT) as ctx:
        json_log.logger.info("hop")
    json_log.logger.info("after")
    first, second = json_log.entries()
    assert first[logs.TRACE].endswith(TRACE_ID) and first[logs.SPAN_ID] == ctx.span_id != SPAN_ID
    assert logs.TRACE not in second


def test_an_exception_puts_its_traceback_in_the_message_at_error(json_log):
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        json_log.logger.warning("delivering failed", exc_info=True)
        json_log.logger.exception("again")
    warned, logged = json_log.entries()
    for entry in (warned, logged):
        assert entry["severity"] == "ERROR"
        assert "Traceback (most recent call last)" in entry["message"]
        assert "RuntimeError: boom" in entry["message"]
    assert warned["message"].startswith("delivering failed\n")


def test_one_line_per_outcome_with_labels_and_payload(json_log, trace):
    deliver(json_log.logger)
    (entry,) = json_log.entries()
    assert entry["severity"] == "INFO"
    assert entry["message"] == "webhook: delivered event e-1 to job 12/j-1 (attempt 1, HTTP 200, 12 ms)"
    assert entry[logs.LABELS] == {
        "function": "webhook",
        "sink": "webhook",
        "outcome": "delivered",
        "aid": "12",
        "job_id": "j-1",
        "event_id": "e-1",
    }
    assert entry["sysevents"] == {
        "kind": "delivery",
        "sink": "webhook",
        "outcome": "delivered",
        "aid": "12",
        "job_id": "j-1",
        "event_id": "e-1",
        "attempt": 1,
        "status": 200,
        "latency_ms": 12.3,
        "workflow": "webhook_system_events",
        "reason": "HTTP 200",
    }
    assert entry[logs.TRACE].endswith(TRACE_ID)


@pytest.mark.parametrize("outcome", logs.OUTCOMES)
def test_every_outcome_is_one_line_and_only_dead_letters_warn(json_log, outcome):
    deliver(json_log.logger, outcome=outcome, status=None, latency_ms=None, workflow=None)
    (entry,) = json_log.entries()
    assert entry["sysevents"]["outcome"] == entry[logs.LABELS]["outcome"] == outcome
    assert entry["sysevents"]["kind"] == "delivery"
    assert entry["severity"] == ("WARNING" if outcome == "dead_lettered" else "INFO")
    assert not {"status", "latency_ms", "workflow", "delay_s"} & set(entry["sysevents"])


def test_a_retry_says_when_it_is_scheduled(json_log):
    deliver(
        json_log.logger, outcome="retry", attempt=2, status=503, latency_ms=30, delay_s=20, reason="HTTP 503"
    )
    (entry,) = json_log.entries()
    assert entry["sysevents"]["delay_s"] == 20
    assert (
        entry["message"]
        == "webhook: will retry event e-1 to job 12/j-1 (attempt 2, HTTP 503, 30 ms, retry in 20 s): HTTP 503"
    )


def test_an_outcome_without_a_job_omits_the_missing_labels(json_log):
    deliver(
        json_log.logger, outcome="dead_lettered", aid=None, job_id=None, event_id=None, reason="bad delivery"
    )
    (entry,) = json_log.entries()
    assert entry[logs.LABELS] == {"function": "webhook", "sink": "webhook", "outcome": "dead_lettered"}
    assert not {"aid", "job_id", "event_id"} & set(entry["sysevents"])
    assert (
        entry["message"]
        == "webhook: dead-lettered a message for no job (attempt 1, HTTP 200, 12 ms): bad delivery"
    )


def test_the_level_of_an_outcome_can_be_set(json_log):
    deliver(json_log.logger, outcome="filtered", level=logging.DEBUG)
    assert json_log.entries()[0]["severity"] == "DEBUG"


def test_an_unknown_outcome_is_a_bug():
    with pytest.raises(ValueError, match="unknown delivery outcome"):
        deliver(logging.getLogger("sysevents.test"), outcome="sent")


def test_event_lines_carry_their_kind_and_fields(json_log):
    logs.event(json_log.logger, "ingest", "ingest: e-1 matched 3 jobs", aid="12", event_id="e-1", matched=3)
    logs.event(
        json_log.logger,
        "quarantine",
        "ingest: quarantined m-1",
        level=logging.WARNING,
        reason="not JSON",
        aid=None,
    )
    ingest, quarantine = json_log.entries()
    assert ingest["sysevents"] == {"kind": "ingest", "aid": "12", "event_id": "e-1", "matched": 3}
    assert ingest[logs.LABELS] == {"function": "webhook", "aid": "12", "event_id": "e-1"}
    assert quarantine["sysevents"] == {"kind": "quarantine", "reason": "not JSON"}
    assert quarantine["severity"] == "WARNING"
    assert quarantine[logs.LABELS] == {"function": "webhook"}


def test_payload_values_stay_plain_json(json_log):
    logs.event(
        json_log.logger,
        "backfill",
        "odd values",
        ratio=float("nan"),
        big=float("inf"),
        when=object(),
        nested={1: ("a", {"b"})},
        text="\ud800 lone surrogate",
    )
    (line,) = json_log.lines()
    entry = json.loads(line)  # strict JSON: no NaN, no Infinity
    assert "NaN" not in line.replace('"nan"', "")
    assert entry["sysevents"]["ratio"] == "nan" and entry["sysevents"]["big"] == "inf"
    assert entry["sysevents"]["nested"] == {"1": ["a", ["b"]]}
    line.encode("utf-8")


def test_long_label_values_are_cut(json_log):
    logs.event(json_log.logger, "ingest", "long", event_id="e" * 5000)
    (entry,) = json_log.entries()
    assert len(entry[logs.LABELS]["event_id"]) == logs.LABEL_MAX
    assert len(entry["sysevents"]["event_id"]) == 5000


# -- text ---------------------------------------------------------------------------------------------------------------
def test_text_lines_are_readable(text_log, trace):
    deliver(text_log.logger)
    logs.event(text_log.logger, "ingest", "ingest: e-1 matched 3 jobs", aid="12", matched=3)
    first, second = text_log.lines()
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d INFO \[webhook\] sysevents\.test\.\d+: webhook: delivered event e-1 to job 12/j-1 "
        r"\(attempt 1, HTTP 200, 12 ms\) \[trace 4bf92f35\]",
        first,
    ), first
    assert second.endswith("ingest: e-1 matched 3 jobs [trace 4bf92f35]")
    assert "{" not in first  # no JSON


def test_text_keeps_the_traceback_after_the_line(text_log):
    try:
        raise ValueError("bad")
    except ValueError:
        text_log.logger.exception("failed")
    lines = text_log.lines()
    assert lines[0].endswith("failed") and lines[1].startswith("Traceback") and lines[-1] == "ValueError: bad"


# -- configure -----------------------------------------------------------------------------------------------------------
@pytest.fixture
def root() -> Iterator[logging.Logger]:
    logger = logging.getLogger()
    saved, level = list(logger.handlers), logger.level
    try:
        yield logger
    finally:
        logger.handlers[:] = saved
        logger.setLevel(level)


def ours(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if isinstance(h, logs._Handler)]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, logs.TextFormatter),
        ({"K_SERVICE": "sysevents-webhook"}, logs.JsonFormatter),
        ({"K_SERVICE": "sysevents-webhook", "SYSEVENTS_LOG_FORMAT": "text"}, logs.TextFormatter),
        ({"SYSEVENTS_LOG_FORMAT": "JSON"}, logs.JsonFormatter),
    ],
)
def test_the_format_follows_the_environment(root, monkeypatch, env, expected):
    monkeypatch.delenv("K_SERVICE", raising=False)
    monkeypatch.delenv("SYSEVENTS_LOG_FORMAT", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    logs.configure("webhook")
    (handler,) = ours(root)
    assert isinstance(handler.formatter, expected)
    assert handler.stream is sys.stdout and root.level == logging.INFO


def test_a_wrong_format_is_refused(root, monkeypatch):
    with pytest.raises(ValueError):
        logs.configure("webhook", fmt="xml")
    monkeypatch.setenv("SYSEVENTS_LOG_FORMAT", "yaml")
    with pytest.raises(ValueError, match="SYSEVENTS_LOG_FORMAT"):
        logs.configure("webhook")


def test_configure_is_idempotent_and_replaces_console_handlers(root, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # the handler binds the stream capsys installed
    console = logging.StreamHandler(sys.stderr)  # what logging.basicConfig installs
    root.addHandler(console)
    keep = logging.StreamHandler(io.StringIO())  # e.g. a test's capture: kept
    root.addHandler(keep)
    logs.configure("ingest", fmt="json")
    logs.configure("ingest", fmt="json")
    assert len(ours(root)) == 1 and console not in root.handlers and keep in root.handlers
    first = ours(root)[0]
    logs.configure("ingest", fmt="json")
    assert ours(root) == [first]
    logs.configure("ingest", fmt="text")
    assert len(ours(root)) == 1 and isinstance(ours(root)[0].formatter, logs.TextFormatter)
    logs.configure("ingest", fmt="json")
    with logs.traced(W3C_VALID, PROJECT):
        logs.event(logging.getLogger("sysevents.ingest"), "ingest", "one line", matched=0)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry[logs.LABELS]["function"] == "ingest" and entry[logs.TRACE].endswith(TRACE_ID)
    assert entry["sysevents"] == {"kind": "ingest", "matched": 0}
