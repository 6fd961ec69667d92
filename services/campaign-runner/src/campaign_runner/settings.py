"""Campaign runner settings (env prefix ``CAMPAIGN_RUNNER_``)."""

from __future__ import annotations

import os
import socket

from pydantic import Field
from pydantic_settings import BaseSettings

from zapstream_platform.settings import KafkaSettings, PostgresSettings, service_config
from zapstream_platform.telemetry import TelemetrySettings


def _default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(TelemetrySettings, BaseSettings):
    """``OTEL_EXPORTER_OTLP_ENDPOINT`` (unprefixed, from :class:`TelemetrySettings`) turns tracing on."""

    model_config = service_config("CAMPAIGN_RUNNER_")

    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    group_id: str = "zapstream-campaign-runner"
    instance_id: str = Field(default_factory=_default_instance)
    # How often each owned partition looks for due sends (pacing resolution).
    tick_ms: int = Field(default=200, ge=10)
    batch_max: int = Field(default=500, ge=1)
    poll_timeout_ms: int = 100
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    retry_backoff_s: float = 0.5
    # Words that opt a number out when a contact replies with one of them (plus each tenant's own).
    optout_words: list[str] = Field(default_factory=lambda: ["STOP", "BAJA", "SALIR"])
    tenant_settings_ttl_s: float = 30.0
    # Which parts run in this process (all three by default).
    run_campaigns: bool = True
    run_router: bool = True
    run_projection: bool = True
    log_level: str = "INFO"
    # /metrics on its own port (docs/operations.md); 0: none. Several runners on one host need one each.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9104, ge=0, le=65535)
