"""Webhooks service settings (env prefix ``WEBHOOKS_``; OpenTelemetry's standard ``OTEL_*`` names too)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from zapstream_platform.settings import KafkaSettings, PostgresSettings, service_config
from zapstream_platform.telemetry import TelemetrySettings


class Settings(TelemetrySettings, BaseSettings):
    model_config = service_config("WEBHOOKS_")

    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    group_id: str = "zapstream-webhooks"
    batch_max: int = Field(default=500, ge=1)
    # How long a young redacted event waits for its whole copy (with the QR or pairing code) to become
    # readable on the secrets topic before it is sent redacted (webhooks.secrets).
    secret_wait_s: float = Field(default=10.0, ge=0)
    # Retries: exponential backoff from backoff_base_s, capped at backoff_cap_s, each delay randomised by
    # ±jitter. With the defaults, 15 attempts span about 24 hours (see webhooks.backoff.total_span).
    max_attempts: int = Field(default=15, ge=1)
    backoff_base_s: float = Field(default=10.0, gt=0)
    backoff_cap_s: float = Field(default=6 * 3600.0, gt=0)
    jitter: float = Field(default=0.2, ge=0, lt=1)
    # Consecutive dead letters after which an endpoint is disabled (and webhook.endpoint.disabled is emitted).
    disable_after_dead: int = Field(default=5, ge=1)
    # HTTP: per-attempt timeout, how much of an answer is read, concurrency overall and per endpoint
    # (a slow endpoint can hold at most per_endpoint_concurrency of the concurrency slots).
    timeout_s: float = Field(default=10.0, gt=0)
    max_response_bytes: int = Field(default=64 * 1024, ge=0)
    concurrency: int = Field(default=64, ge=1)
    per_endpoint_concurrency: int = Field(default=4, ge=1)
    poll_interval_s: float = Field(default=0.5, gt=0)
    # A claimed delivery whose sender died (SIGKILL, lost node) is retried once timeout_s + this has passed.
    claim_lease_margin_s: float = Field(default=30.0, gt=0)
    # SSRF: receivers on loopback / private / link-local addresses, and plain http, only when allowed.
    allow_private_networks: bool = False
    allow_http: bool = False
    metrics_host: str = "127.0.0.1"
    # /metrics, /healthz and /readyz; 0: none (ports of every service: docs/operations.md).
    metrics_port: int = Field(default=9103, ge=0, le=65535)
    log_level: str = "INFO"
