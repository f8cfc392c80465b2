"""Threshold and absence conditions through the real pipeline (emulators, ingest, the webhook and email
functions, the Cloud Tasks emulator for condition timers, local receivers and the SMTP server).

The test stack runs at SYSEVENTS_TIME_SCALE 1/3000: "6h" is 7.2 s here, "2h" 2.4 s.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime

import pytest
import requests
from helpers import TIME_SCALE, allow_email_domain, api_account, wait_until, webhook_job
from helpers import publish_events as publish
from helpers import put_jobs as put

from sysevents.delivery.accounting import DeliveryLog
from sysevents.events.model import new_event
from sysevents.jobs.registry import job_from_dict

pytestmark = pytest.mark.integration


def _webhook_workers(stack) -> list[int]:
    from pathlib import Path

    [proc] = [p for p in stack.processes if p.name == "function-webhook"]
    found, todo = [], [proc.pid]
    while todo:
        pid = todo.pop()
        kids = [
            int(c) for t in Path(f"/proc/{pid}/task").glob("*") for c in (t / "children").read_text().split()
        ]
        if not kids and pid != proc.pid:
            found.append(pid)
        todo += kids
    return found


def test_one_work_failing_3_times_fires_once_on_slack_survives_a_kill_and_resolves(
    stack, store, publisher, receiver, firestore_client, aid
):
    job = webhook_job(f"{aid}-thr", aid, receiver.url("/slack"), channel="slack",
                      threshold={"count": 3, "within": "6h", "by": ["subject_id"]})  # fmt: skip
    put(stack, store, job)
    dlog = DeliveryLog(firestore_client)
    publish(stack, publisher, *(new_event(aid, "work", "w-1", "failed", notes=f"try {i}") for i in range(2)),
            new_event(aid, "work", "w-2", "failed"), new_event(aid, "work", "w-1", "completed"))  # fmt: skip
    assert wait_until(lambda: dlog.stats(job)["accepted"] == 3, timeout=60), dlog.stats(job)
    for pid in _webhook_workers(stack):  # the sink dies with two of w-1's failures counted
        os.kill(pid, signal.SIGKILL)
    publish(stack, publisher, new_event(aid, "work", "w-1", "failed", notes="try 2"))
    [post] = receiver.wait_for("/slack", 1, timeout=60)
    lines = post.json()["text"].splitlines()
    assert lines[0] == f"3 work failed events within 6h for subject_id=w-1 in account {aid} (threshold 3)"
    assert sorted(line.rsplit(": ", 1)[1].removesuffix(">") for line in lines[1:]) == [
        "try 0",
        "try 1",
        "try 2",
    ]
    resolved = receiver.wait_for("/slack", 2, timeout=60)[1].json()["text"]
    assert resolved == "Resolved: work w-1: below the threshold of 3 within 6h again"
    time.sleep(2)
    assert len(receiver.at("/slack")) == 2  # w-2 failed once; completed is not the job's verb
    stack.check_alive()


def test_absence_fires_at_its_deadline_without_an_event_and_resolves_on_the_next(
    stack, publisher, receiver, aid
):
    env = api_account(stack, aid)
    url, key = env["SYSEVENTS_API_URL"], {"X-API-Key": env["SYSEVENTS_API_KEY"]}

    def create(job_id: str, path: str, subject: str) -> dict:
        expect = {"system_event_sources": {"work": [subject]}, "system_event_type": "synccomplete"}
        body = {"id": job_id, "workflow": "webhook_system_events",
                "config": {"webhook_url": receiver.url(path), "absence": {"expect": expect, "within": "2h"}}}  # fmt: skip
        r = requests.post(f"{url}/accounts/{aid}/jobs", json=body, headers=key, timeout=30)
        assert r.status_code == 201, r.text
        return r.json()

    quiet = create(f"{aid}-quiet", "/quiet", "never-1")  # armed when saved: its event never comes
    assert [s["state"] for s in quiet["condition_state"]] == ["armed"]
    create(f"{aid}-busy", "/busy", "sync-1")
    stack.wait_for_job_caches(since=datetime.now(UTC))
    seen = new_event(aid, "work", "sync-1", "synccomplete")
    publish(stack, publisher, seen)  # re-arms /busy only
    [alert] = receiver.wait_for("/quiet", 1, timeout=60)
    doc = alert.json()
    assert doc["type"] == "sysevents.alert.digest" and doc["reason"] == "absence"
    assert doc["summary"] == f"No synccomplete from work never-1 within 2h in account {aid}; last seen never"
    busy = receiver.wait_for("/busy", 1, timeout=60)[0].json()
    assert busy["summary"].startswith(
        f"No synccomplete from work sync-1 within 2h in account {aid}; last seen 20"
    )
    deadline, last = (datetime.fromisoformat(busy["condition"][k]) for k in ("deadline", "last_seen"))
    assert last == seen.time.replace(
        microsecond=seen.time.microsecond // 1000 * 1000
    )  # it says when it saw it
    assert abs((deadline - last).total_seconds() - 7200 * TIME_SCALE) < 0.002  # re-armed by it: 2 h later
    assert deadline > datetime.fromisoformat(
        doc["condition"]["deadline"]
    )  # not at the deadline it had at save
    publish(stack, publisher, new_event(aid, "work", "other", "synccomplete"),
            new_event(aid, "work", "sync-1", "synccomplete"))  # fmt: skip
    resolved = receiver.wait_for("/busy", 2, timeout=60)[1].json()
    assert resolved["type"] == "sysevents.alert.resolved"
    assert resolved["summary"].startswith(f"Resolved: work sync-1 synccomplete in account {aid} at ")
    assert resolved["summary"].endswith(f"(absent since {busy['condition']['last_seen']})")
    shown = requests.get(f"{url}/accounts/{aid}/jobs/{aid}-busy", headers=key, timeout=30).json()
    [state] = shown["condition_state"]
    assert (
        state["state"] == "armed"
        and state["firing_since"] is None
        and state["last_seen"] > last.isoformat()[:19]
    )


def test_more_than_20_deletes_by_one_actor_sends_one_email(stack, store, publisher, firestore_client, aid):
    allow_email_domain(firestore_client, aid)
    to = f"ops-{aid}@example.com"
    job = job_from_dict({"workflow": "email_system_events", "config": {
        "recipients": [to], "system_event_type": "deleted", "system_event_sources": {"segment": []},
        "threshold": {"count": 21, "within": "1d", "by": ["actor"]}}}, job_id=f"{aid}-del", aid=aid)  # fmt: skip
    put(stack, store, job)
    bulk = [new_event(aid, "segment", f"s-{i}", "deleted", actor="bulk-bot") for i in range(21)]
    others = [new_event(aid, "segment", f"o-{i}", "deleted", actor=f"person-{i}") for i in range(21)]
    publish(stack, publisher, *bulk, *others)
    [mail] = stack.smtp.wait_for(stack.smtp.to(to), 1, timeout=60)
    assert (
        mail.subject
        == f"[sysevents] 21 segment deleted events within 1d for actor=bulk-bot in account {aid} (threshold 21)"
    )
    assert sum(" segment s-" in line for line in mail.body.splitlines()) == 20  # the digest lists 20
    assert "... and 1 more not listed." in mail.body
    assert wait_until(lambda: DeliveryLog(firestore_client).stats(job)["received"] == 42, timeout=30)
    assert stack.smtp.wait_for(stack.smtp.to(to), 2, timeout=2) == [mail]  # once, and no one else's


def test_the_sweep_arms_an_absence_job_never_armed_and_it_fires(stack, store, receiver, aid):
    expect = {"system_event_sources": {"work": ["never-2"]}, "system_event_type": "completed"}
    job = webhook_job(
        f"{aid}-swept",
        aid,
        receiver.url("/swept"),
        absence={"expect": expect, "within": "2h"},
        system_event_type="completed",
    )
    put(stack, store, job)  # stored directly: nothing armed it
    sweep = stack.function_urls["webhook"].rstrip("/") + "/alerts/sweep"
    # the sweep runs on a schedule: it arms the job once its function's job listing has it
    assert wait_until(lambda: requests.post(sweep, json={}, timeout=60).json().get("armed"), timeout=30)
    [alert] = receiver.wait_for("/swept", 1, timeout=60)
    assert (
        alert.json()["summary"]
        == f"No completed from work never-2 within 2h in account {aid}; last seen never"
    )
    again = requests.post(sweep, json={}, timeout=60).json()  # armed once: firing, nothing to arm or re-put
    assert requests.get(stack.function_urls["webhook"], timeout=30).status_code == 200
    time.sleep(1)
    assert len(receiver.at("/swept")) == 1 and again.get("armed", 0) == 0
