"""The `bigquery_system_events` job config: the target table, the mode and its time range."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from sysevents.jobs.model import FilterConfig, Workflow, register

SINK = "bigquery"


class ExportMode(StrEnum):
    CONTINUOUS = "continuous"  # stream matching events as they arrive
    ONE_TIME = "one_time"  # copy [start_time, end_time) from the audit table, once
    BACKFILL_THEN_CONTINUOUS = "backfill_then_continuous"  # copy up to the watermark, stream from it on


class BigQueryConfig(FilterConfig):
    """BigQuery export (sysevents.sinks.bigquery): the target table, the mode and its time range."""

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

    def streams(self) -> bool:
        return self.mode is not ExportMode.ONE_TIME

    def has_backfill(self) -> bool:
        return self.mode is not ExportMode.CONTINUOUS


register(Workflow.BIGQUERY, SINK, BigQueryConfig)
