"""PostgreSQL: pools and forward-only SQL migrations applied under an advisory lock."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from .settings import PostgresSettings

log = logging.getLogger(__name__)
_MIGRATION_LOCK = 0x7A5_0001


async def _keep_session(conn: asyncpg.Connection) -> None:
    """No reset on release: zapstream keeps no session state (only ``SET LOCAL`` inside transactions),
    and asyncpg's default reset costs a round trip per query."""


async def create_pool(pg: PostgresSettings) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        pg.dsn.get_secret_value(),
        min_size=pg.min_pool,
        max_size=pg.max_pool,
        command_timeout=60,
        reset=_keep_session,
    )
    assert pool is not None
    return pool


def _scripts(directory: Path) -> list[tuple[str, str]]:
    return [(path.name, path.read_text()) for path in sorted(directory.glob("*.sql"))]


async def migrate(dsn: str, directory: Path) -> list[str]:
    """Apply every ``NNNN_name.sql`` not applied yet, in order; return those applied."""
    scripts = _scripts(directory)
    conn = await asyncpg.connect(dsn)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for name, sql in scripts:
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations(name) VALUES ($1)", name)
            applied.append(name)
            log.info("applied migration %s", name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        await conn.close()
    return applied


_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _db_name(name: str) -> str:
    if not _DB_NAME.match(name):
        raise ValueError(f"not a plain database name: {name!r}")
    return name


async def create_database(admin_dsn: str, name: str) -> None:
    """Create an empty database (tests, benchmarks and replays each get their own)."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{_db_name(name)}"')
    finally:
        await admin.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    """Drop a database even while clients are connected; idempotent."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{_db_name(name)}" WITH (FORCE)')
    finally:
        await admin.close()


async def seek_to_stored_offsets(consumer: AIOKafkaConsumer, pool: asyncpg.Pool, projection: str, topic: str,
                                 assigned: list[TopicPartition]) -> None:
    """Position a read model's consumer where its last PostgreSQL transaction left each partition.

    The offsets live in ``projector_offsets``, written with the rows; a partition never read starts at 0.
    """
    rows = await pool.fetch(
        "SELECT partition, next_offset FROM projector_offsets WHERE projection = $1 AND topic = $2", projection, topic)
    stored = {r["partition"]: r["next_offset"] for r in rows}
    for tp in assigned:
        if tp.partition in stored:
            consumer.seek(tp, stored[tp.partition])
        else:
            await consumer.seek_to_beginning(tp)
