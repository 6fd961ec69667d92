"""Composition root of the command API: settings → pool + producer → app, relay and mail sender."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from command_api import dead_letters, mailer, media, outbox, problems
from command_api.application import CommandBus, Idempotency, Queries
from command_api.auth import (
    AuthService,
    RateLimited,
    build_auth_router,
    principal_dependency,
    rate_limited_response,
)
from command_api.campaigns import context as campaign_slices
from command_api.identity import build_identity_router
from command_api.identity_sessions import declare_sessions
from command_api.media_library import MediaLibrary
from command_api.permissions import Permissions
from command_api.routes import build_router
from command_api.settings import Settings
from zapstream_platform import logs
from zapstream_platform.db import create_pool
from zapstream_platform.storage import MediaStore
from zapstream_platform.tokens import TokenSigner
from zapstream_platform.topics import Topics

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    """Build the app; connections open in the lifespan, never at import."""
    app = FastAPI(title="zapstream command API", version="0.1.0")
    problems.install(app)
    app.add_exception_handler(RateLimited, rate_limited_response)  # type: ignore[arg-type]
    app.add_middleware(
        CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=True,
        allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Api-Key", "traceparent"],
        expose_headers=["Retry-After", "Idempotent-Replayed"],
    )
    signer = TokenSigner(settings.jwt)  # fails fast on a bad key configuration

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if signer.uses_dev_key:
            log.warning("JWT signing uses the built-in development key; set COMMAND_API_JWT__KEYS in production")
        pool = await create_pool(settings.postgres)
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka.bootstrap_servers, enable_idempotence=True, acks="all", linger_ms=1
        )
        await producer.start()
        stopping = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        store = MediaStore(settings.s3)
        try:
            await store.ensure_bucket()
            topic = Topics.from_settings(settings.kafka).session_commands
            bus = CommandBus(producer, topic, pool)
            principal = principal_dependency(pool, signer)
            service = AuthService(pool, settings, signer)
            app.include_router(build_auth_router(service, principal))
            app.include_router(build_identity_router(pool, service, principal))
            library = MediaLibrary(pool, store, settings.media)
            app.include_router(build_router(principal, Permissions(pool), bus, Queries(pool, store.url),
                                            Idempotency(pool), library))
            app.include_router(media.build_router(principal, Permissions(pool), bus, library))
            app.include_router(
                dead_letters.build_router(
                    settings.operator_token, pool, producer, Topics.from_settings(settings.kafka),
                    settings.kafka.bootstrap_servers,
                )
            )
            campaign_slices.mount(app, pool=pool, producer=producer, topics=Topics.from_settings(settings.kafka),
                                  library=library, principal=principal)
            tasks = [
                asyncio.create_task(outbox.run_relay(pool, producer, settings.kafka, stopping,
                                                     settings.outbox_poll_interval_s)),
                asyncio.create_task(mailer.run_sender(pool, settings.mail, stopping)),
            ]
            if settings.sessions_file is not None:
                await declare_sessions(pool, bus, settings.sessions_file)
            yield
        finally:
            stopping.set()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            store.close()
            await producer.stop()
            await pool.close()

    app.router.lifespan_context = lifespan
    return app


def main() -> None:
    settings = Settings()
    logs.configure("command-api", settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)
