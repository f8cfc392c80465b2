"""The `sysevents` command: publish events, run the local stack."""

from __future__ import annotations

import json
import os
import sys

import click

from sysevents.cli.alerts import alerts
from sysevents.cli.common import DEV_DIR, use_dev_stack_env
from sysevents.cli.export import export
from sysevents.cli.filters import filters
from sysevents.cli.jobs import jobs
from sysevents.cli.keys import keys
from sysevents.cli.quarantine import quarantine
from sysevents.cli.status import status
from sysevents.events.model import SUBJECT_TYPES, VERBS, InvalidEvent, event_ordering_key, new_event
from sysevents.events.producers import new_key, sign
from sysevents.obs.logs import TRACEPARENT_ATTR, new_traceparent


@click.group()
@click.version_option(package_name="sysevents")
def main() -> None:
    """sysevents: capture system events and run export and alert jobs on them."""


@main.command()
@click.option("--aid", help="Account id.")
@click.option(
    "--subject-type",
    "subject_type",
    type=click.Choice(SUBJECT_TYPES),
    metavar="TYPE",
    help="One of: " + ", ".join(SUBJECT_TYPES) + ".",
)
@click.option("--subject-id", "subject_id", help="Id of the subject the event is about.")
@click.option(
    "--verb",
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
@click.option("--producer", envvar="SYSEVENTS_PRODUCER", help="Producer id to sign as (SYSEVENTS_PRODUCERS).")
@click.option("--producer-key", "producer_key", envvar="SYSEVENTS_PRODUCER_KEY", help="That producer's key.")
def publish(
    aid, subject_type, subject_id, verb, actor, notes, extra, project, topic, raw, producer, producer_key
):
    """Publish one system event to Pub/Sub (the local stack's emulator when `sysevents dev` runs).

    --aid, --subject-type, --subject-id and --verb are required, except with --raw. With --producer and
    --producer-key the message is signed for --aid (a deployment that binds producers to accounts admits
    only signed events)."""
    from sysevents.topology import load
    from sysevents.transport.pubsub import Publisher

    use_dev_stack_env()
    project = project or os.environ.get("SYSEVENTS_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not project:
        raise click.UsageError("no project: pass --project or set GOOGLE_CLOUD_PROJECT")
    topic = topic or load().ingest_topic
    if raw:
        if extra is None:
            raise click.UsageError("--raw publishes the bytes of --data: pass --data '...'")
        payload = extra.encode()
    else:
        missing = [f"--{n.replace('_', '-')}" for n, v in
                   (("aid", aid), ("subject_type", subject_type), ("subject_id", subject_id), ("verb", verb)) if not v]  # fmt: skip
        if missing:
            raise click.UsageError(f"missing option(s) {', '.join(missing)} (or use --raw --data '...')")
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
    key = "" if raw else event_ordering_key(event)  # a subject's events stay in order all the way
    trace = {TRACEPARENT_ATTR: new_traceparent()}  # the event's trace starts here
    if producer or producer_key:
        if not (producer and producer_key and aid):
            raise click.UsageError("signing needs --producer, --producer-key and --aid")
        trace.update(sign(producer, producer_key, aid, payload))
    [message_id] = Publisher(project).publish_all([(topic, payload, trace, key)])
    click.echo(f"published message {message_id} to {topic}" + ("" if raw else f" (event {event.id})"))


@main.command("producer-key")
def producer_key() -> None:
    """Print a new producer key (for SYSEVENTS_PRODUCER_KEYS and the producer's own secret)."""
    click.echo(new_key())


@main.command()
@click.option("--project", envvar=["SYSEVENTS_PROJECT", "GOOGLE_CLOUD_PROJECT"], help="Google Cloud project.")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
def redrive(project, limit) -> None:
    """Publish the events ingest dead-lettered (after an outage) to the ingest topic again.

    Each is acknowledged in the dead letters only once Pub/Sub took its copy; run it again for more."""
    from sysevents.topology import load
    from sysevents.transport.redrive import hold_subscription
    from sysevents.transport.redrive import redrive as run

    use_dev_stack_env()
    project = project or os.environ.get("SYSEVENTS_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not project:
        raise click.UsageError("no project: pass --project or set GOOGLE_CLOUD_PROJECT")
    topology = load()
    done = run(project, topology, limit=limit)
    click.echo(f"published {done.published} event(s) from {hold_subscription(topology)} to {topology.ingest_topic}"
               + (" (limit reached: run it again for more)" if done.published >= limit else ""))  # fmt: skip


@main.command()
@click.option("--once", is_flag=True, help="Run the demo, then stop (instead of waiting for Ctrl-C).")
@click.option("--no-bigquery", is_flag=True, help="Do not start the BigQuery emulator.")
def dev(once: bool, no_bigquery: bool) -> None:
    """Run the whole pipeline locally: emulators, functions, demo jobs, sample events."""
    from sysevents.local.demo import run

    sys.exit(run(once=once, bigquery=not no_bigquery, state_dir=DEV_DIR))


for group in (jobs, keys, export, alerts, quarantine, status, filters):
    main.add_command(group)

if __name__ == "__main__":
    main()
