"""Deployment settings: one typed object, read once from the environment (prefix SYSEVENTS_)."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from sysevents.account_settings import AccountSettings
from sysevents.events.model import MAX_EVENT_BYTES
from sysevents.events.producers import check_bindings


def scaled(seconds: float, scale: float) -> timedelta:
    """One of our own durations (a retry wait, an alert window, the auto-disable window) under
    SYSEVENTS_TIME_SCALE: 1 in production; the local stack plays them faster. A receiver's time (its
    Retry-After, its rate limit) is real seconds and is never scaled. The one place time is scaled."""
    return timedelta(seconds=seconds * scale)


MIN_TEMPLATE_WORKER_MB = 64
"""The least memory bound a template worker gets (an idle worker takes about 20 MiB of address space)."""
_UNITS = {"Mi": 1.0, "Gi": 1024.0, "M": 1e6 / 2**20, "G": 1e9 / 2**20, "": 1.0}


def mebibytes(size: str) -> int:
    """A memory size as Cloud Run and Terraform write it ("512Mi", "1Gi", "1G"; a bare number: MiB), in MiB."""
    m = re.fullmatch(r"\s*(\d+)\s*(Mi|Gi|M|G|)\s*", size)
    if m is None:
        raise ValueError(f"{size!r} is not a memory size like 512Mi or 1Gi")
    return int(int(m.group(1)) * _UNITS[m.group(2)])


class Settings(AccountSettings):
    model_config = SettingsConfigDict(env_prefix="SYSEVENTS_", extra="ignore")

    project: str = Field(
        default="sysevents-local",
        validation_alias=AliasChoices("SYSEVENTS_PROJECT", "GOOGLE_CLOUD_PROJECT", "GCP_PROJECT"),
        description="Google Cloud project holding the topics, Firestore and BigQuery.",
    )
    jobs_collection: str = Field(
        default="jobs", description="Firestore collection of each account's jobs (accounts/{aid}/jobs)."
    )
    max_event_bytes: int = Field(
        default=MAX_EVENT_BYTES, gt=0, le=10_000_000, description="Largest accepted event, in bytes."
    )
    max_jobs_per_account: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Jobs one account may have: what one account's events make ingest load and match, and "
        "what it holds of the job caches every account shares.",
    )
    max_filter_entries_per_account: int = Field(
        default=50_000,
        ge=1,
        le=10_000_000,
        description="(subject, verb) filter combinations one account's jobs may have in all: what its jobs "
        "cost every ingest instance's matching index (a job may have at most 10,000).",
    )
    allow_http: bool = Field(default=False, description="Allow http:// destinations (development only).")
    destination_allowlist: Annotated[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], NoDecode] = (
        Field(
            default=(),
            description="Comma-separated networks that destinations may resolve to although private "
            "(development only, e.g. 127.0.0.1/32).",
        )
    )
    webhook_connect_timeout: float = Field(default=5.0, gt=0, le=60)
    webhook_read_timeout: float = Field(default=15.0, gt=0, le=120)
    webhook_total_timeout: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Longest one delivery's request may take in all, connect to last byte (the read timeout "
        "bounds each wait for data only: a receiver answering a byte at a time could hold a thread forever).",
    )
    webhook_max_response_bytes: int = Field(default=64 * 1024, gt=0)
    template_max_output_bytes: int = Field(default=1024 * 1024, gt=0)
    webhook_max_retry_after: float = Field(
        default=3600.0,
        ge=0,
        le=86_400,
        description="Longest Retry-After (seconds) honoured: the job's deliveries are held this long at most.",
    )
    # The durable delay queue (sysevents.transport.delays): retries, holds, rate-limit slots, alert timers.
    delay_queue: str | None = Field(
        default=None,
        pattern=r"^projects/[^/]+/locations/[^/]+/queues/[A-Za-z0-9-]+$",
        description="Cloud Tasks queue of the waits (projects/P/locations/L/queues/Q). Terraform sets it.",
    )
    delay_service_account: str | None = Field(
        default=None,
        description="Service account whose OAuth token a released wait publishes to Pub/Sub with "
        "(production; Terraform sets it).",
    )
    tasks_emulator_host: str | None = Field(
        default=None, description="host:port of the Cloud Tasks emulator (local stack only)."
    )
    pubsub_url: str = Field(
        default="https://pubsub.googleapis.com",
        description="Pub/Sub REST endpoint released waits publish to (the emulator's, locally).",
    )
    time_scale: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Scales retry schedules, auto-disable windows and alert windows (local stack: 1/600, "
        "so a 24-hour outage plays in about 2.5 minutes; production: 1). A receiver's Retry-After and "
        "rate limits stay in real seconds.",
    )
    webhook_log_retention_days: int = Field(
        default=7, gt=0, le=400, description="Days the attempt log and dead letters are kept (TTL)."
    )
    template_timeout: float = Field(
        default=2.0, gt=0, le=60, description="Longest a webhook or email template may render, in seconds."
    )
    template_memory_mb: int | None = Field(
        default=None,
        ge=MIN_TEMPLATE_WORKER_MB,
        le=8192,
        description="Address-space limit of each template render worker, in MiB. Unset: the function's "
        "memory less `template_main_memory_mb`, shared by `template_workers` (512Mi, 256 and 2: 128 MiB). "
        "Set or derived, workers x limit + main must fit in `function_memory`, or the settings are refused.",
    )
    meter: bool = Field(
        default=False,
        description="Count this instance's Firestore calls, publishes, delay-queue tasks and pushes served, "
        "reported by its GET / (sysevents.obs.metering; the benchmarks). Off in production.",
    )
    template_workers: int = Field(default=2, ge=1, le=32, description="Template render worker processes.")
    template_max_per_account: int = Field(
        default=4,
        ge=1,
        le=1000,
        description="Template renders one account may have queued or running on an instance; past it a "
        "render is refused at once: a delivery waits and comes back (never lost), the admin API answers "
        "429 with Retry-After.",
    )
    function_memory: int = Field(
        default=512,
        ge=128,
        le=32768,
        description="Memory of this function's instances, in MiB (Kubernetes units are read: 512Mi, 1Gi, "
        "1G): topology.json's `memory` of the function, else Terraform's `function_defaults.memory` "
        "(512Mi). Terraform sets it. The template workers' memory bound is derived from it.",
    )
    template_main_memory_mb: int = Field(
        default=256,
        ge=64,
        description="Memory kept for a function's main process (Python, client libraries, request threads, "
        "job cache) beside its template workers, in MiB.",
    )
    job_cache_start_timeout: float = Field(
        default=60.0, gt=0, description="Seconds the job cache waits for each Firestore read."
    )
    job_cache_max_age_ms: int = Field(
        default=1000,
        ge=0,
        le=600_000,
        description="The job cache's freshness bound X: a job saved at T is matched for every event that "
        "reaches ingest after T + X (each instance queries the change markers at most once per X while it "
        "serves; 0: once per request).",
    )
    job_cache_max_jobs: int = Field(
        default=20_000,
        gt=0,
        description="Jobs a function instance holds at most (least recently used accounts and jobs out first).",
    )
    # Admin API (sysevents.admin): tenancy, keys, secrets at rest.
    accounts_collection: str = Field(default="accounts", description="Firestore collection of accounts.")
    api_keys_collection: str = Field(
        default="api_keys", description="Firestore collection of API keys (SHA-256 hashes only)."
    )
    operator_key_hash: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 (hex) of the operator key, which manages accounts and keys "
        "(`sysevents keys operator` makes one). In production from Secret Manager.",
    )
    api_key_max_days: int = Field(
        default=365,
        ge=1,
        le=3650,
        description="Furthest ahead a new API key's expiry may be set, in days (expires_at, "
        "expires_in_days). Keys created without one never expire (unless minted by a key that does).",
    )
    api_key_revoke_max: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Keys minted from a revoked key (at any depth) one revocation marks revoked at most, in "
        "batches of 500; beyond it the response says cascade_complete false and revoking again goes on. "
        "Keys not marked yet are refused all the same (authentication checks the keys a key was minted from).",
    )
    sealing_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated Fernet keys sealing job header values at rest: the first seals, "
        "all unseal (rotation). In production from Secret Manager.",
    )
    admin_max_body_bytes: int = Field(default=256 * 1024, gt=0, description="Largest admin API request body.")
    # BigQuery (sysevents.auditlog): the audit table, export jobs' streaming inserts and backfills.
    bigquery_endpoint: str | None = Field(
        default=None, description="BigQuery API endpoint (the local emulator); unset in production."
    )
    audit_dataset: str = Field(default="sysevents", description="BigQuery dataset of the audit table.")
    audit_table: str = Field(default="audit_log", description="BigQuery audit table (created when missing).")
    bigquery_location: str | None = Field(
        default=None, description="Location for datasets created when missing."
    )
    bigquery_batch_rows: int = Field(default=500, gt=0, le=10_000, description="Most rows per insertAll.")
    bigquery_batch_wait_ms: int = Field(
        default=100, ge=0, le=5_000, description="Longest a row waits for others to share its insertAll."
    )
    bigquery_timeout: float = Field(default=30.0, gt=0, le=600, description="Deadline of one BigQuery call.")
    export_dataset_prefix: str = Field(
        default="export_",
        pattern=r"^[A-Za-z][A-Za-z0-9_]{0,200}$",
        description="Export jobs write only to datasets named <prefix><account> or <prefix><account>__<suffix> "
        "(sysevents.sinks.bigquery.targets).",
    )
    export_projects: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated projects export targets may be in besides the deployment's own.",
    )
    exports_collection: str = Field(
        default="exports", description="Firestore collection of export runs (backfill state, watermark)."
    )
    export_handover_seconds: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="Backfill-then-continuous: the watermark is set this far after the job is saved, so every "
        "function instance has the job before events at the watermark arrive (job cache lag < this).",
    )
    export_tick_seconds: float = Field(
        default=40.0,
        gt=0,
        le=3000,
        description="Time budget of one POST /tick of the bigquery function for advancing due backfills "
        "(keep it under the function's timeout).",
    )
    export_tick_pages: int = Field(
        default=100, gt=0, le=100_000, description="Most pages one tick advances one backfill by."
    )
    export_lease_seconds: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="How long a tick (or `sysevents export run`) holds a backfill; another runner may take "
        "it over only after this (renewed at each page, so keep it well above one page's time).",
    )
    # Email alerts (sysevents.alerts): SMTP and alert state. In production the password comes from Secret
    # Manager as an environment variable of the email function (never in topology.json or Terraform state).
    smtp_host: str | None = Field(
        default=None,
        description="SMTP server; unset: email alerts are retried, "
        "then dead-lettered with the reason 'SMTP is not configured'.",
    )
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="starttls (port 587), tls (implicit TLS, port 465) or none (local only).",
    )
    smtp_username: str | None = Field(default=None, description="SMTP AUTH user; unset: no AUTH.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP AUTH password (Secret Manager).")
    smtp_ca_file: str | None = Field(
        default=None,
        description="CA bundle to verify the SMTP server with "
        "(the local stack's self-signed certificate); unset: the system's.",
    )
    smtp_timeout: float = Field(default=30.0, gt=0, le=300)
    email_from: str = Field(
        default="sysevents <alerts@sysevents.invalid>", description="From: of alert emails."
    )
    email_link_template: str = Field(
        default="https://activate.getlytics.com/data/integrations/{subject_type}/{subject_id}?aid={aid}",
        description="The `link` templates get: {aid}, {subject_type}, {subject_id}, {verb} are filled in.",
    )
    consent_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s?#]+$",
        description="Base URL of the admin API as email recipients reach it: confirmation and unsubscribe "
        "links are <consent_url>/consent/<token>. Unset: no confirmation can be sent, so only addresses in "
        "an account's allowed domains (or confirmed before) get alerts; and no List-Unsubscribe.",
    )
    email_confirm_hours: float = Field(
        default=168.0,
        gt=0,
        le=24 * 90,
        description="How long a confirmation link is good for, and how often an unconfirmed address may be "
        "sent one (at most once per this period per account). Real hours, never time-scaled.",
    )
    email_daily_quota: int = Field(
        default=1000,
        ge=1,
        le=10_000_000,
        description="Emails (one per recipient, confirmations included) an account may send per UTC day; "
        "over it an alert is dead-lettered with the reason. The operator may set another for one "
        "account (PUT /email-policies).",
    )
    email_collection_prefix: str = Field(
        default="email_",
        description="Firestore collections of recipients' consent, accounts' email policy and daily "
        "counts: <prefix>consent, <prefix>policy, <prefix>quota.",
    )
    alerts_collection_prefix: str = Field(
        default="alert_",
        description="Firestore collections of alert state: "
        "<prefix>groups, <prefix>pending, <prefix>outbox, <prefix>seen, <prefix>rates, <prefix>firing, "
        "<prefix>counts, <prefix>conditions.",
    )
    job_cache_margin_ms: int = Field(
        default=1000,
        ge=0,
        le=60_000,
        description="How long after its commit timestamp a job write may become visible (clock skew between "
        "instances and Firestore, transactions committing out of timestamp order): each job cache sync asks "
        "for the accounts' change markers changed since its previous sync began less this.",
    )
    producers: Annotated[dict[str, tuple[str, ...]], AfterValidator(check_bindings)] = Field(
        default_factory=dict,
        description='Producer id -> the accounts it may publish events for, as JSON ({"billing": ["12", '
        '"acme-*"], "ops": ["*"]}: exact ids, prefixes ending in *, or *). Set: ingest and the audit archive '
        "admit only events signed by a producer bound to their account (or sysevents' own, sealed); others are "
        "quarantined with the reason. Empty (the default): any publisher may name any account.",
    )
    producer_keys: SecretStr | None = Field(
        default=None,
        description='Producer id -> its signing keys, as JSON ({"billing": ["new key", "old key"]}; each at '
        "least 32 characters; all verify, so a key is rotated by adding the new one first). Read when the "
        "first event is checked (a value that cannot be used fails the request, and never shows the keys). "
        "In production from Secret Manager.",
    )

    def scaled(self, seconds: float) -> timedelta:
        """`seconds` of ours under this deployment's time scale (see `scaled`)."""
        return scaled(seconds, self.time_scale)

    @property
    def template_worker_memory_mb(self) -> int:
        """Each template worker's memory bound (MiB): `template_memory_mb`, or derived from the function's
        memory so that every worker at its bound and the main process fit in the instance together."""
        if self.template_memory_mb is not None:
            return self.template_memory_mb
        return (self.function_memory - self.template_main_memory_mb) // self.template_workers

    @model_validator(mode="after")
    def _templates_fit(self) -> Settings:
        workers, bound, main = (
            self.template_workers,
            self.template_worker_memory_mb,
            self.template_main_memory_mb,
        )
        if bound < MIN_TEMPLATE_WORKER_MB or workers * bound + main > self.function_memory:
            raise ValueError(
                f"{workers} template workers of {bound} MiB and {main} MiB for the main process do not fit "
                f"in the function's {self.function_memory} MiB (each worker needs at least "
                f"{MIN_TEMPLATE_WORKER_MB} MiB): fewer workers, less memory each, or more function memory"
            )
        return self

    @field_validator("function_memory", mode="before")
    @classmethod
    def _memory(cls, v: object) -> object:
        return mebibytes(v) if isinstance(v, str) else v

    @field_validator("export_projects", mode="before")
    @classmethod
    def _projects(cls, v: object) -> object:
        if isinstance(v, str):
            return tuple(p.strip() for p in v.split(",") if p.strip())
        return v

    @field_validator("destination_allowlist", mode="before")
    @classmethod
    def _networks(cls, v: object) -> object:
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",") if p.strip()]
        return tuple(ipaddress.ip_network(p, strict=False) for p in v)  # type: ignore[union-attr]
