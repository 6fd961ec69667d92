"""Operator commands: ``python -m zapstream_platform {bootstrap,create-key,export}``."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from pydantic_settings import BaseSettings

from .apikeys import create_key
from .db import migrate
from .settings import KafkaSettings, PostgresSettings, service_config
from .topics import ensure_topics


class Settings(BaseSettings):
    model_config = service_config("ZAPSTREAM_")
    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    migrations_dir: Path = Path("db/migrations")


async def _bootstrap(settings: Settings) -> None:
    created = await ensure_topics(settings.kafka)
    print(f"topics: created {created or 'none (all present)'}")
    applied = await migrate(settings.postgres.dsn.get_secret_value(), settings.migrations_dir)
    print(f"migrations: applied {applied or 'none (up to date)'}")


async def _create_key(settings: Settings, tenant: str, name: str, key: str | None) -> None:
    conn = await asyncpg.connect(settings.postgres.dsn.get_secret_value())
    try:
        print(await create_key(conn, tenant, name, key))
    finally:
        await conn.close()


async def _export(settings: Settings, topic: str, out: Path, fmt: str, reveal: bool,
                  since: datetime | None) -> None:
    from . import export, pii

    pool = await asyncpg.create_pool(settings.postgres.dsn.get_secret_value(), min_size=1, max_size=2) \
        if reveal else None
    try:
        revealer = pii.Revealer(pool).reveal if pool is not None else None
        rows = await export.read_rows(settings.kafka, topic, revealer, export.print_progress, since)
    finally:
        if pool is not None:
            await pool.close()
    for type_, path in export.write_tables(rows, out, fmt).items():
        print(f"{type_}: {len(rows[type_])} rows -> {path}")


def _utc(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(prog="zapstream_platform")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("bootstrap", help="create topics and apply migrations (idempotent)")
    key = sub.add_parser("create-key", help="create an API key for a tenant and print it")
    key.add_argument("--tenant", required=True)
    key.add_argument("--name", default="default")
    key.add_argument("--key", help="use this exact key (dev only)")
    exp = sub.add_parser("export", help="one topic from offset 0 into one flat table per event type")
    exp.add_argument("--topic", required=True, help="e.g. zapstream.session.events")
    exp.add_argument("--out", required=True, type=Path, help="directory for <type>.parquet / <type>.csv")
    exp.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    exp.add_argument("--since", type=_utc, help="RFC 3339 time: start there instead of offset 0")
    exp.add_argument("--reveal", action="store_true",
                     help="decrypt personal data with the PostgreSQL key table ([erased] when erased)")
    args = parser.parse_args()
    settings = Settings()
    if args.cmd == "bootstrap":
        asyncio.run(_bootstrap(settings))
    elif args.cmd == "export":
        asyncio.run(_export(settings, args.topic, args.out, args.format, args.reveal, args.since))
    else:
        asyncio.run(_create_key(settings, args.tenant, args.name, args.key))


if __name__ == "__main__":
    main()
