"""``zapstream``: the command line of operators and analysts (installed by ``uv sync`` as a console script).

``zapstream events export --topic zapstream.session.events --since 2026-01-01 --format parquet --out ./export``
writes one flat, typed table per event type (see :mod:`zapstream_platform.export`, docs/analytics.md).
``python -m zapstream_platform`` keeps the older operator spelling (``bootstrap``, ``create-key``, ``export``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from pydantic_settings import BaseSettings

from .settings import KafkaSettings, PostgresSettings, service_config


class Settings(BaseSettings):
    """``ZAPSTREAM_KAFKA__BOOTSTRAP_SERVERS``, ``ZAPSTREAM_POSTGRES__DSN`` (``--reveal`` only), …"""

    model_config = service_config("ZAPSTREAM_")
    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    migrations_dir: Path = Path("db/migrations")


def utc_time(text: str) -> datetime:
    """An RFC 3339 time or a date (``2026-01-01`` is its midnight UTC); no offset means UTC."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date or RFC 3339 time: {text!r} (e.g. 2026-01-01 or 2026-01-01T00:00:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", required=True, help="e.g. zapstream.session.events, zapstream.campaign.events")
    parser.add_argument("--out", type=Path, default=Path("export"),
                        help="directory for <type>.parquet / <type>.csv (default: ./export)")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--since", type=utc_time,
                        help="a date or RFC 3339 time: start at the first record written then, not at offset 0")
    parser.add_argument("--reveal", action="store_true",
                        help="decrypt personal data with the PostgreSQL key table ([erased] when erased)")


async def export(settings: Settings, args: argparse.Namespace) -> int:
    from . import export, pii

    pool = await asyncpg.create_pool(settings.postgres.dsn.get_secret_value(), min_size=1, max_size=2) \
        if args.reveal else None
    try:
        revealer = pii.Revealer(pool).reveal if pool is not None else None
        written = await export.export_topic(settings.kafka, args.topic, args.out, args.format, revealer,
                                            export.print_progress, args.since)
    except export.TopicNotFoundError as exc:
        print(f"zapstream: {exc}", file=sys.stderr)
        return 2
    finally:
        if pool is not None:
            await pool.close()
    for table, w in written.items():
        print(f"{table}: {w.rows} rows -> {w.path}")
    if not written:
        print("no records", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="zapstream", description="zapstream's command line for operators and "
                                     "analysts. Kafka: ZAPSTREAM_KAFKA__BOOTSTRAP_SERVERS (default 127.0.0.1:19092).")
    groups = parser.add_subparsers(dest="group", required=True)
    events = groups.add_parser("events", help="the event log")
    commands = events.add_subparsers(dest="command", required=True)
    add_export_arguments(commands.add_parser(
        "export", help="a topic into one flat, typed Parquet or CSV table per event type"))
    args = parser.parse_args(argv)
    sys.exit(asyncio.run(export(Settings(), args)))
