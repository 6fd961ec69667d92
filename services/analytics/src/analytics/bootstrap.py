"""Composition root of the analytics service: settings → topics → the faust app's worker."""

from __future__ import annotations

import asyncio
import sys
import time

import asyncpg

from analytics.app import build_app
from analytics.settings import Settings
from zapstream_platform import logs
from zapstream_platform.topics import ensure_topics


async def _clear(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.postgres.dsn.get_secret_value())
    try:
        await conn.execute("TRUNCATE analytics_buckets")
    finally:
        await conn.close()


def main() -> None:
    settings = Settings()
    logs.configure("analytics", settings.log_level)
    if sys.argv[1:2] == ["rebuild"]:
        # A fresh app id: new consumer group and new changelogs, so every window is recounted from offset 0.
        asyncio.run(_clear(settings))
        settings = settings.model_copy(update={"app_id": f"{settings.app_id}-r{int(time.time())}"})
        print(f"rebuilding with app id {settings.app_id}; set ANALYTICS_APP_ID to it from now on")
    # The broker does not auto-create topics: the source topics must exist before faust subscribes.
    asyncio.run(ensure_topics(settings.kafka))
    app = build_app(settings)
    from faust.worker import Worker

    Worker(app, loglevel=settings.log_level.lower(), quiet=True).execute_from_commandline()
