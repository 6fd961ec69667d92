"""Analytics settings (env prefix ``ANALYTICS_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from zapstream_platform.settings import KafkaSettings, PostgresSettings, service_config


class Settings(BaseSettings):
    model_config = service_config("ANALYTICS_")

    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    # The faust app id: its consumer group and the prefix of its changelog topics. A new id rebuilds
    # every window from offset 0 (``python -m analytics rebuild`` does that after clearing the rows).
    app_id: str = "zapstream-analytics"
    flush_interval_s: float = Field(default=1.0, gt=0)
    hour_windows_kept_days: int = Field(default=3, ge=1)
    day_windows_kept_days: int = Field(default=40, ge=2)
    processing_guarantee: str = "exactly_once"
    data_dir: str = ".data/analytics"
    log_level: str = "INFO"
