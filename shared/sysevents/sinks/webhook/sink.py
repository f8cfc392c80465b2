"""Webhook sink: render the job's template (or a replayed version's), POST it signed, classify the answer.

The envelope (sysevents.delivery.envelope) does everything around `deliver`. Here:
- its pace (sysevents.sinks.webhook.pacing): a job with a rate limit (`rate_limit`, or 1 per second for
  Slack webhook URLs), or whose receiver lately answered "slow down", reserves a slot for each delivery
  across instances and waits for it; a job's requests in flight are capped per instance; a "slow down"
  (429, or 503 with Retry-After) is a wait at a slot of the job's learned pace, never a failed attempt;
- the template: the job's, or the version a replay asked for (`template_version` attribute), kept per job
  version (sysevents.sinks.webhook.versions);
- batching: concurrent deliveries of a job with `batch_max_size` > 1 share one POST (a JSON array);
- after the envelope settled: auto-disable pauses a job whose deliveries keep failing, with a `work failed`
  event (sysevents.sinks.webhook.autodisable).
"""

from __future__ import annotations

import logging

from sysevents.alerts.engine import Notifier
from sysevents.alerts.watch import absence_job
from sysevents.delivery.attempt import Attempt
from sysevents.delivery.message import Delivery
from sysevents.delivery.outcome import Outcome
from sysevents.delivery.replay import REPLAY_TEMPLATE_ATTR
from sysevents.delivery.sink import Sink
from sysevents.jobs.model import Job
from sysevents.sinks.webhook import autodisable
from sysevents.sinks.webhook.autodisable import FailureStreak
from sysevents.sinks.webhook.channel import WebhookChannel
from sysevents.sinks.webhook.config import SINK, WebhookConfig
from sysevents.sinks.webhook.pacing import Pacing
from sysevents.sinks.webhook.sender import WebhookSender
from sysevents.sinks.webhook.versions import TemplateVersions
from sysevents.transport.coalesce import Coalescer

log = logging.getLogger("sysevents.webhook")


def config_of(job: Job) -> WebhookConfig:
    config = job.config
    if not isinstance(config, WebhookConfig):  # the envelope filters other workflows before deliver
        raise TypeError(f"job {job.id} is a {job.workflow.value} job, not a webhook job")
    return config


class WebhookSink(Sink):
    name = SINK
    function = "webhook"

    def __init__(self, rt):
        super().__init__(rt)
        self._batches: Coalescer[str, tuple[Job, Delivery, object], Outcome] = Coalescer(self._send_batch)
        self.pacing = Pacing(rt, slow_topic=rt.topology.sinks[SINK].slow_topic)
        self.versions = TemplateVersions(rt.firestore)
        self.streak = FailureStreak(rt.accounting)
        self.sender = WebhookSender(rt.settings, renderer=rt.sandbox.render)  # guarded, signed HTTP
        channel = WebhookChannel(rt.settings, self.sender, rt.sandbox, self.pacing)
        self.notifier = Notifier(rt, rt.topology.sinks[SINK], channel)

    def notice(self, delivery: Delivery, job: Job, attempt: Attempt) -> Outcome:
        return self.notifier.notice(delivery, job, attempt)

    def dead_lettered(self, delivery: Delivery, job: Job, reason: str) -> None:
        if config_of(job).alerting() or delivery.notice is not None:
            self.notifier.dead_lettered(delivery, job, reason)

    def release_topic(self, job: Job) -> str:
        """A slow receiver's waits and retries go to the slow lane (sysevents.sinks.webhook.pacing)."""
        if self.pacing.slow_topic and self.pacing.slow(job):
            return self.pacing.slow_topic
        return self.topic

    def routes(self):
        return {
            "/alerts/sweep": lambda request: self.notifier.sweep(
                self._job_of_key, absence_jobs=self._absence_jobs
            )
        }

    def _absence_jobs(self) -> list[Job]:
        return self.rt.cache.jobs(absence_job)

    def _job_of_key(self, key: str) -> Job | None:
        aid, job_id, generation = key.split(":", 2)
        job = self.rt.cache.get(aid, job_id) or self.rt.jobs.get(aid, job_id)
        return job if job is not None and job.generation == generation else None

    def deliver(self, delivery: Delivery, job: Job, attempt: Attempt) -> Outcome:
        config = config_of(job)
        if config.alerting():  # noise control, resolution, PagerDuty: the alert engine decides
            return self.notifier.deliver(delivery, job, attempt)
        gated = self.pacing.gate(job, attempt)
        if gated is not None:
            return gated
        template = self._template_for(job, attempt)
        if template is ...:
            version = attempt.attributes.get(REPLAY_TEMPLATE_ATTR)
            return Outcome.permanent(f"template version {version} is not known for job {job.id}")
        if config.batch_max_size > 1:
            [outcome] = self._batches.submit(
                job.key,
                [(job, delivery, template)],
                max_size=config.batch_max_size,
                max_wait=config.batch_max_wait_ms / 1000,
            )
        else:
            outcome = self.pacing.send(job, lambda: self.sender.send(job, delivery, template=template))
        return self.pacing.answer(job, attempt, outcome)

    def _send_batch(self, key: str, items: list[tuple[Job, Delivery, object]]) -> list[Outcome]:
        job, _, template = items[-1]
        deliveries = [d for _, d, _ in items]
        outcome = self.pacing.send(
            job, lambda: self.sender.send(job, deliveries, template=template, batch=True)
        )
        return [outcome] * len(items)

    def _template_for(self, job: Job, attempt: Attempt):
        """The template to render with: the job's, or a stored older version (replay). ... if unknown."""
        config = config_of(job)
        wanted = attempt.attributes.get(REPLAY_TEMPLATE_ATTR)
        if wanted and wanted.isdigit() and int(wanted) != job.version:
            found, template = self.versions.get(job, int(wanted))
            return template if found else ...
        self.versions.remember(job, config.json_template)
        return config.json_template

    def backfill(self, job: Job, **kw):
        from sysevents.sinks.webhook.batch_export import webhook_backfill

        return webhook_backfill(self.rt, self.sender, job, **kw)

    # -- after the envelope settled ----------------------------------------------------------------------------
    def settled(self, delivery: Delivery, job: Job, attempt: Attempt, outcome: Outcome) -> None:
        if outcome.done or not outcome.attempted:
            return
        if outcome.counts_against_receiver:  # never a "slow down" (sysevents.sinks.webhook.pacing)
            autodisable.failed(self.rt, self.streak, job, outcome.reason, delivery)
