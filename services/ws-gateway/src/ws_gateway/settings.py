"""WebSocket gateway settings (env prefix ``WS_GATEWAY_``)."""

from __future__ import annotations

from pydantic import BaseModel, model_validator
from pydantic_settings import BaseSettings

from zapstream_platform.settings import KafkaSettings, PostgresSettings, service_config
from zapstream_platform.telemetry import TelemetrySettings
from zapstream_platform.tokens import JwtSettings, require_strong_keys


class WsAuth(BaseModel):
    """How often sockets' permissions are re-read (revoked keys, disabled agents, reassigned chats)."""

    refresh_s: float = 2.0


class Settings(TelemetrySettings, BaseSettings):
    """``OTEL_EXPORTER_OTLP_ENDPOINT`` (unprefixed, from :class:`TelemetrySettings`) turns tracing on."""

    model_config = service_config("WS_GATEWAY_")

    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    jwt: JwtSettings = JwtSettings()  # the same keys as the command API's (WS_GATEWAY_JWT__KEYS)
    ws_auth: WsAuth = WsAuth()
    host: str = "127.0.0.1"
    port: int = 8081
    client_queue: int = 1000
    log_level: str = "INFO"
    # Development mode (``make dev``): allows the built-in JWT key. Off, a weak or public key refuses to start.
    dev_mode: bool = False

    @model_validator(mode="after")
    def _strong_keys(self) -> Settings:
        require_strong_keys(self.jwt, self.dev_mode, "WS_GATEWAY_")
        return self
