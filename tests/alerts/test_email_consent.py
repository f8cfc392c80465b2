"""Email recipients are consented, through the real pipeline (ingest -> email function -> aiosmtpd) and the
admin API's /consent route: a stranger's address gets at most one confirmation and never an alert; once
confirmed through the link it gets alerts; an allowed domain needs no confirmation; unsubscribing stops the
mail; accounts are walls; the daily quota dead-letters the rest with its reason."""

from __future__ import annotations

import re
import time

import pytest
import requests
from helpers import allow_email_domain, api_account, email_job, pull, put_jobs, wait_until
from helpers import publish_events as publish

from sysevents.delivery.accounting import DeliveryLog
from sysevents.events.model import new_event

pytestmark = pytest.mark.integration
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/consent/[A-Za-z0-9_=-]+)")


def mails(stack, to, count, timeout):
    return stack.smtp.wait_for(stack.smtp.to(to), count, timeout=timeout)


def links(mail) -> list[str]:
    return LINK.findall(mail.body)


def attempts(firestore_client, job) -> list[dict]:
    return DeliveryLog(firestore_client).attempts(job)


def test_strangers_get_one_confirmation_each_and_never_the_alert(
    stack, store, publisher, firestore_client, aid
):
    strangers = [f"a-{aid}@example.org", f"b-{aid}@example.org"]
    job = email_job(f"{aid}-strangers", aid, strangers)
    put_jobs(stack, store, job)
    publish(stack, publisher, *[new_event(aid, "work", f"w-{i}", "failed") for i in range(3)])

    held = wait_until(
        lambda: len(attempts(firestore_client, job)) >= 3 and attempts(firestore_client, job), 60
    )
    assert [a["outcome"] for a in held] == ["filtered"] * 3
    assert all(a["error"].startswith("held: no recipient has confirmed") for a in held)
    for to in strangers:
        [mail] = mails(stack, to, 2, timeout=5)  # one confirmation, nothing else
        assert mail.subject == f"[sysevents] Confirm alert emails from account {aid}"
        assert mail.message["List-Unsubscribe"] and len(links(mail)) == 2  # confirm, never ask again
    reasons = " ".join(a["error"] for a in held)
    assert f"{strangers[0]}: confirmation sent" in reasons and f"{strangers[0]}: pending" in reasons

    operator = {"X-API-Key": stack.operator_key}
    url = stack.function_urls["admin"].rstrip("/")
    view = requests.get(f"{url}/accounts/{aid}/jobs/{job.id}", headers=operator, timeout=30).json()
    assert [(r["address"], r["state"]) for r in view["recipients"]] == [(a, "pending") for a in strangers]


def test_after_confirming_through_the_link_alerts_arrive(stack, store, publisher, aid):
    to = f"c-{aid}@example.org"
    job = email_job(f"{aid}-confirm", aid, [to])
    put_jobs(stack, store, job)
    publish(stack, publisher, new_event(aid, "work", "w-0", "failed"))
    [ask] = mails(stack, to, 1, timeout=60)
    confirm = links(ask)[0]

    page = requests.get(confirm, timeout=30)  # a GET (a mail scanner's) changes nothing
    assert page.status_code == 200 and "Confirm" in page.text and 'method="post"' in page.text
    assert requests.post(confirm[:-4] + "AAAA", timeout=30).status_code == 400  # a changed link is refused
    done = requests.post(confirm, timeout=30)
    assert done.status_code == 200 and "Confirmed" in done.text

    ev = new_event(aid, "work", "w-1", "failed", notes="after confirming")
    publish(stack, publisher, ev)
    got = mails(stack, to, 2, timeout=60)
    assert len(got) == 2 and f"Event id: {ev.id}" in got[1].body  # the alert of w-0 stays dropped
    assert got[1].message["List-Unsubscribe"].startswith("<http://127.0.0.1:")
    assert got[1].message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_an_allowed_domain_needs_no_confirmation_and_unsubscribing_stops_the_mail(
    stack, store, publisher, firestore_client, aid
):
    allow_email_domain(firestore_client, aid, "example.net")
    to, stranger = f"ops-{aid}@alerts.example.net", f"d-{aid}@example.org"
    job = email_job(f"{aid}-domain", aid, [to, stranger])
    put_jobs(stack, store, job)
    publish(stack, publisher, new_event(aid, "work", "w-1", "failed"))
    [alert] = mails(stack, to, 1, timeout=60)
    assert alert.subject.startswith("[sysevents] work w-1 failed") and alert.message["To"] == to
    [ask] = mails(stack, stranger, 1, timeout=30)  # the other recipient is asked, and gets no alert
    assert "Confirm" in ask.subject
    stop = alert.message["List-Unsubscribe"].strip("<>")
    assert f"Stop these emails: {stop}" in alert.body

    one_click = requests.post(stop, data={"List-Unsubscribe": "One-Click"}, timeout=30)  # RFC 8058
    assert one_click.status_code == 200 and "Unsubscribed" in one_click.text
    publish(stack, publisher, new_event(aid, "work", "w-2", "failed"))
    last = wait_until(lambda: [a for a in attempts(firestore_client, job) if a["outcome"] == "filtered"], 60)
    assert f"{to}: unsubscribed" in last[0]["error"]
    assert mails(stack, to, 2, timeout=3) == [alert] and len(mails(stack, stranger, 2, timeout=1)) == 1


def test_a_confirmation_in_one_account_confirms_nothing_in_another(stack, store, publisher, aid):
    to, other = f"e-{aid}@example.org", f"{aid}-other"
    put_jobs(stack, store, email_job(f"{aid}-mine", aid, [to]))
    publish(stack, publisher, new_event(aid, "work", "w-1", "failed"))
    [ask] = mails(stack, to, 1, timeout=60)
    assert requests.post(links(ask)[0], timeout=30).status_code == 200

    put_jobs(stack, store, email_job(f"{aid}-theirs", other, [to]))
    publish(stack, publisher, new_event(other, "work", "w-2", "failed"))
    got = mails(stack, to, 2, timeout=60)
    assert len(got) == 2 and got[1].subject == f"[sysevents] Confirm alert emails from account {other}"
    assert not mails(stack, to, 3, timeout=3)[2:]


def test_the_daily_quota_dead_letters_a_flood_with_its_reason(
    stack, store, publisher, subscriber, fresh_subscription, aid
):
    operator = {"X-API-Key": stack.operator_key}
    url = stack.function_urls["admin"].rstrip("/")
    r = requests.post(f"{url}/accounts", json={"aid": aid}, headers=operator, timeout=30)
    assert r.status_code == 201, r.text
    policy = {"allowed_domains": ["example.com"], "daily_quota": 3}
    r = requests.put(f"{url}/email-policies", json={"aid": aid, **policy}, headers=operator, timeout=30)
    assert r.status_code == 200 and r.json()["daily_quota"] == 3, r.text
    dead_letters = fresh_subscription(stack.topology.sinks["email"].dead_letter_topic)
    to = f"quota-{aid}@example.com"
    job = email_job(f"{aid}-quota", aid, [to])
    put_jobs(stack, store, job)
    publish(stack, publisher, *[new_event(aid, "work", f"w-{i}", "failed") for i in range(6)])

    dead = pull(subscriber, dead_letters, 3, timeout=60, aid=aid)
    assert len(dead) == 3
    assert all(
        m.attributes["reason"].startswith("over the account's daily email quota (3 emails") for m in dead
    )
    assert all(m.attributes["attempts"] == "1" for m in dead)
    time.sleep(1)
    assert len(mails(stack, to, 4, timeout=2)) == 3


def test_an_edit_mails_only_the_email_jobs_that_name_the_edited_job(
    stack, store, publisher, firestore_client, aid
):
    allow_email_domain(firestore_client, aid)
    env = api_account(stack, aid)
    url, key = env["SYSEVENTS_API_URL"], {"X-API-Key": env["SYSEVENTS_API_KEY"]}
    edited = {"workflow": "email_system_events", "config": {"recipients": [f"x-{aid}@example.com"],
              "system_event_type": "failed"}}  # fmt: skip
    r = requests.post(f"{url}/accounts/{aid}/jobs", json=edited, headers=key, timeout=30)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    watching, naming = f"all-{aid}@example.com", f"named-{aid}@example.com"
    put_jobs(
        stack,
        store,
        email_job(
            f"{aid}-all", aid, [watching], system_event_type="updated", system_event_sources={"work": []}
        ),
        email_job(
            f"{aid}-named",
            aid,
            [naming],
            system_event_type="updated",
            system_event_sources={"work": [job_id]},
        ),
    )
    r = requests.patch(
        f"{url}/accounts/{aid}/jobs/{job_id}", json={"name": "renamed"}, headers=key, timeout=30
    )
    assert r.status_code == 200, r.text
    [mail] = mails(stack, naming, 1, timeout=60)  # the lifecycle event went through ingest (its seal held)
    assert mail.subject == f"[sysevents] work {job_id} updated (account {aid})"
    assert mails(stack, watching, 1, timeout=3) == []
