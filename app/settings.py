"""Service configuration, read once from the environment (and `.env`).

Every setting is documented in README.md. Names are the environment variable names
themselves (no prefix), so `DATABASE_URL` sets `database_url`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class CleverApiVersion(StrEnum):
    V3_0 = "v3.0"
    V3_1 = "v3.1"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class SettingsError(Exception):
    """Raised when the environment holds a setting the service cannot start with."""


_CRON_FIELD_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def parse_cron(expression: str) -> list[set[int] | None]:
    """Parse a five-field cron expression into one set of allowed values per field.

    `None` stands for `*` (every value). Supports lists, ranges and steps
    (`0,30`, `1-5`, `*/15`); names such as `MON` are not supported.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError("expected five fields: minute hour day-of-month month day-of-week")
    parsed: list[set[int] | None] = []
    for text, (low, high) in zip(fields, _CRON_FIELD_RANGES, strict=True):
        if text == "*":
            parsed.append(None)
            continue
        values: set[int] = set()
        for part in text.split(","):
            spec, _, step_text = part.partition("/")
            step = int(step_text) if step_text else 1
            if spec == "*":
                start, stop = low, high
            elif "-" in spec:
                start_text, stop_text = spec.split("-", 1)
                start, stop = int(start_text), int(stop_text)
            else:
                start = stop = int(spec)
                if step_text:
                    stop = high
            if step < 1 or not (low <= start <= stop <= high):
                raise ValueError(f"{part!r} is outside {low}-{high}")
            values.update(range(start, stop + 1, step))
        parsed.append(values)
    return parsed


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """All configuration of the API, the worker and the CLI."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    database_url: str | None = Field(
        default=None,
        description="Postgres URL (postgresql:// or postgresql+asyncpg://). "
        "Unset: an embedded Postgres under DEV_DATA_DIR.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL (redis://, rediss://, unix://). "
        "Unset: an embedded Redis under DEV_DATA_DIR.",
    )
    dev_data_dir: str = Field(
        default=".devdata", description="Where the embedded Postgres and Redis keep their data."
    )

    clever_api_base_url: str = "https://api.clever.com"
    clever_api_version: CleverApiVersion = CleverApiVersion.V3_0
    clever_district_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    clever_client_id: str | None = None
    clever_client_secret: SecretStr | None = None
    clever_oauth_base_url: str = "https://clever.com"
    # A sync holds a few pages at once (fetched ahead, normalized, being copied): 5,000
    # records a page keep a worker's memory near flat across district sizes, at half the
    # peak of Clever's largest pages and no slower (`bench sync`).
    clever_page_size: int = Field(default=5000, ge=1, le=10000)
    clever_timeout_seconds: float = Field(default=30.0, gt=0)
    clever_max_retries: int = Field(default=6, ge=0, le=20)
    clever_requests_per_minute: int = Field(default=1200, ge=1)
    # How long the district -> token mapping is trusted before Clever is asked again.
    clever_tokens_refresh_seconds: int = Field(default=300, ge=0)

    sync_full_cron: str = "0 3 * * *"
    sync_max_deactivate_ratio: float = Field(default=0.25, ge=0.0, le=1.0)
    # The console shows a district stale without a successful sync this recent.
    sync_stale_after_hours: int = Field(default=24, ge=1, le=24 * 30)
    sync_events_interval_seconds: int = Field(default=300, ge=30, le=86400)
    sync_events_max_age_days: int = Field(
        default=25,
        ge=1,
        le=29,
        description="An incremental sync of a district whose last successful sync is older "
        "runs as a full sync: Clever keeps events for 30 days.",
    )

    history_retention_days: int = Field(
        default=730,
        ge=1,
        le=36500,
        description="How long the change log keeps changes (as-of reads and the change feed"
        " reach this far back); a daily job prunes older ones.",
    )

    webhook_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="How long an outbound webhook delivery waits for the subscriber's answer.",
    )
    webhook_max_changes: int = Field(
        default=500, ge=1, le=1000, description="Changes per outbound webhook delivery."
    )
    webhook_max_body_bytes: int = Field(
        default=1_000_000,
        ge=1024,
        description="A delivery whose changes would be larger carries only the feed cursors"
        " to read them from.",
    )
    webhook_pause_after_failures: int = Field(
        default=10,
        ge=1,
        description="Failed attempts in a row after which a webhook is paused until resumed.",
    )
    webhook_retry_base_seconds: float = Field(
        default=10.0, gt=0, description="The first retry's delay; each next one doubles."
    )
    webhook_retry_max_seconds: float = Field(
        default=3600.0, gt=0, description="The longest delay between two attempts."
    )

    sync_webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Shared secrets for signed `POST /v1/sync` webhooks, comma-separated "
        "(several during a rotation). Empty: webhooks are refused.",
    )

    # How long a console sign-in lasts.
    console_session_hours: int = Field(default=8, ge=1, le=24 * 7)
    api_key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="How long an API process trusts a key it has looked up; a revoked key "
        "stops working within this time.",
    )
    api_rate_limit_per_minute: int = Field(
        default=6000,
        ge=0,
        description="Requests an API key may make per clock minute, counted across every API "
        "process in Redis (429 with Retry-After beyond). 0: no limit.",
    )
    api_auth_failures_before_lockout: int = Field(
        default=20,
        ge=0,
        description="Unknown, revoked or expired keys a client address may present within "
        "API_AUTH_LOCKOUT_SECONDS before it is refused (429) for the rest of that time. "
        "0: no lock-out.",
    )
    api_auth_lockout_seconds: int = Field(
        default=900,
        ge=1,
        le=86400,
        description="The window over which bad keys are counted, and so the longest lock-out.",
    )
    audit_retention_days: int = Field(
        default=365,
        ge=1,
        le=36500,
        description="How long the audit trail of key use is kept; a daily job prunes older events.",
    )
    api_pool_size: int = Field(
        default=32,
        ge=1,
        le=100,
        description="Postgres connections per API process for reads (sync triggers use 4 more).",
    )
    api_answer_cache_mb: int = Field(
        default=128,
        ge=0,
        le=65536,
        description="Megabytes of hot read answers (a teacher's students, a user's sections by"
        " term) each API process keeps until Postgres notifies a change of their district;"
        " 0: none.",
    )
    api_max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest request body accepted; a larger one is refused (413) while it is "
        "being read, before authentication.",
    )
    api_keep_alive_seconds: int = Field(
        default=75,
        ge=1,
        le=3600,
        description="How long an idle client connection stays open. Longer than the idle "
        "timeout of the client or load balancer in front, so that they close it first: a "
        "server closing it as a request arrives resets that request.",
    )
    api_body_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="How long a client may take to send a request body (408 after).",
    )

    port: int = Field(
        default=8000,
        ge=1,
        le=65535,
        description="The port `roster api` and `roster demo` (`make run`) serve the API on "
        "unless given --port.",
    )

    log_level: LogLevel = LogLevel.INFO
    access_log: bool = Field(
        default=True,
        description="Log one line per API request (method, route template, status, duration, "
        "key id; never query values or bodies), logger `roster.access` at INFO.",
    )
    school_year_start_month: int = Field(
        default=7,
        ge=1,
        le=12,
        description="The month a school year starts in, for graduation years inferred from "
        "grades (grade 12 graduates at the end of the school year under way).",
    )
    sensitive_fields_enabled: bool = Field(
        default=False,
        description="Store and serve iep/ell/frl/504/gifted/disability fields "
        "(a district's own flag overrides this).",
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = value.split("://", 1)[0]
        if scheme not in {"postgresql", "postgres", "postgresql+asyncpg"}:
            raise ValueError("must start with postgresql:// or postgresql+asyncpg://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if value.split("://", 1)[0] not in {"redis", "rediss", "unix"}:
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("clever_api_base_url", "clever_oauth_base_url")
    @classmethod
    def _check_http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("clever_district_tokens", "sync_webhook_secrets", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("sync_full_cron")
    @classmethod
    def _check_cron(cls, value: str) -> str:
        parse_cron(value)
        return value

    @property
    def sqlalchemy_database_url(self) -> str:
        """The database URL in the form SQLAlchemy's asyncpg dialect wants."""
        return to_sqlalchemy_url(self.require_database_url())

    @property
    def asyncpg_database_url(self) -> str:
        """The database URL in the form asyncpg's `connect()` wants."""
        return to_asyncpg_url(self.require_database_url())

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise SettingsError("DATABASE_URL is not set and no embedded Postgres was started")
        return self.database_url

    def require_redis_url(self) -> str:
        if self.redis_url is None:
            raise SettingsError("REDIS_URL is not set and no embedded Redis was started")
        return self.redis_url


def to_sqlalchemy_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"postgresql+asyncpg://{rest}" if scheme != "postgresql+asyncpg" else url


def to_asyncpg_url(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning a validation failure into one readable `SettingsError`.

    The message names each offending environment variable, e.g.
    `invalid setting CLEVER_API_VERSION: Input should be 'v3.0' or 'v3.1'`.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variable = str(error["loc"][0]).upper() if error["loc"] else "?"
            problems.append(f"invalid setting {variable}: {error['msg']}")
        raise SettingsError("; ".join(problems)) from None
