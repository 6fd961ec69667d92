"""Session runner settings (env prefix ``RUNNER_``)."""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from zapstream_platform.settings import KafkaSettings, S3Settings, service_config


def _default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    model_config = service_config("RUNNER_")

    kafka: KafkaSettings = KafkaSettings()
    s3: S3Settings = S3Settings()
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
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    fetch_linger_ms: int = Field(default=10, ge=0)
    flush_linger_ms: int = Field(default=10, ge=0)
    max_attempts: int = Field(default=4, ge=1)
    retry_backoff_s: float = 0.2
    # Scratch space for media on its way between storage, ffmpeg and WhatsApp (default: the system temp dir).
    media_scratch_dir: str | None = None
    media_attempts: int = Field(default=5, ge=1)
    log_level: str = "INFO"
