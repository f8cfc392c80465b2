"""Replay: publish a job's dead-lettered deliveries to its sink topic again, for any workflow.

Each replayed delivery is re-addressed to the job as it is now (its current version and generation; the
list belongs to the current generation, so nothing of an earlier job with the same id is replayed),
keeps its delivery id (`webhook-id`), leaves the dead-letter list (it is back in the pipeline, and back
there if it fails again) and starts again at attempt 1 (the attempt number travels with the message). Webhook jobs may ask for an older version's
template (`template_version`). An account has at most `account_max_replays` replays running at once.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from sysevents.delivery.message import BadDelivery, Delivery
from sysevents.jobs.model import Job

if TYPE_CHECKING:
    from sysevents.runtime import Runtime

log = logging.getLogger("sysevents.replay")
REPLAY_TEMPLATE_ATTR = "template_version"


def replay(
    rt: Runtime,
    job: Job,
    *,
    since: datetime | None = None,
    template_version: int | None = None,
    limit: int = 1000,
) -> list[str]:
    """Replay the job's dead letters (all, or those dead-lettered since a time); returns their ids. Holds
    one of the account's places for replays (sysevents.shares.accounts): AtShare when all are taken."""
    with rt.shares.replays.held(job.aid):
        return _replay(rt, job, since=since, template_version=template_version, limit=limit)


def _replay(
    rt: Runtime, job: Job, *, since: datetime | None, template_version: int | None, limit: int
) -> list[str]:
    topic = rt.topology.sinks[job.sink].topic
    done = []
    for item in rt.accounting.dead_letters(job, since=since, limit=limit):
        try:
            old = Delivery.from_json(item["data"].encode())
        except BadDelivery as err:
            log.warning(
                "replay: job %s/%s: dead letter %s is not a delivery: %s",
                job.aid,
                job.id,
                item["webhook_id"],
                err,
            )
            continue
        if old.event.aid != job.aid:  # never another account's event, whatever the list holds
            continue
        delivery = Delivery.of(old.event, job)
        attrs = {**delivery.attributes(), "replay": "1"}
        if template_version is not None:
            attrs[REPLAY_TEMPLATE_ATTR] = str(template_version)
        rt.publisher.publish_all([(topic, delivery.to_json(), attrs, job.ordering_key(delivery.event))])
        rt.accounting.forget_dead_letter(job, item["webhook_id"])
        done.append(item["webhook_id"])
    return done
