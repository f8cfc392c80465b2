"""Deployment settings: one typed object, read once from the environment (prefix SYSEVENTS_)."""

from __future__ import annotations

import ipaddress
from functools import cache
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .events import MAX_EVENT_BYTES


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SYSEVENTS_", extra="ignore")

    project: str = Field(
        default="sysevents-local",
        validation_alias=AliasChoices("SYSEVENTS_PROJECT", "GOOGLE_CLOUD_PROJECT", "GCP_PROJECT"),
        description="Google Cloud project holding the topics, Firestore and BigQuery.",
    )
    jobs_collection: str = Field(default="jobs", description="Firestore collection of jobs.")
    max_event_bytes: int = Field(default=MAX_EVENT_BYTES, gt=0, le=10_000_000,
                                 description="Largest accepted event, in bytes.")
    allow_http: bool = Field(default=False, description="Allow http:// destinations (development only).")
    destination_allowlist: Annotated[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated networks that destinations may resolve to although private "
        "(development only, e.g. 127.0.0.1/32).",
    )
    webhook_connect_timeout: float = Field(default=5.0, gt=0, le=60)
    webhook_read_timeout: float = Field(default=15.0, gt=0, le=120)
    webhook_max_response_bytes: int = Field(default=64 * 1024, gt=0)
    template_max_output_bytes: int = Field(default=1024 * 1024, gt=0)
    job_cache_start_timeout: float = Field(default=60.0, gt=0,
                                           description="Seconds to wait for the first jobs snapshot.")
    # Admin API (sysevents.admin): tenancy, keys, secrets at rest.
    accounts_collection: str = Field(default="accounts", description="Firestore collection of accounts.")
    api_keys_collection: str = Field(default="api_keys",
                                     description="Firestore collection of API keys (SHA-256 hashes only).")
    operator_key_hash: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 (hex) of the operator key, which manages accounts and keys "
        "(`sysevents keys operator` makes one). In production from Secret Manager.")
    sealing_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated Fernet keys sealing job header values at rest: the first seals, "
        "all unseal (rotation). In production from Secret Manager.")
    admin_max_body_bytes: int = Field(default=256 * 1024, gt=0, description="Largest admin API request body.")

    @field_validator("destination_allowlist", mode="before")
    @classmethod
    def _networks(cls, v: object) -> object:
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",") if p.strip()]
        return tuple(ipaddress.ip_network(p, strict=False) for p in v)  # type: ignore[union-attr]


@cache
def settings() -> Settings:
    return Settings()
