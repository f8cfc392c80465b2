"""What the functions log, read from the stack's own log files: one trace per event across functions,
one outcome line per delivery, and never a job's secret (header values, signing secrets)."""

from __future__ import annotations

import re
import uuid

import pytest
from helpers import put_jobs as put
from helpers import wait_until, webhook_job

from sysevents.events.model import new_event
from sysevents.obs.logs import TRACEPARENT_ATTR, new_traceparent, parse_traceparent

pytestmark = pytest.mark.integration


def logs_of(stack, name: str) -> str:
    return (stack.workdir / "logs" / f"function-{name}.log").read_text(errors="replace")


def all_logs(stack) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted((stack.workdir / "logs").glob("*.log")))


def wait_for_line(stack, name: str, pattern: str, timeout: float = 60.0) -> list[str]:
    return wait_until(
        lambda: [line for line in logs_of(stack, name).splitlines() if re.search(pattern, line)], timeout
    )


def test_one_event_is_one_trace_and_no_secret_is_ever_logged(stack, store, publisher, receiver, aid):
    secret_header = f"Bearer hdr-{uuid.uuid4().hex}"
    signing = "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw=="  # base64 of a test key
    fails_once = {"n": 0}

    def script(r):
        fails_once["n"] += 1
        return 500 if fails_once["n"] == 1 else None  # one retry: the error paths log too

    receiver.script = script
    job = webhook_job(
        "logged",
        aid,
        receiver.url("/logs"),
        headers={"Authorization": secret_header},
        signing_secrets=[signing],
    )
    put(stack, store, job)
    event = new_event(aid, "work", "w-logs", "failed")
    parent = new_traceparent()
    trace_id = parse_traceparent(parent).trace_id
    publisher.publish_all([(stack.topology.ingest_topic, event.to_json(), {TRACEPARENT_ATTR: parent})])
    got = receiver.wait_for("/logs", 1, timeout=60)
    assert got[0].headers["Authorization"] == secret_header  # it was used, so it was in memory

    # the trace: ingest's line about the event and the webhook's outcome lines carry the same trace
    [ingest_line] = wait_for_line(stack, "ingest", rf"event {event.id} .*matched 1 job")
    assert f"[trace {trace_id[:8]}]" in ingest_line
    outcomes = wait_for_line(stack, "webhook", rf"delivered event {event.id} to job {aid}/logged")
    assert len(outcomes) == 1 and f"[trace {trace_id[:8]}]" in outcomes[0]
    retries = [line for line in logs_of(stack, "webhook").splitlines() if f"retry event {event.id}" in line]
    assert len(retries) == 1 and f"[trace {trace_id[:8]}]" in retries[0]  # the retry kept the trace

    text = all_logs(stack)
    for secret in (secret_header, secret_header.split()[1], signing, signing.removeprefix("whsec_")):
        assert secret not in text
