"""Composition root of the command API: settings → pool + producer → services → app, relay and mail sender."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI
from opentelemetry.trace import TracerProvider

from command_api.agents.repository import AgentsRepository
from command_api.agents.service import AgentsService
from command_api.app import Services, build_app
from command_api.calls.service import CallsService
from command_api.campaigns.context import CampaignContext
from command_api.campaigns.service import CampaignService
from command_api.chats.repository import ChatsRepository
from command_api.chats.service import ChatsService
from command_api.dead_letters.repository import DeadLettersRepository
from command_api.dead_letters.service import DeadLettersService
from command_api.groups.repository import GroupsRepository
from command_api.groups.service import GroupsService
from command_api.identity.repository import IdentityRepository
from command_api.identity.service import IdentityService
from command_api.keys.repository import KeysRepository
from command_api.keys.service import KeysService
from command_api.media.repository import MediaRepository
from command_api.media.service import MediaLibrary
from command_api.messages.repository import MessagesRepository
from command_api.messages.service import MessagesService
from command_api.photos.service import PhotosService
from command_api.seed003.repository import Seed003Repository
from command_api.seed003.service import Seed003Service
from command_api.sessions.declared import declare_sessions
from command_api.sessions.repository import SessionsRepository
from command_api.sessions.service import SessionsService
from command_api.settings import Settings
from command_api.shared import mailer, outbox
from command_api.shared.access import Access
from command_api.shared.bus import KafkaCommandBus
from command_api.shared.commands import Commands
from command_api.shared.idempotency import PgIdempotencyStore
from command_api.shared.ratelimit import RateLimiter
from command_api.shared.security import Authenticator
from command_api.webhooks.repository import WebhooksRepository
from command_api.webhooks.service import WebhooksService
from zapstream_platform import logs, telemetry
from zapstream_platform.db import create_pool
from zapstream_platform.metrics import Metrics
from zapstream_platform.ownership import PartitionOwners
from zapstream_platform.storage import MediaStore
from zapstream_platform.tokens import TokenSigner
from zapstream_platform.topics import Topics, partitions_of

log = logging.getLogger(__name__)


async def listen_identity(auth: Authenticator, bootstrap: str, topic: str, stopping: asyncio.Event) -> None:
    """Evict a tenant's cached principals on each of its identity events (revoked keys, disabled users, …).

    Reads from the live end, with no consumer group: every API process hears every event.
    """
    while not stopping.is_set():
        try:
            partitions = await partitions_of(bootstrap, topic)
            if not partitions:
                await outbox._sleep(stopping, 1)
                continue
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                        isolation_level="read_committed")
            await consumer.start()
            try:
                tps = [TopicPartition(topic, p) for p in sorted(partitions)]
                consumer.assign(tps)
                await consumer.seek_to_end(*tps)
                # Anything cached before we were positioned may be stale: start clean.
                auth.evict_all()
                auth.listening = True
                while not stopping.is_set():
                    batches = await consumer.getmany(timeout_ms=200, max_records=500)
                    for records in batches.values():
                        for record in records:
                            tenant = dict(record.headers).get("ce_tenantid", b"").decode()
                            if not tenant and record.value:
                                tenant = str(orjson.loads(record.value).get("tenantId", ""))
                            if tenant:
                                auth.evict_tenant(tenant)
            finally:
                auth.listening = False
                auth.evict_all()
                await consumer.stop()
        except Exception:
            log.exception("identity listener failed; principals are not cached meanwhile")
            auth.evict_all()
            await outbox._sleep(stopping, 1)


def create_app(settings: Settings, tracer_provider: TracerProvider | None = None) -> FastAPI:
    """Build the app; connections open in the lifespan, never at import. ``tracer_provider``: see
    :func:`setup_tracing` (None: tracing off)."""
    metrics = Metrics("command-api")
    signer = TokenSigner(settings.jwt)  # fails fast on a bad key configuration
    limiter = RateLimiter(settings.rate_limits)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings.postgres)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, enable_idempotence=True,
                                    acks="all", linger_ms=settings.producer_linger_ms)
        await producer.start()
        stopping = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        store = MediaStore(settings.s3)
        liveness = PartitionOwners(settings.kafka, settings.runner_group_id,
                                   Topics.from_settings(settings.kafka).session_commands)
        try:
            await store.ensure_bucket()
            topics = Topics.from_settings(settings.kafka)
            bus = KafkaCommandBus(producer, topics.session_commands, metrics)
            sessions_repo = SessionsRepository(pool)
            agents_repo = AgentsRepository(pool)
            identity_repo = IdentityRepository(pool)
            access = Access(sessions_repo, agents_repo)
            commands = Commands(bus, PgIdempotencyStore(pool), access, metrics)
            auth = Authenticator(identity_repo, signer, limiter, settings.principal_cache_ttl_s)
            library = MediaLibrary(MediaRepository(pool), store, settings.media)
            campaign_context = CampaignContext(pool, producer, topics, library)
            identity = IdentityService(identity_repo, settings.auth, signer, settings.app_base_url, bus,
                                       evict=auth.evict_tenant, store=store,
                                       purge_settle_s=settings.tenant_purge_settle_s,
                                       purge_sweep_s=settings.tenant_purge_sweep_s,
                                       cancel_campaigns=CampaignService(campaign_context).cancel_all)
            sessions = SessionsService(sessions_repo, access, commands, liveness=liveness,
                                       partitions=settings.kafka.partitions)
            messages = MessagesService(MessagesRepository(pool), access, commands, library)
            chats = ChatsService(ChatsRepository(pool), access, commands, store.url)
            agents = AgentsService(agents_repo, identity_repo, identity)
            photos = PhotosService(store, sessions_repo, access, commands)
            app.state.services = Services(
                auth=auth,
                access=access,
                commands=commands,
                sessions=sessions,
                messages=messages,
                chats=chats,
                media=library,
                identity=identity,
                keys=KeysService(KeysRepository(pool), identity_repo, evict=auth.evict_tenant),
                agents=agents,
                dead_letters=DeadLettersService(
                    DeadLettersRepository(pool, producer, topics, settings.kafka.bootstrap_servers),
                    settings.operator_token),
                seed003=Seed003Service(Seed003Repository(pool), access, sessions, chats, messages, agents, identity,
                                       photos, store.url),
                groups=GroupsService(GroupsRepository(pool), sessions_repo, access, commands),
                calls=CallsService(access, commands),
                photos=photos,
            )
            app.state.webhooks = WebhooksService(WebhooksRepository(pool), settings.webhooks)
            app.state.campaign_context = campaign_context
            tasks = [
                asyncio.create_task(outbox.run_relay(pool, producer, settings.kafka, stopping,
                                                     settings.outbox_poll_interval_s, metrics)),
                asyncio.create_task(mailer.run_sender(pool, settings.mail, stopping)),
                asyncio.create_task(identity.sweep_purges(stopping)),
                asyncio.create_task(listen_identity(auth, settings.kafka.bootstrap_servers,
                                                    outbox.identity_topic(settings.kafka), stopping)),
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
            await liveness.close()
            await producer.stop()
            await pool.close()

    return build_app(settings, lifespan, metrics, tracer_provider)


def setup_tracing(settings: Settings) -> TracerProvider | None:
    """The process's tracer provider when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (flushed at exit)."""
    return telemetry.setup_tracing("command-api", settings)


def app_factory() -> FastAPI:
    """For uvicorn's worker processes (``factory=True``): each builds its own app from the environment."""
    settings = Settings()
    logs.configure("command-api", settings.log_level)
    return create_app(settings, setup_tracing(settings))


def main() -> None:
    settings = Settings()
    logs.configure("command-api", settings.log_level)
    if settings.workers > 1:
        uvicorn.run("command_api.bootstrap:app_factory", factory=True, workers=settings.workers,
                    host=settings.host, port=settings.port, log_config=None, access_log=False)
    else:
        uvicorn.run(create_app(settings, setup_tracing(settings)), host=settings.host, port=settings.port, log_config=None,
                    access_log=False)
