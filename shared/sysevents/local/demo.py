"""`sysevents dev`: the local stack with demo jobs, sample events, and the deliveries shown as they arrive."""

from __future__ import annotations

import json
import signal
import threading
import time
from datetime import datetime
from pathlib import Path

import click

from sysevents.events.model import new_event
from sysevents.local.receiver import Received, Receiver
from sysevents.local.stack import LocalStack

DEMO_AID = "12"
SLACK_TEMPLATE = (
    'local note = if std.objectHas(event.data, "notes") then event.data.notes else "A work failed"; '
    '{"text": "Alert notification: " + note + ". For more info go to: '
    'https://activate.getlytics.com/data/integrations/work/%s?aid=%s" % [event.data.subject_id, event.data.aid] }'
)


def demo_jobs(receiver: Receiver) -> list[dict]:
    """Two jobs from the seed: a plain webhook export, and the Slack alert template."""
    return [
        {
            "id": "demo-webhook-export",
            "name": "Export work and segment changes to a webhook",
            "workflow": "webhook_system_events",
            "config": {
                "system_event_multiple_types": ["updated", "created", "failed"],
                "system_event_sources": {"work": [], "segment": []},
                "webhook_url": receiver.url("/export"),
                "headers": {"X-Demo": "export"},
            },
        },
        {
            "id": "demo-slack-alert",
            "name": "Slack alert when work-id-1 fails",
            "workflow": "webhook_system_events",
            "config": {
                "system_event_type": "failed",
                "system_event_sources": {"work": ["work-id-1"]},
                "webhook_url": receiver.url("/slack"),
                "json_template": SLACK_TEMPLATE,
            },
        },
    ]


SAMPLE_EVENTS = [
    ("work", "work-id-1", "created", {"actor": "user-7"}),
    ("work", "work-id-1", "failed", {"notes": "Export to warehouse failed: permission denied"}),
    ("work", "work-id-2", "failed", {}),
    ("segment", "seg-42", "updated", {"actor": "user-7"}),
    ("user", "user-7", "created", {}),  # matches no job
]


def _show(item: Received) -> None:
    click.echo(
        click.style(f"  <- {item.path} ", fg="green") + item.body.decode(errors="replace").replace("\n", " ")
    )


def run(*, once: bool, bigquery: bool, state_dir: Path) -> int:
    state_dir.mkdir(parents=True, exist_ok=True)
    click.echo(
        "Starting the local stack (Pub/Sub and Firestore emulators"
        + (", BigQuery emulator" if bigquery else "")
        + ", functions)..."
    )
    stack = LocalStack(state_dir / "run", bigquery=bigquery, echo_smtp=True)
    receiver = Receiver(on_receive=_show)
    stop = threading.Event()
    try:
        stack.start()
        receiver.start()
        with stack.environment():
            stack.write_env_file(state_dir / "stack.json")
            _report(stack, receiver)
            _seed_and_publish(stack, receiver, state_dir)
            if once:
                return 0
            click.echo(
                "\nPublish more from another shell, e.g.:\n"
                "  .venv/bin/sysevents publish --aid 12 --subject-type work --subject-id work-id-1 "
                "--verb failed --notes 'disk full'\n"
                "Logs: " + str(stack.workdir / "logs") + "\nCtrl-C stops everything."
            )
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            try:
                while not stop.wait(1):
                    pass
            except KeyboardInterrupt:
                pass
            return 0
    finally:
        click.echo("\nStopping...")
        receiver.stop()
        stack.stop()
        (state_dir / "stack.json").unlink(missing_ok=True)
        (state_dir / "admin.json").unlink(missing_ok=True)


def _report(stack: LocalStack, receiver: Receiver) -> None:
    click.echo(f"Up in {stack.started_in:.1f}s:")
    for p in stack.processes:
        click.echo(f"  {p.name:<20} pid {p.pid}")
    for k, v in stack.env.items():
        if k.endswith(("_HOST", "_ENDPOINT")):
            click.echo(f"  {k}={v}")
    for name, url in stack.function_urls.items():
        click.echo(f"  function {name:<12} {url}")
    if "admin" in stack.function_urls:
        click.echo(f"  web console           {stack.function_urls['admin']}console/")
    if stack.smtp is not None:
        click.echo(f"  SMTP server           127.0.0.1:{stack.smtp.port} (emails print here)")
    click.echo(f"  demo receiver         {receiver.url('/')}")


def _seed_through_admin_api(stack: LocalStack, receiver: Receiver, state_dir: Path) -> list[dict]:
    """Seed the demo like a user would: operator key -> account 12 and its key -> jobs over HTTP. Leaves
    the key in state_dir/admin.json (mode 0600) so `sysevents jobs ...` works against this stack."""
    import requests

    api = stack.function_urls["admin"].rstrip("/")
    operator = {"X-API-Key": stack.operator_key}

    def call(method: str, path: str, headers: dict, **kw) -> dict:
        r = requests.request(method, api + path, headers=headers, timeout=30, **kw)
        if r.status_code >= 400:
            raise click.ClickException(f"admin API {method} {path}: HTTP {r.status_code} {r.text}")
        return r.json()

    call("POST", "/accounts", operator, json={"aid": DEMO_AID, "name": "Demo account"})
    key = call(
        "POST", f"/accounts/{DEMO_AID}/keys", operator, json={"name": "sysevents dev", "scope": "admin"}
    )["key"]
    admin_file = state_dir / "admin.json"
    admin_file.touch(mode=0o600)
    admin_file.write_text(
        json.dumps({"url": api + "/", "aid": DEMO_AID, "key": key, "operator_key": stack.operator_key})
    )
    click.echo(
        f"\nAccount {DEMO_AID}'s API key (scope admin; also in {admin_file}):\n  {key}\n"
        f"Sign in to the web console with it: {api}/console/"
    )
    click.echo(f"\nDemo jobs (account {DEMO_AID}), created through the admin API:")
    jobs = []
    for doc in demo_jobs(receiver):
        job = call("POST", f"/accounts/{DEMO_AID}/jobs", {"X-API-Key": key}, json=doc)
        click.echo(f"  {job['id']} v{job['version']}: {job['name']}")
        jobs.append(job)
    click.echo("  (try: .venv/bin/sysevents jobs list; each change publishes a work lifecycle event)")
    return jobs


def _seed_and_publish(stack: LocalStack, receiver: Receiver, state_dir: Path) -> None:
    from sysevents.transport.pubsub import Publisher

    jobs = _seed_through_admin_api(stack, receiver, state_dir)
    publisher = Publisher(stack.project)
    stack.wait_for_job_caches(max(datetime.fromisoformat(j["updated_at"]) for j in jobs))
    click.echo("\nPublishing sample events:")
    messages = []
    for st, sid, verb, extra in SAMPLE_EVENTS:
        event = new_event(DEMO_AID, st, sid, verb, **extra)
        click.echo(f"  -> {st}/{sid} {verb}")
        messages.append((stack.topology.ingest_topic, event.to_json(), {}))
    messages.append(
        (stack.topology.ingest_topic, b'{"aid": "12", "subject_type": "planet", "verb": "exploded"}', {})
    )
    click.echo("  -> an invalid event (unknown subject type; goes to quarantine)")
    publisher.publish_all(messages)
    click.echo("\nDeliveries:")
    receiver.wait_for("/export", 4, timeout=30)
    receiver.wait_for("/slack", 1, timeout=10)
    time.sleep(0.5)
    n = len(receiver.received)
    exported = [r.json() for r in receiver.at("/export")]
    lifecycle = sum(1 for e in exported if "sysevents_origin" in e.get("data", {}))
    click.echo(
        f"\n{n} deliveries arrived: {len(exported) - lifecycle} sample events on /export (expected 4), "
        f"{len(receiver.at('/slack'))} on /slack (expected 1)"
        + (f", and {lifecycle} lifecycle event(s) of the demo jobs on /export." if lifecycle else ".")
    )
    _show_quarantine(stack)
    _show_audit_log(stack, state_dir)
    _show_status()


def _show_status() -> None:
    """What `sysevents status` says of the stack now (the jobs' counts, the delay queue, the quarantine)."""
    from sysevents.obs.status import collect, render
    from sysevents.runtime import Runtime

    rt = Runtime()
    try:
        text = render(collect(rt), limit=5)
    finally:
        rt.close()
    click.echo("\n`sysevents status` (run it any time from another shell):")
    click.echo("\n".join("  " + line if line else "" for line in text.splitlines()))


def _show_audit_log(stack: LocalStack, state_dir: Path) -> None:
    """Every valid event also lands in the BigQuery audit table; read it back through the admin API."""
    import requests

    if "admin" not in stack.function_urls or "audit" not in stack.function_urls:
        return
    admin = json.loads((state_dir / "admin.json").read_text())
    url = f"{stack.function_urls['admin']}accounts/{DEMO_AID}/audit"
    events: list = []
    for _ in range(20):  # the audit function stores rows as they arrive; give it a moment
        r = requests.get(url, headers={"X-API-Key": admin["key"]}, params={"page_size": 50}, timeout=30)
        events = r.json().get("events", []) if r.ok else []
        if len(events) >= len(SAMPLE_EVENTS):
            break
        time.sleep(0.5)
    click.echo(
        f"Audit log (BigQuery, via GET /accounts/{DEMO_AID}/audit): {len(events)} events of account {DEMO_AID}"
    )
    for e in events[:8]:
        d = e.get("data", e)
        click.echo(f"  {e.get('time', '')}  {d.get('subject_type')}/{d.get('subject_id')} {d.get('verb')}")


def _show_quarantine(stack: LocalStack) -> None:
    from google.cloud import pubsub_v1

    sub = pubsub_v1.SubscriberClient()
    path = sub.subscription_path(stack.project, f"{stack.topology.quarantine_topic}-hold")
    resp = sub.pull(subscription=path, max_messages=10, timeout=10)
    click.echo("Quarantine:")
    for m in resp.received_messages:
        click.echo(
            f"  {m.message.data.decode(errors='replace')}\n    reason: {m.message.attributes.get('reason')}"
        )
    if not resp.received_messages:
        click.echo("  (empty)")
