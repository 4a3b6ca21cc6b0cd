"""Settings from the environment, one cached object for the whole process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class DatabaseSettings(BaseModel):
    # The owner's URL: migrations and the few system tasks run with it.
    url: str | None = None
    # The API and worker connect as this role, which owns no table and cannot bypass row-level
    # security. When `app_url` is unset it is derived from `url` with this user and password.
    app_user: str = "portrait_app"
    app_password: str | None = None
    app_url: str | None = None
    pool_size: int = 10
    # Pinging each pooled connection before use costs a round trip per request. Without it, a
    # connection that died (PostgreSQL restarted) fails its first statement with a 503, and
    # SQLAlchemy then recycles every connection of the pool made before the failure.
    pool_pre_ping: bool = False
    statement_timeout_ms: int = 30_000


class RedisSettings(BaseModel):
    url: str | None = None
    connect_timeout_s: float = 1.0


class WorkerSettings(BaseModel):
    queue_name: str = "portrait:queue"
    max_jobs: int = 20
    poll_delay_s: float = 0.1
    job_timeout_s: int = 600
    # Jobs run set-based statements over a whole tenant (a million customers): they get far
    # longer than a request's 30 s.
    statement_timeout_ms: int = 900_000
    max_tries: int = 3
    # Caps every job kind's own timeout. arq hands the job of a worker killed outright (kill
    # -9, OOM) to another worker only after the longest timeout + 10 s: an hour with the
    # import's. Deployments that would rather re-run sooner (and the fault tests) lower it.
    max_job_timeout_s: int | None = None
    # Seconds a stopping worker lets running jobs finish before handing them back (keep it
    # under the orchestrator's grace period: docker compose gives the worker 60 s).
    shutdown_grace_s: int = 45
    outbox_interval_s: float = 1.0
    outbox_min_age_s: float = 2.0
    inbox_interval_s: float = 0.2
    # Delivery ids are remembered this long (never less than 3 days) to drop replays.
    webhook_retention_days: int = 7
    # Outbound webhooks: how often due deliveries are looked for, how long a receiver gets to
    # answer, and how many attempts (with exponential backoff) before a delivery is failed.
    outbound_interval_s: float = 1.0
    outbound_timeout_s: float = 10.0
    outbound_max_attempts: int = 8
    outbound_backoff_base_s: float = 30.0
    # Where the worker keeps its columnar copy of each store's events (funnels read it; see
    # shared.funnels.columns). Empty: the system temporary directory. Delete it any time: the
    # next funnel run rebuilds it. `funnel_cache = false` reads from PostgreSQL every run.
    cache_dir: Path | None = None
    funnel_cache: bool = True
    # Build the copies when the worker starts (in the background), not in the first run.
    warm_funnel_copies: bool = True


class ApiSettings(BaseModel):
    cors_origins: list[str] = Field(default_factory=list)
    default_page_size: int = 50
    max_page_size: int = 500
    max_body_bytes: int = 5 * 1024 * 1024
    max_import_bytes: int = 2 * 1024 * 1024 * 1024
    # The public survey answering routes (no API key): requests per minute.
    survey_token_limit_per_minute: int = 30
    survey_ip_limit_per_minute: int = 120
    # Idempotency keys are kept this long (never less than 24 h), then purged by the worker.
    idempotency_keep_hours: int = 24
    # Requests per minute per API key, unless the key sets its own; 0 turns the limit off.
    rate_limit_per_minute: int = 30_000
    # After a webhook secret is rotated the previous one is still accepted this long.
    webhook_secret_overlap_hours: float = 24.0


class Settings(BaseSettings):
    """Environment variables `PORTRAIT_*`, with `__` between group and field
    (`PORTRAIT_WORKER__MAX_JOBS=50`); `DATABASE_URL` and `REDIS_URL` are read unprefixed too,
    as every platform sets them that way."""

    model_config = SettingsConfigDict(
        env_prefix="PORTRAIT_", env_nested_delimiter="__", extra="ignore"
    )

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    log_json: bool = True
    data_dir: Path = Path(".portrait")

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "PORTRAIT_DATABASE_URL")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "PORTRAIT_REDIS_URL")
    )
    cors_origins: str = Field(
        default="", validation_alias=AliasChoices("CORS_ORIGINS", "PORTRAIT_CORS_ORIGINS")
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @model_validator(mode="after")
    def _merge_flat_aliases(self) -> Settings:
        if self.database_url and not self.database.url:
            self.database.url = self.database_url
        if self.redis_url and not self.redis.url:
            self.redis.url = self.redis_url
        if self.cors_origins and not self.api.cors_origins:
            self.api.cors_origins = [o.strip() for o in self.cors_origins.split(",") if o.strip()]
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
