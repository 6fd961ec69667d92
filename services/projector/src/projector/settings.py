"""Projector settings (env prefix ``PROJECTOR_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from zapstream_platform.settings import KafkaSettings, PostgresSettings, service_config
from zapstream_platform.telemetry import TelemetrySettings


class Settings(TelemetrySettings, BaseSettings):
    """``OTEL_EXPORTER_OTLP_ENDPOINT`` (unprefixed, from :class:`TelemetrySettings`) turns tracing on."""

    model_config = service_config("PROJECTOR_")

    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    projection: str = "main"
    group_id: str = "zapstream-projector"
    batch_max: int = 1000
    # Events per transaction while rebuilding (make replay): larger batches mean fewer statements per event.
    replay_batch: int = 5000
    max_attempts: int = 4
    # On start, how far back the secrets topic is read for QR and pairing codes (older ones have expired).
    secrets_lookback_s: float = Field(default=120.0, ge=0)
    retry_backoff_s: float = 0.2
    log_level: str = "INFO"
    # /metrics on its own port (docs/operations.md); 0: none. Several projectors on one host need one each.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    # How often the consumer lag is sampled for the metrics.
    metrics_interval_s: float = Field(default=5.0, gt=0)
