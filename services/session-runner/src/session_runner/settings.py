"""Session runner settings (env prefix ``RUNNER_``)."""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from zapstream_platform.settings import KafkaSettings, PostgresSettings, S3Settings, service_config
from zapstream_platform.telemetry import TelemetrySettings


def _default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(TelemetrySettings, BaseSettings):
    """``OTEL_EXPORTER_OTLP_ENDPOINT`` (unprefixed, from :class:`TelemetrySettings`) turns tracing on."""

    model_config = service_config("RUNNER_")

    kafka: KafkaSettings = KafkaSettings()
    s3: S3Settings = S3Settings()
    # Only for the tenants' data keys (``pii_keys``): personal fields of events are encrypted with them.
    postgres: PostgresSettings = PostgresSettings(min_pool=1, max_pool=4)
    # How long a tenant's key (or its erasure) is cached: an erasure reaches this runner within that time.
    pii_key_ttl_s: float = Field(default=60.0, gt=0)
    group_id: str = "zapstream-session-runner"
    instance_id: str = Field(default_factory=_default_instance)
    driver: Literal["sim", "neonize"] = "sim"
    sim_url: str = "http://127.0.0.1:8090"
    # neonize (real WhatsApp): device store is postgres://…?sslmode=disable, or a directory for SQLite files
    neonize_store: str = ""
    neonize_sessions_per_worker: int = Field(default=4, ge=1)
    neonize_max_workers: int = Field(default=64, ge=1)
    neonize_connect_timeout_s: float = 20.0
    neonize_request_timeout_s: float = 30.0
    neonize_proxy: str | None = None
    batch_max: int = Field(default=500, ge=1)
    poll_timeout_ms: int = 100
    # Failover: a SIGKILLed runner is noticed after session_timeout_ms (the broker allows
    # >= 500 ms, see infra/bin/kafka.sh); peers learn of the rebalance within one heartbeat.
    session_timeout_ms: int = Field(default=1_500, ge=500)
    heartbeat_interval_ms: int = Field(default=250, ge=50)
    # A send for a session that is reconnecting waits this long before failing with
    # session_unavailable (campaign sends wait without limit).
    hold_deadline_s: float = Field(default=60.0, gt=0)
    sends_per_session: int = Field(default=8, ge=1)
    # Events between two snapshot checkpoints: bounds what a new owner replays.
    checkpoint_events: int = Field(default=1_000, ge=10)
    # Graceful shutdown: wait this long for calls in flight, then for the next owner to take
    # the connections over, before closing them.
    handover_timeout_s: float = Field(default=3.0, ge=0)
    fetch_linger_ms: int = Field(default=10, ge=0)
    flush_linger_ms: int = Field(default=10, ge=0)
    max_attempts: int = Field(default=4, ge=1)
    retry_backoff_s: float = 0.2
    # Scratch space for media on its way between storage, ffmpeg and WhatsApp (default: the system temp dir).
    media_scratch_dir: str | None = None
    media_attempts: int = Field(default=5, ge=1)
    log_level: str = "INFO"
    # /metrics on its own port (docs/operations.md); 0: none. Several runners on one machine need one each.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    # How often sessions by state and consumer lag are sampled for the metrics.
    metrics_interval_s: float = Field(default=5.0, gt=0)
