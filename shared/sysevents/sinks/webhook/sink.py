"""Webhook sink: render the job's template (or a replayed version's), POST it signed, classify the answer.

The envelope (sysevents.delivery.envelope) does everything around `deliver`. Here:
- a job held for its receiver's Retry-After (`Job.hold_until`, kept on the job document so every instance
  honours it) waits until then, in the delay queue, without contacting the receiver;
- a job with a rate limit (`rate_limit`, or 1 per second for Slack webhook URLs) reserves a slot for each
  delivery across instances (sysevents.delivery.ratelimit) and waits for it in the delay queue;
- the template: the job's, or the version a replay asked for (`template_version` attribute), kept per job
  version in the accounting (`templates/{version}`);
- batching: concurrent deliveries of a job with `batch_max_size` > 1 share one POST (a JSON array);
- after the envelope settled: a Retry-After holds the whole job; auto-disable pauses a job whose
  deliveries keep failing, with a `work failed` event.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from sysevents.alerts.engine import Notifier
from sysevents.delivery.message import Delivery
from sysevents.delivery.outcome import Outcome
from sysevents.delivery.ratelimit import Pacer, Rate
from sysevents.delivery.replay import REPLAY_TEMPLATE_ATTR
from sysevents.delivery.sink import Attempt, Sink
from sysevents.events.model import Verb
from sysevents.jobs import workevents
from sysevents.jobs.model import Job, JobState
from sysevents.jobs.store import JobNotFound
from sysevents.sinks.webhook.channel import WebhookChannel
from sysevents.sinks.webhook.config import SINK, WebhookConfig
from sysevents.transport.coalesce import Coalescer

log = logging.getLogger("sysevents.webhook")
SLOT_SLACK = 0.005
"""A slot this close is now."""


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
        self._pacer = Pacer()
        channel = WebhookChannel(rt.settings, rt.sender, rt.sandbox.render_value)
        self.notifier = Notifier(rt, self, channel, self.gate)

    def notice(self, delivery: Delivery, job: Job, attempt: Attempt) -> Outcome:
        return self.notifier.notice(delivery, job, attempt)

    def dead_lettered(self, delivery: Delivery, job: Job, reason: str) -> None:
        if config_of(job).alerting() or delivery.notice is not None:
            self.notifier.dead_lettered(delivery, job, reason)

    def routes(self):
        return {"/alerts/sweep": lambda request: self.notifier.sweep(self._job_of_key)}

    def _job_of_key(self, key: str) -> Job | None:
        aid, job_id, generation = key.split(":", 2)
        job = self.rt.cache.get(aid, job_id) or self.rt.jobs.get(aid, job_id)
        return job if job is not None and job.generation == generation else None

    def gate(self, job: Job, attempt: Attempt) -> Outcome | None:
        """Before a POST: a wait when the job is held (Retry-After) or its rate limit puts it later."""
        config = config_of(job)
        now = datetime.now(UTC)
        if job.hold_until is not None and job.hold_until > now:
            return Outcome.wait(
                job.hold_until, f"held: the receiver asked to wait until {job.hold_until.isoformat()}"
            )
        rate = config.delivery_rate()
        if rate is not None and not attempt.slot:
            at = self.rt.limiter.reserve(job, Rate(rate.per_second, rate.burst))
            if at > time.time() + SLOT_SLACK:
                when = datetime.fromtimestamp(at, UTC)
                return Outcome.wait(when, f"rate limit {rate.per_second:g}/s: sent at its slot", slot=True)
        if rate is not None and self._pacer.pace(job.key, Rate(rate.per_second, rate.burst)) is None:
            # sent too soon after this instance's previous send of the job: to the delay queue, keeping its slot
            later = datetime.now(UTC) + timedelta(seconds=self._pacer.later(job.key, Rate(rate.per_second)))
            return Outcome.wait(
                later, f"rate limit {rate.per_second:g}/s: spaced after the previous send", slot=True
            )
        return None

    def deliver(self, delivery: Delivery, job: Job, attempt: Attempt) -> Outcome:
        config = config_of(job)
        if config.alerting():  # noise control, resolution, PagerDuty: the alert engine decides
            return self.notifier.deliver(delivery, job, attempt)
        gated = self.gate(job, attempt)
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
            return outcome
        return self.rt.sender.send(job, delivery, template=template)

    def _send_batch(self, key: str, items: list[tuple[Job, Delivery, object]]) -> list[Outcome]:
        job, _, template = items[-1]
        outcome = self.rt.sender.send(job, [d for _, d, _ in items], template=template, batch=True)
        return [outcome] * len(items)

    def _template_for(self, job: Job, attempt: Attempt):
        """The template to render with: the job's, or a stored older version (replay). ... if unknown."""
        config = config_of(job)
        wanted = attempt.attributes.get(REPLAY_TEMPLATE_ATTR)
        if wanted and wanted.isdigit() and int(wanted) != job.version:
            found, template = self.rt.accounting.template(job, int(wanted))
            return template if found else ...
        self.rt.accounting.remember_template(job, config.json_template)
        return config.json_template

    def backfill(self, job: Job, **kw):
        from sysevents.sinks.webhook.batch_export import webhook_backfill

        return webhook_backfill(self.rt, job, **kw)

    # -- after the envelope settled ----------------------------------------------------------------------------
    def settled(self, delivery: Delivery, job: Job, attempt: Attempt, outcome: Outcome) -> None:
        if outcome.done or not outcome.attempted:
            return
        if outcome.retry_after:  # the whole job waits, on every instance
            until = datetime.now(UTC) + timedelta(seconds=outcome.retry_after)
            self.rt.jobs.hold(job, until)
            if config_of(job).delivery_rate() is not None:
                self.rt.limiter.push_back(job, until.timestamp())
        if outcome.counts_against_receiver:
            self._auto_disable(job, outcome.reason, delivery)

    def _auto_disable(self, job: Job, reason: str, delivery: Delivery) -> None:
        """Pause a job that keeps failing; its `work failed` event counts one hop after the event whose
        delivery failed last, so chains of alerts on failures end (sysevents.jobs.origin)."""
        config = config_of(job)
        if not config.auto_disable_failures:
            return
        failures, since = self.rt.accounting.streak_failure(job)
        elapsed = (datetime.now(UTC) - since).total_seconds()
        window = config.auto_disable_seconds * self.rt.settings.time_scale
        if failures < config.auto_disable_failures or elapsed < window:
            return
        why = (
            f"auto-disabled: {failures} consecutive failed deliveries over {elapsed:.0f} s "
            f"(limit {config.auto_disable_failures} over {window:g} s); last: {reason}"
        )

        def pause(j: Job) -> Job | None:
            if j.state is JobState.PAUSED or j.generation != job.generation:
                return None  # paused already (by a concurrent failure, or a person), or not this job any more
            return j.model_copy(
                update={
                    "state": JobState.PAUSED,
                    "disabled_reason": why[:1000],
                    "disabled_at": datetime.now(UTC),
                }
            )

        try:
            old, new = self.rt.jobs.change(job.aid, job.id, pause)
        except JobNotFound:
            return
        if new is old:
            return
        self.rt.accounting.reset_streak(job)
        event = workevents.work_event(
            new, Verb.FAILED, notes=why, change="auto-disabled", cause=delivery.event
        )
        workevents.publish(self.rt, event)
        log.warning("webhook: job %s/%s paused: %s", job.aid, job.id, why)
