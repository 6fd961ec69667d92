"""WebSocket gateway settings (env prefix ``WS_GATEWAY_``)."""

from __future__ import annotations

from pydantic import BaseModel
from pydantic_settings import BaseSettings

from zapstream_platform.settings import KafkaSettings, PostgresSettings, service_config
from zapstream_platform.tokens import JwtSettings


class WsAuth(BaseModel):
    """How often sockets' permissions are re-read (revoked keys, disabled agents, reassigned chats)."""

    refresh_s: float = 2.0


class Settings(BaseSettings):
    model_config = service_config("WS_GATEWAY_")

    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    jwt: JwtSettings = JwtSettings()  # the same keys as the command API's (WS_GATEWAY_JWT__KEYS)
    ws_auth: WsAuth = WsAuth()
    host: str = "127.0.0.1"
    port: int = 8081
    client_queue: int = 1000
    log_level: str = "INFO"
