"""Command API settings (env prefix ``COMMAND_API_``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings

from zapstream_platform.settings import KafkaSettings, PostgresSettings, service_config


class Settings(BaseSettings):
    model_config = service_config("COMMAND_API_")

    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"
    max_body_bytes: int = 1_048_576
