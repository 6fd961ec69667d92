"""Composition root of the command API: settings → pool + producer → app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from command_api import problems
from command_api.application import Auth, CommandBus, Idempotency, Queries
from command_api.routes import build_router
from command_api.settings import Settings
from zapstream_platform import logs
from zapstream_platform.db import create_pool
from zapstream_platform.topics import Topics


def create_app(settings: Settings) -> FastAPI:
    """Build the app; connections open in the lifespan, never at import."""
    app = FastAPI(title="zapstream command API", version="0.1.0")
    problems.install(app)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.postgres)
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka.bootstrap_servers, enable_idempotence=True, acks="all", linger_ms=1
        )
        await producer.start()
        try:
            topic = Topics.from_settings(settings.kafka).session_commands
            app.include_router(
                build_router(Auth(pool), CommandBus(producer, topic, pool), Queries(pool), Idempotency(pool))
            )
            yield
        finally:
            await producer.stop()
            await pool.close()

    app.router.lifespan_context = lifespan
    return app


def main() -> None:
    settings = Settings()
    logs.configure("command-api", settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)
