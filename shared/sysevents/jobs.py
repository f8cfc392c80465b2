"""Jobs ("works"): which events they want (the filter) and where they send them (the sink config).

The seed's job JSON is accepted verbatim:
`{"workflow": "webhook_system_events", "config": {"system_event_multiple_types": [...],
"system_event_sources": {"work": ["id1"]}, "webhook_url": "...", "headers": {...}, "json_template": "..."}}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .alerts.addresses import normalize_recipients
from .alerts.policy import MAX_MUTE_WINDOWS, MAX_SILENCES, Grouping, MuteWindow, RateLimit, Silence
from .events import MAX_ID_CHARS, SubjectType, Verb, parse_subject_type, parse_verb
from .secrets import is_sealed

MAX_TEMPLATE_CHARS = 32 * 1024
MAX_HEADERS = 32
MAX_SUBJECT_IDS = 1000


class Workflow(StrEnum):
    WEBHOOK = "webhook_system_events"
    BIGQUERY = "bigquery_system_events"
    EMAIL = "email_system_events"


WORKFLOWS = tuple(w.value for w in Workflow)

SINK_OF_WORKFLOW = {Workflow.WEBHOOK: "webhook", Workflow.BIGQUERY: "bigquery", Workflow.EMAIL: "email"}
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
                raise ValueError(
                    f"system_event_sources.{key} has {len(ids)} ids; the limit is {MAX_SUBJECT_IDS}"
                )
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


def _is_whsec(secret: str) -> bool:
    import base64
    import binascii

    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return False
    return secret.startswith("whsec_") and 24 <= len(key) <= 64


class BatchExport(BaseModel):
    """A one-time export of `[start_time, end_time)` of the account's audit log to the webhook, in POSTs of
    at most `max_events` events: NDJSON (`application/x-ndjson`) or a JSON array (sysevents.bigquery.batch)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_time: datetime
    end_time: datetime
    format: Literal["ndjson", "json"] = "ndjson"
    max_events: int = Field(default=100, ge=1, le=10_000)

    @field_validator("start_time", "end_time")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v

    @model_validator(mode="after")
    def _range(self) -> BatchExport:
        if self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")
        return self


class WebhookConfig(FilterConfig):
    webhook_url: str = Field(min_length=1, max_length=2048)
    headers: dict[str, str] = Field(default_factory=dict)
    json_template: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARS)
    # Webhook delivery options (sysevents.webhook; README "Webhooks").
    signing_secrets: tuple[str, ...] = Field(default=(), max_length=2)
    """Standard Webhooks secrets (`whsec_<base64>`); each delivery is signed with every one (rotation)."""
    ordered: bool = False
    """Deliver in order per subject (Pub/Sub ordering key `<job id>/<subject_id>`)."""
    batch_max_size: int = Field(default=1, ge=1, le=500)
    """Events per POST (a JSON array when > 1)."""
    batch_max_wait_ms: int = Field(default=0, ge=0, le=10_000)
    """How long an event waits for others to share its POST."""
    auto_disable_failures: int = Field(default=100, ge=0, le=100_000)
    """Pause the job after this many consecutive failed attempts (0: never)..."""
    auto_disable_seconds: int = Field(default=6 * 3600, ge=0, le=30 * 86400)
    """... spanning at least this many seconds with no successful delivery."""
    batch_export: BatchExport | None = None
    """Set: a one-time batch export of a time range of the audit log (no live deliveries)."""

    @field_validator("signing_secrets", mode="before")
    @classmethod
    def _secrets(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        for secret in v or ():
            if not isinstance(secret, str) or not (is_sealed(secret) or _is_whsec(secret)):
                raise ValueError("signing secrets must look like whsec_<base64 of 24 to 64 bytes>")
        return v

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


class ExportMode(StrEnum):
    CONTINUOUS = "continuous"  # stream matching events as they arrive
    ONE_TIME = "one_time"  # copy [start_time, end_time) from the audit table, once
    BACKFILL_THEN_CONTINUOUS = "backfill_then_continuous"  # copy up to the watermark, stream from it on


class BigQueryConfig(FilterConfig):
    """BigQuery export (sysevents.bigquery.export): the target table, the mode and its time range."""

    project: str | None = Field(default=None, max_length=100, pattern=r"^[a-z][a-z0-9.:-]*[a-z0-9]$")
    dataset: str = Field(min_length=1, max_length=1024, pattern=r"^\w+$")
    table: str = Field(min_length=1, max_length=1024, pattern=r"^[\w-]+$")
    create_if_missing: bool = True
    mode: ExportMode = ExportMode.CONTINUOUS
    start_time: datetime | None = None
    end_time: datetime | None = None
    watermark: datetime | None = None

    @field_validator("start_time", "end_time", "watermark")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v

    @model_validator(mode="after")
    def _range(self) -> BigQueryConfig:
        if self.mode is ExportMode.ONE_TIME and (self.start_time is None or self.end_time is None):
            raise ValueError("mode one_time needs start_time and end_time")
        if self.mode is not ExportMode.ONE_TIME and self.end_time is not None:
            raise ValueError(f"end_time applies to mode one_time only, not {self.mode.value}")
        if self.mode is ExportMode.CONTINUOUS and self.start_time is not None:
            raise ValueError("start_time applies to one_time and backfill_then_continuous only")
        if self.start_time and self.end_time and self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")
        return self


class EmailConfig(FilterConfig):
    """Email alerts (sysevents.alerts): recipients, Jsonnet templates, and noise control."""

    recipients: tuple[str, ...]
    subject_template: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARS)
    body_template: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARS)
    digest_template: str | None = Field(default=None, max_length=MAX_TEMPLATE_CHARS)
    grouping: Grouping | None = None
    rate_limit: RateLimit | None = None
    silences: tuple[Silence, ...] = Field(default=(), max_length=MAX_SILENCES)
    mute_windows: tuple[MuteWindow, ...] = Field(default=(), max_length=MAX_MUTE_WINDOWS)

    @field_validator("recipients", mode="before")
    @classmethod
    def _recipients(cls, v: Any) -> Any:
        return normalize_recipients(v)

    # The templates are checked at save time (admin API: sysevents.admin.validation), not here: every
    # function's job cache loads every job, and loading must stay cheap (no template sandbox).


CONFIG_OF_WORKFLOW: dict[Workflow, type[FilterConfig]] = {
    Workflow.WEBHOOK: WebhookConfig,
    Workflow.BIGQUERY: BigQueryConfig,
    Workflow.EMAIL: EmailConfig,
}


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
    disabled_reason: str | None = Field(default=None, max_length=1000)
    """Why sysevents paused the job (auto-disable); cleared when the job is active again."""

    @property
    def sink(self) -> str:
        return SINK_OF_WORKFLOW[self.workflow]

    @property
    def streams(self) -> bool:
        """False for one-time exports (BigQuery `one_time`, webhook `batch_export`): their events are read
        from the audit log by a backfill (sysevents.bigquery), never delivered live by ingest."""
        cfg = self.config
        if isinstance(cfg, BigQueryConfig):
            return cfg.mode is not ExportMode.ONE_TIME
        if isinstance(cfg, WebhookConfig):
            return cfg.batch_export is None
        return True

    @property
    def selection(self) -> EventFilter:
        """The events the job wants, live or read back from the audit log."""
        return EventFilter.of(self.aid, self.config)

    @property
    def filter(self) -> EventFilter:
        """What ingest matches live events against: the selection, or no source at all for jobs that do
        not stream (so they are never matched)."""
        f = self.selection
        return f if self.streams else EventFilter(aid=f.aid, verbs=f.verbs, sources={})


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
        "disabled_reason": job.disabled_reason if job.state is JobState.PAUSED else None,
    }
