"""Auto-disable: a webhook job whose deliveries keep failing is paused, with a `work failed` event.

A job is paused after `auto_disable_failures` consecutive failed attempts spanning at least
`auto_disable_seconds` (scaled by SYSEVENTS_TIME_SCALE) with no delivery in between, as Svix does. The
streak is kept on the job's state document (`job_state/{job key}`: `streak_failures`, `streak_since`); a
delivery recorded after the streak began resets it, so successes cost nothing extra (they write no
streak field). The `work failed` event counts one hop after the event whose delivery failed last, so
chains of alerts on failures end (sysevents.jobs.origin).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from google.cloud import firestore

from sysevents.delivery.accounting import DeliveryLog
from sysevents.delivery.message import Delivery
from sysevents.events.model import Verb
from sysevents.jobs import workevents
from sysevents.jobs.model import Job, JobState
from sysevents.jobs.store import JobNotFound

if TYPE_CHECKING:
    from sysevents.runtime import Runtime

log = logging.getLogger("sysevents.webhook")


class FailureStreak:
    def __init__(self, accounting: DeliveryLog):
        self.accounting = accounting

    def bump(self, job: Job) -> tuple[int, datetime]:
        """Count one more consecutive failure; returns (failures, since)."""
        ref = self.accounting.doc(job)
        now = datetime.now(UTC)
        last_ok = self.accounting.last_delivered_at(job)

        @firestore.transactional
        def bump(tx: firestore.Transaction) -> tuple[int, datetime]:
            snap = ref.get(transaction=tx)
            doc = snap.to_dict() if snap.exists else {}
            count, since = doc.get("streak_failures", 0), doc.get("streak_since")
            if since is None or (last_ok is not None and last_ok >= since):
                count, since = 0, now
            count += 1
            tx.set(ref, {"streak_failures": count, "streak_since": since}, merge=True)
            return count, since

        return bump(self.accounting.client.transaction())

    def reset(self, job: Job) -> None:
        self.accounting.doc(job).set({"streak_failures": 0, "streak_since": None}, merge=True)


def failed(rt: Runtime, streak: FailureStreak, job: Job, reason: str, delivery: Delivery) -> None:
    """One more failed attempt of the job's: pause it if the streak has reached the job's limits."""
    config = job.config
    limit = getattr(config, "auto_disable_failures", 0)
    if not limit:
        return
    failures, since = streak.bump(job)
    elapsed = (datetime.now(UTC) - since).total_seconds()
    window = rt.settings.scaled(config.auto_disable_seconds).total_seconds()
    if failures < limit or elapsed < window:
        return
    why = (
        f"auto-disabled: {failures} consecutive failed deliveries over {elapsed:.0f} s "
        f"(limit {limit} over {window:g} s); last: {reason}"
    )

    def pause(j: Job) -> Job | None:
        if j.state is JobState.PAUSED or j.generation != job.generation:
            return None  # paused already (by a concurrent failure, or a person), or not this job any more
        return j.model_copy(
            update={"state": JobState.PAUSED, "disabled_reason": why[:1000], "disabled_at": datetime.now(UTC)}
        )

    try:
        old, new = rt.jobs.change(job.aid, job.id, pause)
    except JobNotFound:
        return
    if new is old:
        return
    streak.reset(job)
    event = workevents.work_event(new, Verb.FAILED, notes=why, change="auto-disabled", cause=delivery.event)
    workevents.publish(rt, event)
    log.warning("webhook: job %s/%s paused: %s", job.aid, job.id, why)
