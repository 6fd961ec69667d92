"""Composition root of the campaign runner: settings → pool → campaign owners, outcome router, projection."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable

from campaign_runner.campaigns import CampaignOwner
from campaign_runner.group import PartitionGroup, Worker
from campaign_runner.projection import CampaignProjection, replay
from campaign_runner.router import OutcomeRouter, TenantWords
from campaign_runner.settings import Settings
from zapstream_platform import logs
from zapstream_platform.db import create_pool
from zapstream_platform.metrics import Metrics
from zapstream_platform.observed import run_observed
from zapstream_platform.pii import KeyRing
from zapstream_platform.topics import Topics, ensure_topics

log = logging.getLogger(__name__)


async def run(settings: Settings, metrics: Metrics | None = None) -> None:
    metrics = metrics or Metrics("campaign-runner")
    await ensure_topics(settings.kafka)
    topics = Topics.from_settings(settings.kafka)
    pool = await create_pool(settings.postgres)
    bootstrap = settings.kafka.bootstrap_servers

    def group(name: str, group_id: str, topic: str, factory: Callable[[int], Worker]) -> PartitionGroup:
        return PartitionGroup(
            name=name, bootstrap_servers=bootstrap, group_id=group_id, topic=topic,
            instance_id=settings.instance_id, factory=factory, batch_max=settings.batch_max,
            poll_timeout_ms=settings.poll_timeout_ms, session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms, retry_backoff_s=settings.retry_backoff_s)

    words = TenantWords(pool, settings.optout_words, settings.tenant_settings_ttl_s)
    keys = KeyRing(pool)
    parts: list[PartitionGroup | CampaignProjection] = []
    if settings.run_campaigns:
        parts.append(group(
            "campaigns", settings.group_id, topics.campaign_commands,
            lambda p: CampaignOwner(partition=p, topics=topics, bootstrap_servers=bootstrap,
                                    group_id=settings.group_id, tick_s=settings.tick_ms / 1000,
                                    metrics=metrics, keys=keys)))
    if settings.run_router:
        router_group = f"{settings.group_id}-outcomes"
        parts.append(group(
            "outcomes", router_group, topics.session_events,
            lambda p: OutcomeRouter(partition=p, topics=topics, bootstrap_servers=bootstrap,
                                    group_id=router_group, stop_words=words, metrics=metrics, keys=keys)))
    if settings.run_projection:
        parts.append(CampaignProjection(pool, bootstrap, topics.campaign_events, f"{settings.group_id}-projection",
                                        keys=keys))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: [p.request_stop() for p in parts])
    log.info("campaign runner started", extra={"fields": {"instance": settings.instance_id}})
    try:
        await asyncio.gather(*(p.run() for p in parts))
    finally:
        await pool.close()


async def run_replay(settings: Settings) -> None:
    pool = await create_pool(settings.postgres)
    try:
        count = await replay(pool, settings.kafka.bootstrap_servers, Topics.from_settings(settings.kafka).campaign_events)
        print(f"replayed {count} campaign events")
    finally:
        await pool.close()


def main() -> None:
    settings = Settings()
    logs.configure("campaign-runner", settings.log_level)
    if sys.argv[1:2] == ["replay"]:
        asyncio.run(run_replay(settings))
        return
    run_observed("campaign-runner", settings, lambda metrics: run(settings, metrics))
