"""Operator commands: ``python -m zapstream_platform {bootstrap,create-key,export}``."""

from __future__ import annotations

import argparse
import asyncio
import sys

import asyncpg

from .apikeys import create_key
from .cli import Settings, add_export_arguments, export
from .db import migrate
from .topics import ensure_topics


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


def main() -> None:
    parser = argparse.ArgumentParser(prog="zapstream_platform")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("bootstrap", help="create topics and apply migrations (idempotent)")
    key = sub.add_parser("create-key", help="create an API key for a tenant and print it")
    key.add_argument("--tenant", required=True)
    key.add_argument("--name", default="default")
    key.add_argument("--key", help="use this exact key (dev only)")
    add_export_arguments(sub.add_parser("export", help="the same as `zapstream events export`"))
    args = parser.parse_args()
    settings = Settings()
    if args.cmd == "bootstrap":
        asyncio.run(_bootstrap(settings))
    elif args.cmd == "export":
        sys.exit(asyncio.run(export(settings, args)))
    else:
        asyncio.run(_create_key(settings, args.tenant, args.name, args.key))


if __name__ == "__main__":
    main()
