"""Settings blocks shared by every service.

Each service owns one ``BaseSettings`` with its own env prefix and nests these
blocks (``<PREFIX>KAFKA__BOOTSTRAP_SERVERS=...``). Nothing else reads the environment.
"""

from __future__ import annotations

from typing import Any, Literal

from aiokafka.helpers import create_ssl_context
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
    # The secrets topic (QR and pairing codes): they expire within minutes and replay never needs them,
    # so they are kept only long enough for the gateway and the projector to pass them on.
    secret_retention_ms: int = Field(default=60 * 60 * 1000, ge=60 * 1000)
    # Snapshot topic segments roll this often so the log cleaner can compact them.
    snapshot_segment_ms: int = 10 * 60 * 1000
    # Copies of each partition, and how many must have a write before it is acknowledged (acks=all).
    # None: chosen from the cluster when topics are created (topics.replication_for): 1/1 on the single
    # dev node, 3/2 on three brokers or more (infra/bin/kafka-cluster.sh), so one broker can die without
    # losing an acknowledged record or refusing writes.
    replication_factor: int | None = Field(default=None, ge=1)
    min_insync_replicas: int | None = Field(default=None, ge=1)
    # Managed Kafka (MSK, Confluent Cloud, Redpanda Cloud): TLS and SASL. ssl_cafile None = system CAs.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments every aiokafka client (producer, consumer, admin) is built with."""
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers,
                                   "security_protocol": self.security_protocol}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        if self.security_protocol.startswith("SASL_"):
            options["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        return options


class PostgresSettings(BaseModel):
    dsn: SecretStr = SecretStr("postgresql://zapstream:zapstream@127.0.0.1:55432/zapstream")
    min_pool: int = 2
    max_pool: int = 20


class S3Settings(BaseModel):
    """Object storage (any S3-compatible service). Defaults match ``infra/bin/s3.sh`` (S3Proxy on 127.0.0.1:19000).

    ``endpoint_url=None`` means AWS S3 itself. The bucket is private: objects are served through presigned
    GET URLs valid for ``presign_ttl_s``, unless ``public_base_url`` is set (a CDN or public bucket), in
    which case URLs are ``{public_base_url}/{key}``.
    """

    endpoint_url: str | None = "http://127.0.0.1:19000"
    region: str = "us-east-1"
    access_key: str = "zapstream"
    secret_key: SecretStr = SecretStr("zapstream-secret")
    bucket: str = "zapstream-media"
    public_base_url: str | None = None
    presign_ttl_s: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    # Path-style (http://host/bucket/key) works everywhere incl. S3Proxy and MinIO; "virtual" for AWS if wanted.
    addressing_style: Literal["path", "virtual", "auto"] = "path"
    # Multipart part size (S3's minimum is 5 MiB except for the last part); also the memory bound per upload.
    part_size: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)


def service_config(prefix: str) -> SettingsConfigDict:
    """The settings config every service uses: its prefix, nested ``__`` keys."""
    return SettingsConfigDict(env_prefix=prefix, env_nested_delimiter="__", extra="ignore")
