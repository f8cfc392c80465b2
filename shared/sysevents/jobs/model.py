"""Jobs ("works"): which events they want (the filter) and where they send them (the sink config).

The seed's job JSON is accepted verbatim:
`{"workflow": "webhook_system_events", "config": {"system_event_multiple_types": [...],
"system_event_sources": {"work": ["id1"]}, "webhook_url": "...", "headers": {...}, "json_template": "..."}}`.

This module is the core: it knows the filter every workflow shares, but no sink. Each workflow's config
model (in its sink's package) extends `FilterConfig`; the workflow registry (sysevents.jobs.registry)
names them. Per-sink behaviour that the core needs (does the job stream live events? which Pub/Sub
ordering key? what to check and seal when a job is saved?) is asked of the config object itself.

A job's identity is `(aid, id)`: ids are chosen per account, and an id in one account says nothing about
another. `generation` is drawn when a job is created: a job deleted and created again with the same id
is a new generation, and per-job state (attempt log, counters, dead letters, alert state) is keyed by
`Job.key`, which includes it, so a new generation inherits nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sysevents.events.model import (
    MAX_ID_CHARS,
    SubjectType,
    SystemEvent,
    Verb,
    parse_subject_type,
    parse_verb,
)
from sysevents.events.strictjson import plain
from sysevents.filters import MAX_EXCLUDES, Filter, FilterText, compile_filter

MAX_TEMPLATE_CHARS = 32 * 1024
MAX_SUBJECT_IDS = 1000
MAX_FILTER_ENTRIES = 10_000
"""Most (subject, verb) combinations one job's filter may have (subject ids of every type x verbs)."""
DEFAULT_RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)
"""Seconds before each retry after the first attempt (immediate): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
-- about 27.6 hours of retrying in all, as Svix does. Each wait is jittered by up to RETRY_JITTER."""
MAX_RETRIES = 20
MAX_RETRY_SPAN = 7 * 86_400
RETRY_JITTER = 0.1
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
"""Job ids and account ids: letters, digits, '.', '_', '-' (so they make Firestore paths and keys)."""


class Workflow(StrEnum):
    """A job's kind: which sink delivers it (`<sink>_system_events`) and which config model it has
    (sysevents.jobs.registry)."""

    WEBHOOK = "webhook_system_events"
    BIGQUERY = "bigquery_system_events"
    EMAIL = "email_system_events"

    @property
    def sink(self) -> str:
        """The topology sink (topology.json `sinks`) that delivers this workflow's jobs."""
        return self.value.removesuffix("_system_events")


WORKFLOWS = tuple(w.value for w in Workflow)


class JobState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class InvalidJob(ValueError):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class FilterConfig(BaseModel):
    """The event filter every workflow shares; each workflow's config model extends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system_event_type: Verb | None = None
    system_event_multiple_types: tuple[Verb, ...] | None = None
    system_event_sources: dict[SubjectType, tuple[str, ...]] | None = None
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    """Seconds to wait before each retry of a failed delivery; its length is the number of retries."""
    filter: FilterText | None = None
    """A CEL expression over the event (sysevents.filters): the job gets the events it is true for."""
    exclude: tuple[FilterText, ...] | None = Field(default=None, max_length=MAX_EXCLUDES)
    """CEL expressions: the job never gets an event that any of them is true for."""

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _schedule(cls, v: Any) -> Any:
        if not isinstance(v, list | tuple):
            raise ValueError("must be a list of seconds to wait before each retry, e.g. [5, 300, 1800]")
        if len(v) > MAX_RETRIES:
            raise ValueError(f"{len(v)} retries; the limit is {MAX_RETRIES}")
        out = []
        for wait in v:
            if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 < wait <= 86_400:
                raise ValueError("each wait must be a number of seconds above 0 and at most 86400 (a day)")
            out.append(float(wait))
        if sum(out) > MAX_RETRY_SPAN:
            raise ValueError(
                f"the waits add up to {sum(out):.0f} s; the limit is {MAX_RETRY_SPAN} s (7 days)"
            )
        return tuple(out)

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
            if not isinstance(ids, list | tuple) or not all(
                isinstance(i, str | int) and not isinstance(i, bool) for i in ids
            ):
                raise ValueError(f"system_event_sources.{key} must be a list of subject ids ([] = all)")
            if len(ids) > MAX_SUBJECT_IDS:
                raise ValueError(
                    f"system_event_sources.{key} has {len(ids)} ids; the limit is {MAX_SUBJECT_IDS}"
                )
            out[st] = tuple(str(i) for i in ids)
        return out

    @model_validator(mode="after")
    def _some_verb(self) -> FilterConfig:
        if not self.verbs():
            raise ValueError("set system_event_type (one verb) or system_event_multiple_types (several)")
        entries = EventFilter.of("-", self).entries
        if entries > MAX_FILTER_ENTRIES:
            raise ValueError(
                f"system_event_sources and verbs make {entries:,} (subject, verb) combinations; the limit is "
                f"{MAX_FILTER_ENTRIES:,} per job (list fewer subject ids or verbs; [] takes every subject of a "
                "type)"
            )
        return self

    def verbs(self) -> frozenset[Verb]:
        found = set(self.system_event_multiple_types or ())
        if self.system_event_type is not None:
            found.add(self.system_event_type)
        return frozenset(found)

    def match_verbs(self) -> frozenset[Verb]:
        """The verbs the job is fed: its own, and those that resolve its alerts (`resolve_on`)."""
        return self.verbs() | frozenset(Verb(v) for v in getattr(self, "resolve_on", ()))

    # -- what the core asks of a workflow's config (overridden by sink configs) ----------------------------
    def streams(self) -> bool:
        """False for jobs whose events are never delivered live (one-time exports read the audit log)."""
        return True

    def ordering_key(self, job: Job, event: SystemEvent) -> str:
        """The Pub/Sub ordering key of the job's delivery of `event` ("": unordered)."""
        return ""

    def parked_key(self, job: Job, event: SystemEvent) -> str:
        """The key the job's deliveries of `event` wait under while it is ordered ("": never ordered); kept
        after ordering is turned off, so what waits behind a head still goes on."""
        return ""

    def has_backfill(self) -> bool:
        """True for jobs whose sink copies a time range out of the audit log (sysevents.backfill)."""
        return False

    @property
    def max_attempts(self) -> int:
        return 1 + len(self.retry_schedule)

    # -- saving and showing a job (the admin API calls these; loading a job never does) --------------------
    @classmethod
    def before_save(cls, raw: dict[str, Any], saving: Saving) -> dict[str, Any]:
        """The config a client sent, made ready to validate (a webhook job's redacted secrets become the
        stored ones again). Raises FieldError."""
        return raw

    def on_save(self, saving: Saving) -> FilterConfig:
        """The config to store: checked beyond the model (destinations, templates, targets: things a stored
        job is never checked for again) and with its secrets sealed. Raises FieldError."""
        return self

    def view(self, sealing_keys: Any) -> dict[str, Any]:
        """The config as the admin API shows it: every secret-named field that has a value shown as
        SECRET_SET (sinks with secrets of other names redact those too)."""
        doc = self.model_dump(mode="json", exclude_none=True)
        for key, value in list(doc.items()):
            if "secret" in key.lower() and value:
                doc[key] = SECRET_SET
        return doc


SECRET_SET = "(set)"  # noqa: S105 - a placeholder shown instead of secrets
"""How a job's view shows a secret-named config field that has a value."""


class FieldError(ValueError):
    """A job refused at save time: `field` names what is wrong (`config.webhook_url`), `status` is the
    HTTP status the admin API answers with (400; 500 when the deployment cannot seal a secret)."""

    def __init__(self, field: str | None, message: str, status: int = 400):
        super().__init__(message)
        self.field, self.message, self.status = field, message, status


@dataclass
class Saving:
    """What a workflow's save-time checks get: the deployment's settings, the template sandbox (templates
    render there, bounded in time and memory), the account, the job's stored config when it is a change
    (None: a new job), and `dropped`, where a check names stored secrets it did not carry over."""

    settings: Any
    sandbox: Any
    aid: str
    prior: FilterConfig | None = None
    dropped: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """A job's filter in the form matching needs: account, verbs, (optional) sources, and the compiled
    content filter and exclusions (compiled once per text: sysevents.filters)."""

    aid: str
    verbs: frozenset[Verb]
    sources: dict[SubjectType, frozenset[str]] | None  # None: every subject type; empty set: every subject
    content: Filter | None = None
    excludes: tuple[Filter, ...] = ()

    @property
    def entries(self) -> int:
        """How many (subject type, subject, verb) entries the filter puts in a matching index: what holding
        the job costs every ingest instance that matches its account."""
        if self.sources is None:
            return len(self.verbs)
        return sum(max(1, len(ids)) for ids in self.sources.values()) * len(self.verbs)

    @classmethod
    def of(cls, aid: str, config: FilterConfig) -> EventFilter:
        sources = None
        if config.system_event_sources is not None:
            sources = {st: frozenset(ids) for st, ids in config.system_event_sources.items()}
        content = compile_filter(config.filter) if config.filter is not None else None
        excludes = tuple(compile_filter(text) for text in config.exclude or ())
        return cls(aid=aid, verbs=config.match_verbs(), sources=sources, content=content, excludes=excludes)


def new_generation() -> str:
    return secrets.token_hex(6)


class Job(BaseModel):
    """A stored job. `version` goes up on every change; deliveries record the version they used and the
    job's `generation` (drawn at creation)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)
    aid: str = Field(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)
    workflow: Workflow
    config: FilterConfig
    state: JobState = JobState.ACTIVE
    version: int = 1
    generation: str = Field(default_factory=new_generation, min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    disabled_reason: str | None = Field(default=None, max_length=1000)
    """Why sysevents paused the job (auto-disable); cleared when the job is active again."""
    disabled_at: datetime | None = None
    """When sysevents paused it (auto-disable): `resume` can replay what was dead-lettered since."""

    @property
    def key(self) -> str:
        """The job's identity for per-job state: account, id and generation (none contains ':')."""
        return f"{self.aid}:{self.id}:{self.generation}"

    @property
    def sink(self) -> str:
        """The topology sink that delivers the job's workflow."""
        return self.workflow.sink

    @property
    def streams(self) -> bool:
        """False for one-time exports (BigQuery `one_time`, webhook `batch_export`): their events are read
        from the audit log by a backfill (sysevents.backfill), never delivered live by ingest."""
        return self.config.streams()

    @property
    def selection(self) -> EventFilter:
        """The events the job wants, live or read back from the audit log."""
        return EventFilter.of(self.aid, self.config)

    @property
    def filter(self) -> EventFilter:
        """What ingest matches live events against: the selection, or no source at all for jobs that do
        not stream (so they are never matched)."""
        f = self.selection
        return f if self.streams else EventFilter(aid=f.aid, verbs=f.verbs, sources={}, content=f.content)

    def ordering_key(self, event: SystemEvent) -> str:
        return self.config.ordering_key(self, event)

    def parked_key(self, event: SystemEvent) -> str:
        return self.config.parked_key(self, event)


def describe_error(err: ValidationError, prefix: str = "") -> str:
    """A pydantic error as one line per field, in plain language (JSON type names)."""
    parts = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"])
        msg = plain(e["msg"].removeprefix("Value error, "))
        parts.append(f"{prefix}{loc}: {msg}" if loc else f"{prefix.rstrip('.')}: {msg}")
    return "; ".join(parts)


def job_to_dict(job: Job) -> dict[str, Any]:
    """The stored form: the seed's shape (workflow, config) plus identity and bookkeeping."""
    return {
        "id": job.id,
        "aid": job.aid,
        "workflow": job.workflow.value,
        "config": job.config.model_dump(mode="json", exclude_none=True),
        "state": job.state.value,
        "version": job.version,
        "generation": job.generation,
        "name": job.name,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "disabled_reason": job.disabled_reason if job.state is JobState.PAUSED else None,
        "disabled_at": job.disabled_at if job.state is JobState.PAUSED else None,
    }
