"""Composition root of the webhooks service: settings → pool, HTTP client, metrics → enqueuer + dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import httpx

from webhooks.consumer import Enqueuer
from webhooks.dispatcher import Dispatcher
from webhooks.replay import replay_loop
from webhooks.settings import Settings
from zapstream_platform import logs, telemetry
from zapstream_platform.db import create_pool
from zapstream_platform.metrics import Health, Metrics, serve
from zapstream_platform.pii import KeyRing
from zapstream_platform.topics import Topics

log = logging.getLogger(__name__)


async def run(settings: Settings, metrics: Metrics, health: Health) -> None:
    pool = await create_pool(settings.postgres)
    limits = httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)
    client = httpx.AsyncClient(timeout=httpx.Timeout(settings.timeout_s), follow_redirects=False, limits=limits,
                               trust_env=False)
    topics = Topics.from_settings(settings.kafka)
    topic = topics.session_events
    dispatcher = Dispatcher(settings, pool, client, metrics, health=health)
    keys = KeyRing(pool)  # personal fields of events are decrypted before delivery (see docs/events.md)
    enqueuer = Enqueuer(settings, pool, topic, metrics, dispatcher.wake, keys, health=health,
                        secrets_topic=topics.session_secrets)
    stopping = asyncio.Event()

    def stop() -> None:
        stopping.set()
        enqueuer.request_stop()
        dispatcher.request_stop()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    tasks = [asyncio.create_task(enqueuer.run()), asyncio.create_task(dispatcher.run()),
             asyncio.create_task(replay_loop(settings, pool, topic, stopping, dispatcher.wake, keys,
                                             secrets_topic=topics.session_secrets))]
    log.info("webhooks started", extra={"fields": {"topic": topic, "metrics_port": settings.metrics_port}})
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # a crashed loop ends the process (its supervisor restarts it)
    finally:
        stop()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, settings.timeout_s + 10)
        await client.aclose()
        await pool.close()


def main() -> None:
    settings = Settings()
    logs.configure("webhooks", settings.log_level)
    # httpx logs every request's full URL at INFO; receivers' URLs may carry tokens.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel("WARNING")
    metrics = Metrics("webhooks")
    # /readyz: PostgreSQL answered the last dispatch round, Kafka the last poll, and partitions are assigned.
    health = Health(("postgres", "kafka", "assigned"))
    server = (serve(metrics, settings.metrics_port, settings.metrics_host, health)[0]
              if settings.metrics_port else None)
    provider = telemetry.setup_tracing("webhooks", settings)
    try:
        asyncio.run(run(settings, metrics, health))
    finally:
        if provider is not None:
            provider.shutdown()
        if server is not None:
            server.shutdown()
