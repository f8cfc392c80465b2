"""Email sink: email alert jobs through the alert engine (sysevents.alerts.engine) on the email channel.

`deliver` hands each event to the engine: dropped by a silence or mute window (filtered), taken into a
group or the rate limit's held-back digest (accepted: the group's timer is on the delay queue), a
resolution (`resolve_on`), or emailed now (delivered, retried or permanent, from the SMTP answer). A timer
notice flushes its group into one digest email. The envelope does the rest.

Routes: POST / takes Pub/Sub pushes of deliveries (and timers); POST /flush runs the safety-net sweep that
re-arms timers lost (Cloud Scheduler calls it every few minutes in production).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sysevents.alerts.engine import Notifier
from sysevents.alerts.watch import absence_job
from sysevents.delivery.attempt import Attempt
from sysevents.delivery.message import Delivery
from sysevents.delivery.outcome import Outcome
from sysevents.delivery.sink import Sink
from sysevents.jobs.model import Job, JobState
from sysevents.sinks.email.channel import EmailChannel
from sysevents.sinks.email.config import SINK, EmailConfig
from sysevents.sinks.email.consenting import Gatekeeper
from sysevents.sinks.email.mailer import Mailer
from sysevents.sinks.email.quota import QuotaStore

log = logging.getLogger("sysevents.email")


class EmailSink(Sink):
    name = SINK
    function = "email"

    def __init__(self, rt):
        super().__init__(rt)
        mailer = Mailer(rt.settings)
        quota = QuotaStore(rt.firestore, rt.settings.email_collection_prefix)
        gate_keeper = Gatekeeper(rt.settings, rt.consent, quota, mailer)
        channel = EmailChannel(rt.settings, mailer, rt.sandbox, gate_keeper)
        self.notifier = Notifier(rt, rt.topology.sinks[SINK], channel)

    def deliver(self, delivery: Delivery, job: Job, attempt: Attempt) -> Outcome:
        return self.notifier.deliver(delivery, job, attempt)

    def notice(self, delivery: Delivery, job: Job, attempt: Attempt) -> Outcome:
        return self.notifier.notice(delivery, job, attempt)

    def dead_lettered(self, delivery: Delivery, job: Job, reason: str) -> None:
        self.notifier.dead_lettered(delivery, job, reason)

    def routes(self):
        return {"/flush": lambda request: self.flush()}

    def _job_of_key(self, key: str) -> Job | None:
        aid, job_id, generation = key.split(":", 2)
        job = self.rt.cache.get(aid, job_id) or self.rt.jobs.get(aid, job_id)
        return job if job is not None and job.generation == generation else None

    def flush(self, now: datetime | None = None) -> dict[str, int]:
        """The safety net: re-arm the timers of overdue groups."""
        report = self.notifier.sweep(
            self._job_of_key, now or datetime.now(UTC), absence_jobs=lambda: self.rt.cache.jobs(absence_job)
        )
        if any(report.values()):
            log.info("email: sweep %s", report)
        return report


__all__ = ["EmailConfig", "EmailSink", "JobState"]
