"""The settings that bound what one account may use of a deployment (fair shares) or read in one go (job
previews); `sysevents.config.Settings` has them with every other setting (prefix SYSEVENTS_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AccountSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SYSEVENTS_", extra="ignore")

    # Fair shares per account (sysevents.shares): each cap is a 429 with Retry-After on the admin API and a
    # wait, never a lost delivery nor a spent attempt, in the pipeline.
    account_max_deliveries_in_flight: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Deliveries of one account in progress at once on a function instance; the next one "
        "waits on the delay queue while the instance's other threads serve other accounts. Unset: half "
        "the instance's request threads (THREADS), at least one.",
    )
    account_max_tasks_due: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Delay-queue tasks (retries, push-backs, slots, waits) of one account due within any "
        "`account_task_window`; past it a wait is put in the next window with room (it waits longer).",
    )
    account_task_window: float = Field(
        default=10.0, gt=0, le=600, description="Seconds of one window of `account_max_tasks_due`."
    )
    account_audit_searches_per_minute: int = Field(
        default=30,
        ge=1,
        le=100_000,
        description="Audit searches (GET /accounts/{aid}/audit) one account may run per minute (a burst of "
        "that many); past it 429 with Retry-After.",
    )
    account_max_replays: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Replays (replay, resume with replay) one account may have running at once; past it "
        "429 with Retry-After.",
    )
    account_replay_lease: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        description="Seconds a running replay holds its place at most (a replay that crashed frees it then).",
    )
    shares_collection: str = Field(
        default="account_shares",
        description="Firestore collection of the accounts' shares: tasks due per window, audit search rate, "
        "replays running ({aid}:tasks, {aid}:audit, {aid}:replays).",
    )
    # Job previews against the audit log (sysevents.preview, sysevents.auditlog.history)
    preview_default_days: float = Field(
        default=7.0,
        gt=0,
        le=400,
        description="A job preview's range when the request names none: the last N days.",
    )
    preview_max_days: float = Field(
        default=31.0, gt=0, le=400, description="The longest range a job preview may read from the audit log."
    )
    preview_max_events: int = Field(
        default=100_000,
        ge=1,
        le=1_000_000,
        description="Most audit-log events one job preview reads (oldest first); beyond it the report says "
        "truncated and covers the range's first events only.",
    )
    preview_max_bytes: int = Field(
        default=5 * 1024**3,
        ge=10 * 1024**2,
        description="BigQuery's maximum_bytes_billed for a job preview's scan: a scan that would read more is "
        "refused before it runs (the preview answers 422: preview a shorter range).",
    )
