"""The `sysevents` command: publish events, run the local stack."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from .events import SUBJECT_TYPES, VERBS, InvalidEvent, new_event

DEV_DIR = Path(".sysevents-dev")
DEV_ENV_FILE = DEV_DIR / "stack.json"


def use_dev_stack_env() -> dict | None:
    """When no emulator is configured, point the Google clients at a running `sysevents dev` stack."""
    if os.environ.get("PUBSUB_EMULATOR_HOST") or not DEV_ENV_FILE.exists():
        return None
    state = json.loads(DEV_ENV_FILE.read_text())
    for key, value in state["env"].items():
        os.environ.setdefault(key, value)
    return state


@click.group()
@click.version_option(package_name="sysevents")
def main() -> None:
    """sysevents: capture system events and run export and alert jobs on them."""


@main.command()
@click.option("--aid", required=True, help="Account id.")
@click.option(
    "--subject-type",
    "subject_type",
    required=True,
    type=click.Choice(SUBJECT_TYPES),
    metavar="TYPE",
    help="One of: " + ", ".join(SUBJECT_TYPES) + ".",
)
@click.option("--subject-id", "subject_id", required=True, help="Id of the subject the event is about.")
@click.option(
    "--verb",
    required=True,
    type=click.Choice([*VERBS, "update"]),
    metavar="VERB",
    help="One of: " + ", ".join(VERBS) + ".",
)
@click.option("--actor", help="Who did it (user or service id).")
@click.option("--notes", help="Free-form notes.")
@click.option("--data", "extra", help="Extra free-form fields, as a JSON object.")
@click.option("--project", envvar=["SYSEVENTS_PROJECT", "GOOGLE_CLOUD_PROJECT"], help="Google Cloud project.")
@click.option("--topic", help="Topic (default: the topology's ingest topic).")
@click.option(
    "--raw",
    is_flag=True,
    help="Publish --data as the message verbatim, without building an event (to try invalid input).",
)
def publish(aid, subject_type, subject_id, verb, actor, notes, extra, project, topic, raw) -> None:
    """Publish one system event to Pub/Sub (the local stack's emulator when `sysevents dev` runs)."""
    from .pubsub import Publisher
    from .topology import load

    use_dev_stack_env()
    project = project or os.environ.get("SYSEVENTS_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not project:
        raise click.UsageError("no project: pass --project or set GOOGLE_CLOUD_PROJECT")
    topic = topic or load().ingest_topic
    if raw:
        payload = (extra or "").encode()
    else:
        fields = {}
        if extra:
            try:
                fields = json.loads(extra)
            except json.JSONDecodeError as err:
                raise click.BadParameter(f"not JSON: {err}", param_hint="--data") from None
            if not isinstance(fields, dict):
                raise click.BadParameter("must be a JSON object", param_hint="--data")
        if notes:
            fields["notes"] = notes
        try:
            event = new_event(aid, subject_type, subject_id, verb, actor=actor, **fields)
        except InvalidEvent as err:
            raise click.UsageError(err.reason) from None
        payload = event.to_json()
    [message_id] = Publisher(project).publish_all([(topic, payload, {})])
    click.echo(f"published message {message_id} to {topic}" + ("" if raw else f" (event {event.id})"))


@main.command()
@click.option("--once", is_flag=True, help="Run the demo, then stop (instead of waiting for Ctrl-C).")
@click.option("--no-bigquery", is_flag=True, help="Do not start the BigQuery emulator.")
def dev(once: bool, no_bigquery: bool) -> None:
    """Run the whole pipeline locally: emulators, functions, demo jobs, sample events."""
    from .local.demo import run

    sys.exit(run(once=once, bigquery=not no_bigquery, state_dir=DEV_DIR))


from .cli_jobs import jobs, keys  # noqa: E402 - the admin API commands live in their own module

main.add_command(jobs)
main.add_command(keys)
main.add_command(__import__("sysevents.cli_export", fromlist=["export"]).export)  # sysevents export ...

from .alerts.cli import alerts  # noqa: E402 - `sysevents alerts`: ready-made alert jobs

main.add_command(alerts)

if __name__ == "__main__":
    main()
