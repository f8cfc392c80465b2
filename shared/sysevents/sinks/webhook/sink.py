"""Webhook sink: render the job's template (or a replayed version's), POST it signed, classify the answer.

The envelope (sysevents.delivery.envelope) does everything around `deliver`. Here:
- the template: the job's, or the version a replay asked for (`template_version` attribute), kept per job
  version in the accounting (`templates/{version}`);
- Retry-After: a job whose receiver asked for time is *held* in this instance until then; its deliveries
  wait (503, not counted as attempts) without contacting the receiver;
- batching: concurrent deliveries of a job with `batch_max_size` > 1 share one POST (a JSON array);
- auto-disable (`settled`): a job whose deliveries keep failing is paused, with a `work failed` event.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from ... import workevents
from ...coalesce import Coalescer
from ...deliveries import Delivery
from ...delivery.outcome import Outcome
from ...delivery.replay import REPLAY_TEMPLATE_ATTR
from ...delivery.sink import Attempt, Sink
from ...events import Verb
from ...jobs import Job, JobState
from ...store import JobNotFound
from .config import SINK, WebhookConfig

log = logging.getLogger("sysevents.webhook")


class Holds:
    """Jobs whose receiver asked for time (Retry-After): job key -> monotonic time to wait until."""

    def __init__(self):
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def hold(self, key: str, seconds: float) -> None:
        with self._lock:
            self._until[key] = max(self._until.get(key, 0.0), time.monotonic() + seconds)

    def remaining(self, key: str) -> float:
        with self._lock:
            until = self._until.get(key)
            if until is None:
                return 0.0
            left = until - time.monotonic()
            if left <= 0:
                del self._until[key]
            return max(left, 0.0)


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
        self.holds = Holds()
        self._batches: Coalescer[str, tuple[Job, Delivery, object], Outcome] = Coalescer(self._send_batch)

    def deliver(self, delivery: Delivery, job: Job, attempt: Attempt) -> Outcome:
        config = config_of(job)
        held = self.holds.remaining(job.key)
        if held > 0:
            return Outcome.retry(f"held: receiver asked to wait {held:.0f} s more", attempted=False)
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
        from .batch_export import webhook_backfill

        return webhook_backfill(self.rt, job, **kw)

    # -- after the envelope settled ----------------------------------------------------------------------------
    def settled(self, delivery: Delivery, job: Job, attempt: Attempt, outcome: Outcome) -> None:
        if outcome.done or not outcome.attempted:
            return
        if outcome.retry_after:
            self.holds.hold(job.key, outcome.retry_after)
        if outcome.counts_against_receiver:
            self._auto_disable(job, outcome.reason, delivery)

    def _auto_disable(self, job: Job, reason: str, delivery: Delivery) -> None:
        """Pause a job that keeps failing; its `work failed` event counts one hop after the event whose
        delivery failed last, so chains of alerts on failures end (sysevents.origin)."""
        config = config_of(job)
        if not config.auto_disable_failures:
            return
        failures, since = self.rt.accounting.streak_failure(job)
        elapsed = (datetime.now(UTC) - since).total_seconds()
        if failures < config.auto_disable_failures or elapsed < config.auto_disable_seconds:
            return
        why = (
            f"auto-disabled: {failures} consecutive failed deliveries over {elapsed:.0f} s "
            f"(limit {config.auto_disable_failures} over {config.auto_disable_seconds} s); last: {reason}"
        )

        def pause(j: Job) -> Job | None:
            if j.state is JobState.PAUSED or j.generation != job.generation:
                return None  # paused already (by a concurrent failure, or a person), or not this job any more
            return j.model_copy(update={"state": JobState.PAUSED, "disabled_reason": why[:1000]})

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
