"""The workflow registry: each workflow's config model, and reading and writing a stored job with it.

The one place that names every workflow's config model (one per sink package: `sysevents.sinks.<sink>.config`);
adding a workflow is a config module there and one line here. A config model is light (pydantic only): every
function's job cache loads every job through it. What a workflow checks when a job is saved lives with its
config (`FilterConfig.before_save`, `on_save`, `view`), so the admin API knows no sink.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from sysevents.jobs.model import WORKFLOWS, FilterConfig, InvalidJob, Job, Workflow, describe_error
from sysevents.sinks.bigquery.config import BigQueryConfig
from sysevents.sinks.email.config import EmailConfig
from sysevents.sinks.webhook.config import WebhookConfig


@dataclass(frozen=True)
class WorkflowSpec:
    """A workflow: the topology sink that delivers it and its config model."""

    workflow: Workflow
    config: type[FilterConfig]

    @property
    def sink(self) -> str:
        return self.workflow.sink


REGISTRY: dict[Workflow, WorkflowSpec] = {
    spec.workflow: spec
    for spec in (
        WorkflowSpec(Workflow.WEBHOOK, WebhookConfig),
        WorkflowSpec(Workflow.BIGQUERY, BigQueryConfig),
        WorkflowSpec(Workflow.EMAIL, EmailConfig),
    )
}


def spec(workflow: Workflow | str) -> WorkflowSpec:
    try:
        return REGISTRY[Workflow(workflow)]
    except (KeyError, ValueError):
        raise InvalidJob(f"workflow: unknown {workflow!r}; valid values: {', '.join(WORKFLOWS)}") from None


def workflows_of(sink: str) -> Iterable[Workflow]:
    return (s.workflow for s in REGISTRY.values() if s.sink == sink)


def parse_config(workflow: Any, config: Any) -> tuple[Workflow, FilterConfig]:
    wf = spec(workflow).workflow
    if not isinstance(config, dict):
        raise InvalidJob("config: must be a JSON object")
    try:
        return wf, spec(wf).config.model_validate(config)
    except ValidationError as err:
        raise InvalidJob(describe_error(err, "config.")) from None


def job_from_dict(doc: dict[str, Any], *, job_id: str | None = None, aid: str | None = None) -> Job:
    """Validate a job document (the seed's JSON plus id, aid, state, version); raises InvalidJob."""
    if not isinstance(doc, dict):
        raise InvalidJob("job must be a JSON object")
    wf, config = parse_config(doc.get("workflow"), doc.get("config"))
    fields = {k: v for k, v in doc.items() if k not in ("workflow", "config")}
    if fields.get("generation") is None:
        fields.pop("generation", None)
    if job_id is not None:
        fields["id"] = job_id
    if aid is not None:
        fields["aid"] = str(aid)
    try:
        return Job.model_validate({**fields, "workflow": wf, "config": config})
    except ValidationError as err:
        raise InvalidJob(describe_error(err)) from None


def job_of(snap: Any) -> Job:
    """A stored job from its Firestore snapshot (`accounts/{aid}/jobs/{id}`): id and account from its path."""
    return job_from_dict(snap.to_dict() or {}, job_id=snap.id, aid=snap.reference.parent.parent.id)
