"""WebSocket gateway settings (env prefix ``WS_GATEWAY_``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings

from zapstream_platform.settings import KafkaSettings, PostgresSettings, service_config


class Settings(BaseSettings):
    model_config = service_config("WS_GATEWAY_")

    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    host: str = "127.0.0.1"
    port: int = 8081
    client_queue: int = 1000
    log_level: str = "INFO"
