"""`sysevents status` against the local stack: a delivered job, a failing one waiting for its retry, one
that dead-lettered, an auto-disabled one and a quarantined event, each where the report says (real
emulators, the webhook function, a local receiver)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from helpers import publish_events, put_jobs, wait_until, webhook_job

from sysevents.cli import main
from sysevents.delivery.accounting import DeliveryLog
from sysevents.events.model import new_event
from sysevents.obs.status import collect, render
from sysevents.runtime import Runtime
from sysevents.transport.delays import Release

pytestmark = pytest.mark.integration


def watching(aid: str, name: str, url: str, **fields):
    """A webhook job for the failures of work `name`."""
    return webhook_job(f"{aid}-{name}", aid, url, system_event_sources={"work": [name]}, fields=fields)


def test_status_shows_what_needs_attention(stack, store, publisher, receiver, aid):
    receiver.script = lambda item: {"/fail": 500, "/gone": 410}.get(item.path)
    ok = watching(aid, "ok", receiver.url("/ok"))
    failing = watching(aid, "failing", receiver.url("/fail"))
    gone = watching(aid, "gone", receiver.url("/gone"))
    off = watching(
        aid,
        "off",
        receiver.url("/off"),
        state="paused",
        disabled_reason="the destination failed for 5 days",
        disabled_at=datetime.now(UTC).isoformat(),
    )
    put_jobs(stack, store, ok, failing, gone, off)
    publish_events(
        stack, publisher, *(new_event(aid, "work", name, "failed") for name in ("ok", "failing", "gone"))
    )
    dlog = DeliveryLog(store.client)
    assert wait_until(lambda: dlog.stats(ok)["delivered"] == 1, 60)
    assert wait_until(lambda: dlog.stats(gone)["dead_lettered"] == 1, 60)
    assert wait_until(lambda: dlog.stats(failing)["delayed"] == 1, 60)  # waiting for its retry

    rt = Runtime()
    try:
        # a wait an hour away (as a Retry-After hold puts): the count is of the tasks on the real queue
        rt.delays.put(
            Release("status-test", b"{}", {}), datetime.now(UTC) + timedelta(hours=1), uuid.uuid4().hex
        )
        report = collect(rt, aid)
    finally:
        rt.close()
    jobs = report["jobs"]
    assert (jobs["total"], jobs["active"], jobs["paused"], jobs["auto_disabled"]) == (4, 3, 0, 1)
    # failing: its latest attempts failed (the retrying one, and the one whose receiver said 410)
    assert {r["id"] for r in jobs["failing"]} == {failing.id, gone.id}
    assert all(r["consecutive_failures"] >= 1 for r in jobs["failing"])
    assert [(r["id"], r["disabled_reason"]) for r in jobs["disabled"]] == [(off.id, off.disabled_reason)]
    assert [r["id"] for r in jobs["with_dead_letters"]] == [gone.id]
    assert (jobs["waiting"], jobs["dead_lettered"]) == (1, 1)
    assert report["delay_queue"]["tasks"] >= 1, report["delay_queue"]  # ours, an hour away, at least
    assert report["backlogs"] == {
        "available": False,
        "note": "the Pub/Sub emulator keeps no backlog metrics; see the jobs' pending counts",
    }
    assert report["quarantine"] is None  # one account's report: the quarantine is the operator's
    text = render(report)
    print(text)  # shown with -s: the report a person reads
    for needle in (failing.id, gone.id, off.id, "the destination failed for 5 days", "4 jobs: 3 active"):
        assert needle in text

    # the command: text, JSON, and an exit status a script can check
    r = CliRunner().invoke(main, ["status", "--aid", aid])
    assert r.exit_code == 1, r.output
    assert failing.id in r.output and off.id in r.output
    r = CliRunner().invoke(main, ["status", "--aid", aid, "--json"])
    assert r.exit_code == 1, r.output
    assert {x["id"] for x in json.loads(r.output)["jobs"]["failing"]} == {failing.id, gone.id}


def test_status_of_every_account_counts_quarantine(stack, publisher, aid):
    publisher.publish_all([(stack.topology.ingest_topic, b"{not json", {})])
    rt = Runtime()
    try:

        def quarantined():
            r = collect(rt)
            return r if r["quarantine"].get("total") else None

        report = wait_until(quarantined, 60)
    finally:
        rt.close()
    assert report, "the quarantined event never showed"
    assert report["quarantine"]["total"] >= 1 and report["quarantine"]["by_reason"]
    assert "error" not in report["jobs"]
    assert "Quarantine" in render(report)
