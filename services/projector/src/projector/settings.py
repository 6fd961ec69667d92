"""Projector settings (env prefix ``PROJECTOR_``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings

from zapstream_platform.settings import KafkaSettings, PostgresSettings, service_config


class Settings(BaseSettings):
    model_config = service_config("PROJECTOR_")

    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    projection: str = "main"
    group_id: str = "zapstream-projector"
    batch_max: int = 1000
    # Events per transaction while rebuilding (make replay): larger batches mean fewer statements per event.
    replay_batch: int = 5000
    max_attempts: int = 4
    retry_backoff_s: float = 0.2
    log_level: str = "INFO"
