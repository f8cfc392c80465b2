"""Email templates run in the template sandbox: bounded time and memory, at save time and at delivery."""

import pytest
import requests
from helpers import allow_email_domain, pull

from sysevents.alerts.digest import link_for, sample_digest
from sysevents.events.model import new_event
from sysevents.jobs.registry import job_from_dict
from sysevents.jobs.store import JobStore
from sysevents.sinks.email.render import check, render_digest, render_single
from sysevents.templates import SAMPLE_EVENT, TemplateError, render_value
from sysevents.templates.sandbox import Sandbox

BOMB = "std.makeArray(1e8, function(i) i)"
SPIN = "std.toString(std.foldl(function(a, b) a + b, std.range(1, 1e9), 0))"
SINK = "email"  # the `dead_letters` fixture's sink


@pytest.fixture
def sandbox():
    s = Sandbox(workers=1, timeout=1.0, memory_mb=512)
    yield s
    s.close()


def test_render_value_in_the_sandbox_matches_in_process_and_keeps_line_numbers(sandbox):
    scope = {"event": SAMPLE_EVENT, "link": "https://x"}
    template = '{s: "%s at %s" % [event.data.subject_id, link]}'
    assert sandbox.render_value(template, scope, name="t") == render_value(template, scope, name="t")
    with pytest.raises(TemplateError, match=r"body_template:2:"):
        sandbox.render_value('"a" +\nerror "x"', scope, name="body_template")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (BOMB, "memory limit"),
        (SPIN, "did not finish within 1 s"),
        ("local f(n) = if n == 0 then 0 else 1 + f(n - 1); f(100000)", "stack overflow"),
    ],
)
def test_runaway_email_templates_fail_clearly_and_the_sandbox_keeps_serving(sandbox, template, message):
    if "did not finish" not in message:
        sandbox.timeout = 60.0  # only the time-limit case may be stopped by the clock on a loaded machine
    link = link_for(SAMPLE_EVENT)
    with pytest.raises(TemplateError, match=message):
        render_single(None, template, SAMPLE_EVENT, link, evaluate=sandbox.render_value)
    email = render_single('"S " + event.data.verb', None, SAMPLE_EVENT, link, evaluate=sandbox.render_value)
    assert email.subject == "S failed" and "Work work-id-1 failed" in email.body
    digest = render_digest(
        '{subject: "%d" % digest.count, body: "b"}', sample_digest({}), evaluate=sandbox.render_value
    )
    assert (digest.subject, digest.body) == ("2", "b")


def test_save_time_check_refuses_a_runaway_template_in_bounded_time(sandbox):
    with pytest.raises(TemplateError, match="did not finish within 1 s"):
        check(None, SPIN, None, evaluate=sandbox.render_value)
    check('"ok"', '"fine"', None, evaluate=sandbox.render_value)


def test_loading_an_email_job_renders_no_template_and_starts_no_sandbox(monkeypatch):
    # Every function's job cache loads every job: loading must not run (or even start) the sandbox.
    from sysevents.sinks.email import render
    from sysevents.templates import sandbox

    def refuse(*args, **kwargs):
        raise AssertionError("a template was checked or a sandbox started while loading a job")

    monkeypatch.setattr(render, "check", refuse)
    monkeypatch.setattr(sandbox, "Sandbox", refuse)
    monkeypatch.setattr(sandbox, "_Worker", refuse)
    job = job_from_dict(
        {
            "workflow": "email_system_events",
            "config": {
                "system_event_type": "failed",
                "recipients": ["a@example.com"],
                "subject_template": "nope +",
                "body_template": SPIN,
                "digest_template": BOMB,
            },
        },
        job_id="j",
        aid="12",
    )
    assert job.config.body_template == SPIN


@pytest.mark.integration
@pytest.mark.parametrize(
    ("field", "template", "message"),
    [
        ("body_template", SPIN, "template did not finish within"),
        ("subject_template", '"a" +\nerror "no subject"', "subject_template:2:"),
        ("digest_template", '{subject: "s"}', "digest_template must evaluate to {subject"),
    ],
)
def test_saving_an_email_job_with_a_bad_template_is_refused_naming_the_field(
    stack, aid, field, template, message
):
    api = stack.function_urls["admin"].rstrip("/")
    operator = {"X-API-Key": stack.operator_key}
    requests.post(f"{api}/accounts", json={"aid": aid, "name": "t"}, headers=operator, timeout=30)
    r = requests.post(
        f"{api}/accounts/{aid}/jobs",
        headers=operator,
        timeout=60,
        json={
            "workflow": "email_system_events",
            "config": {"system_event_type": "failed", "recipients": ["a@example.com"], field: template},
        },
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["field"] == f"config.{field}"
    assert (
        error["message"].startswith("does not render against a sample event: ")
        and message in error["message"]
    )


@pytest.mark.integration
def test_runaway_email_template_is_dead_lettered_and_does_not_stall_other_deliveries(
    stack, firestore_client, publisher, subscriber, dead_letters, aid
):
    # Passes the save-time check (the sample event has other notes) but runs away on the "boom" event.
    runaway = f'if event.data.notes == "boom" then {BOMB} else "fine: " + event.data.subject_id'
    spinner = f'if event.data.notes == "spin" then {SPIN} else "fine: " + event.data.subject_id'
    store = JobStore(firestore_client)
    allow_email_domain(firestore_client, aid)  # the recipients need no confirmation
    bad_to, fine_to = f"bad-{aid}@example.com", f"fine-{aid}@example.com"
    for job_id, to, body in ((f"{aid}-bad", bad_to, runaway), (f"{aid}-spin", bad_to, spinner)):
        store.put(
            job_from_dict(
                {
                    "workflow": "email_system_events",
                    "config": {"system_event_type": "failed", "recipients": [to], "body_template": body},
                },
                job_id=job_id,
                aid=aid,
            )
        )
    store.put(
        job_from_dict(
            {
                "workflow": "email_system_events",
                "config": {"system_event_type": "failed", "recipients": [fine_to]},
            },
            job_id=f"{aid}-fine",
            aid=aid,
        )
    )
    stack.wait_for_job_caches(since=store.last_write_time)
    boom = new_event(aid, "work", "w-boom", "failed", notes="boom")
    spin = new_event(aid, "work", "w-spin", "failed", notes="spin")
    calm = [new_event(aid, "work", f"w-{i}", "failed", notes="calm") for i in range(3)]
    publisher.publish_all([(stack.topology.ingest_topic, e.to_json(), {}) for e in (boom, spin, *calm)])

    # The job without custom templates gets all five; each runaway job still emails the other four.
    assert len(stack.smtp.wait_for(stack.smtp.to(fine_to), 5, timeout=90)) == 5
    bodies = [m.body.strip() for m in stack.smtp.wait_for(stack.smtp.to(bad_to), 8, timeout=90)]
    assert sorted(bodies) == sorted([f"fine: w-{i}" for i in range(3)] * 2 + ["fine: w-boom", "fine: w-spin"])
    msgs = pull(subscriber, dead_letters, 2, timeout=120)
    got = {(m.attributes["job_id"], m.attributes["event_id"]): m.attributes["reason"] for m in msgs}
    assert set(got) == {(f"{aid}-bad", boom.id), (f"{aid}-spin", spin.id)}
    assert all(r.startswith("template error: template ") for r in got.values())
    assert "did not finish within" in got[(f"{aid}-spin", spin.id)]
    assert any(w in got[(f"{aid}-bad", boom.id)] for w in ("memory limit", "did not finish within"))
