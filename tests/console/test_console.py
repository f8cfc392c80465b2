"""The web console in a real browser (Debian's chromium driven by Playwright) against the local stack."""

from __future__ import annotations

import re
import shutil

import pytest
import requests

from sysevents.events.model import new_event

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
]
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


@pytest.fixture(scope="module")
def admin_url(stack) -> str:
    return stack.function_urls["admin"].rstrip("/")


def new_account(stack, admin_url: str, aid: str) -> str:
    operator = {"X-API-Key": stack.operator_key}
    r = requests.post(
        f"{admin_url}/accounts", json={"aid": aid, "name": f"console {aid}"}, headers=operator, timeout=30
    )
    assert r.status_code == 201, r.text
    r = requests.post(
        f"{admin_url}/accounts/{aid}/keys", json={"name": "console"}, headers=operator, timeout=30
    )
    assert r.status_code == 201, r.text
    return r.json()["key"]


def sign_in(page, admin_url: str, key: str) -> None:
    page.goto(f"{admin_url}/console/")
    page.fill("#signin-key", key)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#jobs-table")


def jobs_table(page) -> str:
    """The job list's text, once its rows have loaded."""
    page.wait_for_selector("#jobs-table tbody tr")
    return page.inner_text("#jobs-table")


def start_webhook_job(page, url: str, name: str) -> None:
    page.click("text=New job")
    page.click("[data-tile=audit-logs]")
    page.click("[data-tile=webhook]")
    page.fill("#job-name", name)
    page.check("[data-type=work]")
    page.fill("#webhook-url", url)


def test_create_a_job_in_the_ui_and_see_its_delivery(stack, page, admin_url, receiver, publisher, aid):
    key = new_account(stack, admin_url, aid)
    sign_in(page, admin_url, key)
    start_webhook_job(page, receiver.url("/console"), "Failures to my webhook")
    page.wait_for_selector("#preview:has-text('specversion')")
    page.click("#job-form button[type=submit]")
    page.wait_for_selector("h1:has-text('Failures to my webhook')")
    job_id = page.url.rsplit("/", 1)[-1]

    ev = new_event(aid, "work", "w-console", "failed", notes="from the console test")
    stack.wait_for_job_caches(since=_job_updated_at(admin_url, key, aid, job_id))
    publisher.publish_all([(stack.topology.ingest_topic, ev.to_json(), {})])
    [got] = receiver.wait_for("/console", 1, timeout=60)
    assert got.json()["id"] == ev.id

    for _ in range(30):  # the delivery log is written as the delivery completes: reload until it shows
        page.reload()
        page.wait_for_selector("#attempts")
        if page.locator(f"#attempts code:text-is('{ev.id}')").count():
            break
        page.wait_for_timeout(500)
    row = page.locator("#attempts tr.attempt", has=page.locator(f"code:text-is('{ev.id}')"))
    assert "delivered" in row.inner_text()
    for _ in range(30):  # the preview reads the audit log, which the audit sink writes as the event passes
        page.click("#run-preview")
        page.wait_for_selector("#history-preview [data-preview=matched], #history-preview .error")
        if page.locator("#history-preview [data-preview=matched] b").inner_text() == "1":
            break
        page.wait_for_timeout(500)
    assert page.locator("#history-preview [data-preview=notifications] b").inner_text() == "1"
    page.click("text=Jobs")
    page.wait_for_selector(f"tr[data-job='{job_id}']")
    assert "active" in page.locator(f"tr[data-job='{job_id}']").inner_text()


def _job_updated_at(admin_url, key, aid, job_id):
    from datetime import datetime

    r = requests.get(f"{admin_url}/accounts/{aid}/jobs/{job_id}", headers={"X-API-Key": key}, timeout=30)
    assert r.status_code == 200, r.text
    return datetime.fromisoformat(r.json()["updated_at"])


def test_a_bad_template_shows_its_error(stack, page, admin_url, receiver, aid):
    sign_in(page, admin_url, new_account(stack, admin_url, aid))
    start_webhook_job(page, receiver.url("/never"), "Broken template")
    page.fill("#json-template", '{"text": event.data.subject_id +}')
    page.wait_for_selector("#preview:has-text('syntax error')")
    assert re.search(r"json_template:1:\d+", page.inner_text("#preview"))
    page.click("#job-form button[type=submit]")
    error = page.wait_for_selector("#job-form .error")
    assert "json_template" in error.inner_text() and "syntax error" in error.inner_text()
    page.click("text=Jobs")
    assert "No jobs yet" in jobs_table(page)


def test_another_accounts_key_sees_nothing_of_the_first(stack, page, admin_url, aid):
    first_key = new_account(stack, admin_url, aid)
    job = {
        "workflow": "webhook_system_events",
        "name": "first account's job",
        "config": {"system_event_type": "failed", "webhook_url": "https://8.8.8.8/hook"},
    }
    r = requests.post(
        f"{admin_url}/accounts/{aid}/jobs", json=job, headers={"X-API-Key": first_key}, timeout=30
    )
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]

    sign_in(page, admin_url, new_account(stack, admin_url, aid + "-b"))
    assert "No jobs yet" in jobs_table(page)
    assert "first account's job" not in page.content()
    page.goto(f"{admin_url}/console/#/jobs/{job_id}")
    error = page.wait_for_selector(".error")
    assert "not found" in error.inner_text().lower()
    assert "first account's job" not in page.content()


def test_an_invalid_key_is_refused(stack, page, admin_url):
    page.goto(f"{admin_url}/console/")
    page.fill("#signin-key", "sek_not_a_real_key")
    page.click("#signin-form button[type=submit]")
    assert "not valid" in page.wait_for_selector("#signin-error").inner_text()


def test_signed_out_shows_only_the_sign_in_form(stack, page, admin_url, aid):
    page.goto(f"{admin_url}/console/")
    page.wait_for_selector("#signin-form")
    assert page.get_attribute("#signin-key", "placeholder").startswith("sek_")
    assert not page.is_visible("#nav") and not page.is_visible("#who")
    assert not page.get_by_text("Sign out").is_visible() and not page.get_by_text("New job").is_visible()

    sign_in(page, admin_url, new_account(stack, admin_url, aid))
    assert page.is_visible("#nav") and page.get_by_text("Sign out").is_visible()
    page.click("#signout")
    page.wait_for_selector("#signin-form")
    assert not page.is_visible("#nav") and not page.get_by_text("Sign out").is_visible()


def test_the_admin_function_names_itself(admin_url):
    """The stack's readiness check wants each function's `GET /` to name it."""
    r = requests.get(f"{admin_url}/", timeout=30)
    assert r.status_code == 200 and r.json()["function"] == "admin"


def test_the_job_form_checks_a_content_filter_live_and_saves_it(stack, page, admin_url, receiver, aid):
    key = new_account(stack, admin_url, aid)
    sign_in(page, admin_url, key)
    start_webhook_job(page, receiver.url("/never"), "Filtered")
    page.fill("#job-filter", "event.verb ==")
    page.wait_for_selector("#filter-check.bad:has-text('filter: line 1, column 14: Syntax error')")
    page.fill("#job-filter", 'event.data.notes.contains("permission")')
    page.fill("#job-exclude", 'event.data.actor == "sync-bot"\n\nevent.data.a.exists(x, event.data.b == x)')
    page.wait_for_selector("#filter-check.bad:has-text('exclude[1]: line 1, column 24')")
    page.fill("#job-exclude", 'event.data.actor == "sync-bot"')
    page.wait_for_selector("#filter-check:has-text('Filter OK')")
    page.click("#job-form button[type=submit]")
    page.wait_for_selector("h1:has-text('Filtered')")
    job_id = page.url.rsplit("/", 1)[-1]
    r = requests.get(f"{admin_url}/accounts/{aid}/jobs/{job_id}", headers={"X-API-Key": key}, timeout=10)
    assert r.json()["config"]["filter"] == 'event.data.notes.contains("permission")'
    assert r.json()["config"]["exclude"] == ['event.data.actor == "sync-bot"']


def test_an_absence_job_page_shows_its_condition_armed(stack, page, admin_url, aid):
    key = new_account(stack, admin_url, aid)
    job = {
        "workflow": "webhook_system_events",
        "name": "nightly export ran",
        "config": {
            "webhook_url": "https://8.8.8.8/hook",
            "absence": {
                "expect": {
                    "system_event_type": "completed",
                    "system_event_sources": {"work": ["nightly-export"]},
                },
                "within": "2h",
            },
        },
    }
    r = requests.post(f"{admin_url}/accounts/{aid}/jobs", json=job, headers={"X-API-Key": key}, timeout=30)
    assert r.status_code == 201, r.text
    sign_in(page, admin_url, key)
    page.goto(f"{admin_url}/console/#/jobs/{r.json()['id']}")
    row = page.wait_for_selector("#conditions tr.condition")
    assert row.get_attribute("data-state") == "armed" and "Absence" in page.inner_text(
        "h2:has-text('Absence')"
    )
    assert (
        page.locator("#conditions tr.condition td").nth(4).inner_text() != "—"
    )  # its next check (the deadline)
