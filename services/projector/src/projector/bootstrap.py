"""Composition root of the projector: settings → pool → projector."""

from __future__ import annotations

import asyncio

from projector.app import Projector, install_signal_handlers
from projector.settings import Settings
from zapstream_platform import logs
from zapstream_platform.db import create_pool


async def run(settings: Settings) -> None:
    pool = await create_pool(settings.postgres)
    try:
        projector = Projector(settings, pool)
        install_signal_handlers(projector)
        await projector.run()
    finally:
        await pool.close()


def main() -> None:
    settings = Settings()
    logs.configure("projector", settings.log_level)
    asyncio.run(run(settings))
