"""Command API settings (env prefix ``COMMAND_API_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, NamedTuple

from pydantic import AfterValidator, BaseModel, SecretStr, model_validator
from pydantic_settings import BaseSettings

from command_api.webhooks.service import WebhooksConfig
from zapstream_platform.settings import KafkaSettings, PostgresSettings, S3Settings, service_config
from zapstream_platform.telemetry import TelemetrySettings
from zapstream_platform.tokens import JwtSettings, require_strong_keys


class Limit(NamedTuple):
    """At most ``hits`` attempts per ``window_s`` seconds."""

    hits: int
    window_s: int

    @classmethod
    def parse(cls, spec: str) -> Limit:
        """``"<hits>/<seconds>"``, e.g. ``"10/300"``."""
        hits, sep, window = spec.partition("/")
        try:
            limit = cls(int(hits), int(window.strip().rstrip("s")))
        except ValueError:
            limit = cls(0, 0)
        if not sep or limit.hits < 1 or limit.window_s < 1:
            raise ValueError("a rate limit is '<hits>/<seconds>', both positive")
        return limit


def _limit(spec: str) -> str:
    Limit.parse(spec)
    return spec


# Plain strings in the environment: COMMAND_API_AUTH__RATE_LIMITS__LOGIN_ACCOUNT=10/300
LimitSpec = Annotated[str, AfterValidator(_limit)]


class RateLimits(BaseModel):
    login_account: LimitSpec = "10/300"
    login_ip: LimitSpec = "100/300"
    mail_account: LimitSpec = "3/900"  # resend-verification, password-reset
    mail_ip: LimitSpec = "30/900"
    code_account: LimitSpec = "10/900"  # verify, password-reset/confirm
    code_ip: LimitSpec = "100/900"
    register_ip: LimitSpec = "20/3600"


class PlanLimits(BaseModel):
    """Token buckets of one plan: ``"<hits>/<seconds>"`` per API key (or user) and per tenant."""

    per_key: LimitSpec = "5000/1"
    per_tenant: LimitSpec = "10000/1"


class ApiRateLimits(BaseModel):
    """``COMMAND_API_RATE_LIMITS__PLANS='{"default": {...}, "pro": {"per_key": "5000/1", ...}}'``;
    a tenant's plan is ``tenants.plan`` (unknown plans get ``default``)."""

    enabled: bool = True
    plans: dict[str, PlanLimits] = {"default": PlanLimits()}

    @model_validator(mode="after")
    def _has_default(self) -> ApiRateLimits:
        if "default" not in self.plans:
            raise ValueError("rate_limits.plans needs a 'default' plan")
        return self


class AuthSettings(BaseModel):
    """Defaults follow the client's list (seed 000): 15 min access, 30 days refresh, ``refresh_token`` cookie."""

    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    refresh_cookie_name: str = "refresh_token"
    cookie_samesite: Literal["strict", "lax", "none"] = "strict"
    cookie_secure: bool = False
    cookie_path: str = "/auth"
    password_reset_ttl_s: int = 3600
    verification_ttl_s: int = 24 * 3600
    code_max_attempts: int = 5
    require_verified_email: bool = True
    # Behind one trusted reverse proxy: take the client IP from the right-most X-Forwarded-For entry.
    trust_forwarded_for: bool = False
    rate_limits: RateLimits = RateLimits()


class MailSettings(BaseModel):
    """SMTP. Without ``smtp_host`` (dev), mails are written to the log instead of sent."""

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = 10
    sender: str = "zapstream <no-reply@zapstream.local>"
    poll_interval_s: float = 0.5
    max_attempts: int = 8


MB = 1024 * 1024


class MediaSettings(BaseModel):
    """Per-kind upload limits (defaults in line with WhatsApp's Cloud API) and base64 body size."""

    image_max_bytes: int = 5 * MB
    video_max_bytes: int = 16 * MB
    audio_max_bytes: int = 16 * MB
    document_max_bytes: int = 100 * MB
    sticker_max_bytes: int = 512 * 1024
    # JSON bodies carrying base64 media (send routes, /api/send-pdf); base64 is 4/3 of the file.
    base64_body_max_bytes: int = 24 * MB
    images_per_request: int = 10
    probe_timeout_s: float = 30


class Settings(TelemetrySettings, BaseSettings):
    """``OTEL_EXPORTER_OTLP_ENDPOINT`` (unprefixed, from :class:`TelemetrySettings`) turns tracing on."""

    model_config = service_config("COMMAND_API_")

    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    s3: S3Settings = S3Settings()
    webhooks: WebhooksConfig = WebhooksConfig()
    # The session runners' consumer group: whether a session has a live owner is read from it.
    runner_group_id: str = "zapstream-session-runner"
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"
    max_body_bytes: int = 1_048_576  # JSON bodies without media
    media: MediaSettings = MediaSettings()
    jwt: JwtSettings = JwtSettings()
    auth: AuthSettings = AuthSettings()
    mail: MailSettings = MailSettings()
    app_base_url: str = "http://localhost:3000"
    cors_origins: list[str] = ["http://localhost:5173"]
    # The built web console (console/dist; relative to the working directory, the repository for `make dev`).
    console_dir: Path = Path("console/dist")
    outbox_poll_interval_s: float = 0.2
    # Optional JSON file of sessions that must exist (and be started) at boot; see README.
    sessions_file: Path | None = None
    # Enables the operator routes under /dead-letters (header X-Operator-Token); unset: they 404.
    operator_token: SecretStr | None = None
    # Development mode (``make dev``): allows the built-in JWT key. Off, a weak or public key refuses to start.
    dev_mode: bool = False
    rate_limits: ApiRateLimits = ApiRateLimits()
    # The WebSocket gateway that ``/ws/sessions`` on this API's port forwards to.
    ws_gateway_url: str = "ws://127.0.0.1:8081"
    # Uvicorn worker processes (each with its own pool, producer and caches).
    workers: int = 1
    # How long a resolved principal (API key, user) is trusted without a database read. Identity events
    # (revoked key, disabled user, logout-all) evict it at once; this is only the backstop.
    principal_cache_ttl_s: float = 60.0
    # A deleted tenant's purge (S3 files, other services' rows) runs again every ``tenant_purge_sweep_s`` until
    # it succeeded once ``tenant_purge_settle_s`` after the deletion (events in flight may write rows till then).
    tenant_purge_settle_s: float = 600.0
    tenant_purge_sweep_s: float = 30.0
    # FastAPI's built-in OpenTelemetry metrics and logs (its request spans are on whenever tracing is, see
    # OTEL_EXPORTER_OTLP_ENDPOINT); off by default: checking for a provider on every request costs a few
    # percent of the ingest path, and Prometheus has the request metrics already.
    otel: bool = False
    # Producer batching: a 202 still waits for acks=all; this only lets concurrent requests share a batch.
    producer_linger_ms: int = 2

    @model_validator(mode="after")
    def _strong_keys(self) -> Settings:
        require_strong_keys(self.jwt, self.dev_mode, "COMMAND_API_")
        return self
