"""Simulator settings, read from ``SIM_*`` environment variables."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the simulator; the only place that reads the environment."""

    model_config = SettingsConfigDict(env_prefix="SIM_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8090
    log_level: str = "info"

    qr_rotate_seconds: float = 20.0
    qr_ttl_seconds: float = 20.0
    pair_code_ttl_seconds: float = 180.0

    # Scripted contacts (any number without a linked device).
    contact_auto_reply: bool = True
    contact_auto_read: bool = True
    contact_typing: bool = True  # composing, then paused, before each auto-reply
    contact_read_delay_ms: int = 20
    contact_reply_delay_ms: int = 50
    contact_reply_prefix: str = "echo: "

    # Like WhatsApp, messages can only be edited for a while after they were sent.
    edit_window_seconds: float = 900.0

    # History sync sent when a device is linked.
    history_seed_contacts: int = 2
    history_max_messages: int = 50

    # At-least-once delivery: un-acked events kept per device for replay.
    max_retained_events: int = 10_000

    # Added latency (ms) before each send is processed; changeable at runtime.
    send_latency_ms: int = 0

    # Media CDN: uploads live here (None: a temp dir made at startup, removed at shutdown).
    media_dir: str | None = None
    # Larger uploads are refused with 413 (WhatsApp's own cap is in the same range).
    max_media_bytes: int = 128 * 1024 * 1024
