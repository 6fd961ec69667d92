"""Settings blocks shared by every service.

Each service owns one ``BaseSettings`` with its own env prefix and nests these
blocks (``<PREFIX>KAFKA__BOOTSTRAP_SERVERS=...``). Nothing else reads the environment.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import SettingsConfigDict

DAY_MS = 24 * 3600 * 1000


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:19092"
    topic_prefix: str = "zapstream"
    partitions: int = Field(default=6, ge=1)
    command_retention_ms: int = 7 * DAY_MS
    # -1: event topics are the source of truth and keep everything.
    event_retention_ms: int = -1
    dlq_retention_ms: int = 30 * DAY_MS


class PostgresSettings(BaseModel):
    dsn: SecretStr = SecretStr("postgresql://zapstream:zapstream@127.0.0.1:55432/zapstream")
    min_pool: int = 2
    max_pool: int = 20


def service_config(prefix: str) -> SettingsConfigDict:
    """The settings config every service uses: its prefix, nested ``__`` keys."""
    return SettingsConfigDict(env_prefix=prefix, env_nested_delimiter="__", extra="ignore")
