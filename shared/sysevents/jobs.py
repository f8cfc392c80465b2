"""Jobs ("works"): which events they want (the filter) and where they send them (the sink config).

The seed's job JSON is accepted verbatim:
`{"workflow": "webhook_system_events", "config": {"system_event_multiple_types": [...],
"system_event_sources": {"work": ["id1"]}, "webhook_url": "...", "headers": {...}, "json_template": "..."}}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .events import MAX_ID_CHARS, SubjectType, Verb, parse_subject_type, parse_verb

MAX_TEMPLATE_CHARS = 32 * 1024
MAX_HEADERS = 32
MAX_SUBJECT_IDS = 1000


class Workflow(StrEnum):
    WEBHOOK = "webhook_system_events"


WORKFLOWS = tuple(w.value for w in Workflow)

SINK_OF_WORKFLOW = {Workflow.WEBHOOK: "webhook"}
"""Which sink (topology `sinks` entry) delivers each workflow's events."""


class JobState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class InvalidJob(ValueError):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class FilterConfig(BaseModel):
    """The event filter every workflow shares."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system_event_type: Verb | None = None
    system_event_multiple_types: tuple[Verb, ...] | None = None
    system_event_sources: dict[SubjectType, tuple[str, ...]] | None = None

    @field_validator("system_event_type", mode="before")
    @classmethod
    def _one_verb(cls, v: Any) -> Any:
        return None if v is None else parse_verb(v, "system_event_type")

    @field_validator("system_event_multiple_types", mode="before")
    @classmethod
    def _verbs(cls, v: Any) -> Any:
        if v is None:
            return None
        if not isinstance(v, list | tuple):
            raise ValueError("must be a list of verbs")
        return tuple(parse_verb(x, "system_event_multiple_types entry") for x in v)

    @field_validator("system_event_sources", mode="before")
    @classmethod
    def _sources(cls, v: Any) -> Any:
        if v is None:
            return None
        if not isinstance(v, dict):
            raise ValueError('must be an object like {"work": ["id1", "id2"]}')
        out = {}
        for key, ids in v.items():
            st = parse_subject_type(key, "system_event_sources key")
            if not isinstance(ids, list | tuple) or not all(isinstance(i, str | int) for i in ids):
                raise ValueError(f"system_event_sources.{key} must be a list of subject ids ([] = all)")
            if len(ids) > MAX_SUBJECT_IDS:
                raise ValueError(f"system_event_sources.{key} has {len(ids)} ids; the limit is {MAX_SUBJECT_IDS}")
            out[st] = tuple(str(i) for i in ids)
        return out

    @model_validator(mode="after")
    def _some_verb(self) -> FilterConfig:
        if not self.verbs():
            raise ValueError("set system_event_type (one verb) or system_event_multiple_types (several)")
        return self

    def verbs(self) -> frozenset[Verb]:
        found = set(self.system_event_multiple_types or ())
        if self.system_event_type is not None:
            found.add(self.system_event_type)
        return frozenset(found)


class WebhookConfig(FilterConfig):
    webhook_url: str = Field(min_length=1, max_length=2048)
    headers: dict[str, str] = Field(default_factory=dict)
    json_template: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARS)

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.lower().startswith(("https://", "http://")):
            raise ValueError("webhook_url must be an https:// URL")
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > MAX_HEADERS:
            raise ValueError(f"at most {MAX_HEADERS} headers")
        for name, value in v.items():
            if not name or not all(c.isalnum() or c in "-_" for c in name) or len(name) > 256:
                raise ValueError(f"header name {name!r} is not a valid token")
            if any(c in value for c in "\r\n\0") or len(value) > 4096:
                raise ValueError(f"header {name!r} has an invalid value (control characters or too long)")
        return v


CONFIG_OF_WORKFLOW: dict[Workflow, type[FilterConfig]] = {Workflow.WEBHOOK: WebhookConfig}


@dataclass(frozen=True, slots=True)
class EventFilter:
    """A job's filter in the form matching needs: account, verbs and (optional) sources."""

    aid: str
    verbs: frozenset[Verb]
    sources: dict[SubjectType, frozenset[str]] | None  # None: every subject type; empty set: every subject

    @classmethod
    def of(cls, aid: str, config: FilterConfig) -> EventFilter:
        sources = None
        if config.system_event_sources is not None:
            sources = {st: frozenset(ids) for st, ids in config.system_event_sources.items()}
        return cls(aid=aid, verbs=config.verbs(), sources=sources)


class Job(BaseModel):
    """A stored job. `version` goes up on every change; deliveries record the version they used."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    aid: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    workflow: Workflow
    config: FilterConfig
    state: JobState = JobState.ACTIVE
    version: int = 1
    name: str | None = Field(default=None, max_length=200)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def sink(self) -> str:
        return SINK_OF_WORKFLOW[self.workflow]

    @property
    def filter(self) -> EventFilter:
        return EventFilter.of(self.aid, self.config)


def _describe(err: ValidationError, prefix: str = "") -> str:
    parts = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{prefix}{loc}: {msg}" if loc else f"{prefix.rstrip('.')}: {msg}")
    return "; ".join(parts)


def parse_config(workflow: Any, config: Any) -> tuple[Workflow, FilterConfig]:
    try:
        wf = Workflow(workflow)
    except ValueError:
        raise InvalidJob(f"workflow: unknown {workflow!r}; valid values: {', '.join(WORKFLOWS)}") from None
    if not isinstance(config, dict):
        raise InvalidJob("config: must be a JSON object")
    try:
        return wf, CONFIG_OF_WORKFLOW[wf].model_validate(config)
    except ValidationError as err:
        raise InvalidJob(_describe(err, "config.")) from None


def job_from_dict(doc: dict[str, Any], *, job_id: str | None = None, aid: str | None = None) -> Job:
    """Validate a job document (the seed's JSON plus id, aid, state, version); raises InvalidJob."""
    if not isinstance(doc, dict):
        raise InvalidJob("job must be a JSON object")
    wf, config = parse_config(doc.get("workflow"), doc.get("config"))
    fields = {k: v for k, v in doc.items() if k not in ("workflow", "config")}
    if job_id is not None:
        fields["id"] = job_id
    if aid is not None:
        fields["aid"] = str(aid)
    try:
        return Job.model_validate({**fields, "workflow": wf, "config": config})
    except ValidationError as err:
        raise InvalidJob(_describe(err)) from None


def job_to_dict(job: Job) -> dict[str, Any]:
    """The stored form: the seed's shape (workflow, config) plus identity and bookkeeping."""
    return {
        "id": job.id,
        "aid": job.aid,
        "workflow": job.workflow.value,
        "config": job.config.model_dump(mode="json", exclude_none=True),
        "state": job.state.value,
        "version": job.version,
        "name": job.name,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
    }
