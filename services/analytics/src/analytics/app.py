"""The faust-streaming app: campaign events → tumbling hour/day windows → ``analytics_buckets``.

Tables (faust, changelogged to Kafka, one shard per source partition):

* ``recipients``: campaign:recipient → group and phone, from ``campaign.recipients.added``, sealed as on
  the topic (the tenant's key opens them when an outcome is counted);
* ``processed``: the last offset counted per source partition (a record seen again is skipped);
* ``hourly`` / ``daily``: tumbling windows (1 h, 1 day, relative to the record's timestamp, so a replay
  puts every fact in the same window) of counts per tenant, group and contact for each outcome.

After each fact the window's absolute counts are marked dirty and a timer upserts them, so writing a
row twice (after a crash) writes the same numbers; a rebuild from offset 0 yields identical rows.
Faust is only the dashboards' engine: campaigns and sends never depend on it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import faust

from analytics.settings import Settings
from analytics.windows import (
    DAY,
    HOUR,
    METRICS,
    SEP,
    Fact,
    facts,
    open_info,
    recipient_key,
    recipients_added,
    sealed_in,
    window_start,
)
from zapstream_contracts import campaign_payloads as cp
from zapstream_contracts.campaign_envelope import CampaignEnvelope
from zapstream_contracts.events import CAMPAIGN_RECIPIENTS_ADDED, CAMPAIGN_UPDATED
from zapstream_platform.pii import KeyRing
from zapstream_platform.topics import Topics

log = logging.getLogger(__name__)

Row = tuple[str, str, float, str, str, int]  # tenant, grain, bucket, dim, key, source partition


def build_app(settings: Settings) -> faust.App:
    topics = Topics.from_settings(settings.kafka)
    partitions = settings.kafka.partitions
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka.bootstrap_servers}",
        store="memory://",
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        datadir=settings.data_dir,
    )
    source = app.topic(topics.campaign_events, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=partitions)
    recipients = app.Table("recipients", default=lambda: None, partitions=partitions)
    # Per source partition, the last offset counted. Faust commits offsets after the changelog, so after a
    # rebalance or a crash a record may come again; its counts are already in the tables: skip it.
    processed = app.Table("processed", default=lambda: -1, partitions=partitions)
    hourly = app.Table("hourly", default=int, partitions=partitions).tumbling(
        timedelta(seconds=HOUR), expires=timedelta(days=settings.hour_windows_kept_days)).relative_to_stream()
    daily = app.Table("daily", default=int, partitions=partitions).tumbling(
        timedelta(seconds=DAY), expires=timedelta(days=settings.day_windows_kept_days)).relative_to_stream()
    dirty: dict[Row, tuple[int, int, int, int]] = {}
    state: dict[str, Any] = {}

    async def pg() -> asyncpg.Pool:
        pool = state.get("pool")
        if pool is None:
            pool = state["pool"] = await asyncpg.create_pool(settings.postgres.dsn.get_secret_value(),
                                                             min_size=1, max_size=2)
        return pool

    async def keyring() -> KeyRing:
        # The recipients' phones and groups are encrypted with the tenant's key on the topic.
        keys = state.get("keys")
        if keys is None:
            keys = state["keys"] = KeyRing(await pg())
        return keys

    def counts(table: Any, fact: Fact, part: int) -> tuple[int, int, int, int]:
        return tuple(  # type: ignore[return-value]
            int(table[Fact(fact.tenant_id, fact.dim, fact.key, m).table_key(part)].current()) for m in METRICS)

    @app.agent(source)
    async def count(stream: Any) -> None:
        async for event in stream.events():
            value = event.value
            part, offset = event.message.partition, event.message.offset
            if offset <= processed[str(part)]:
                continue
            processed[str(part)] = offset
            if b'"campaign.recipients.' not in value:
                continue
            env = CampaignEnvelope.from_record(value, event.message.headers)
            if env.type == CAMPAIGN_RECIPIENTS_ADDED.type:
                for key, info in recipients_added(env):  # kept sealed: the table's changelog is a topic too
                    recipients[key] = info
            elif env.type == CAMPAIGN_UPDATED.type:
                ts = float(event.message.timestamp)  # faust gives seconds
                wanted = [recipient_key(env.campaign_id, u.recipient_id)
                          for u in env.data(cp.RecipientsUpdated).updates]
                lookup = {k: recipients.get(k) for k in wanted}
                subjects = set().union(*(sealed_in(v) for v in lookup.values()))
                if subjects:
                    keys = await (await keyring()).keys(subjects)
                    lookup = {k: open_info(v, keys) for k, v in lookup.items()}
                for fact in facts(env, lookup):
                    key = fact.table_key(part)
                    hourly[key] += 1
                    daily[key] += 1
                    dirty[(fact.tenant_id, "hour", window_start(ts, HOUR), fact.dim, fact.key, part)] = counts(
                        hourly, fact, part)
                    dirty[(fact.tenant_id, "day", window_start(ts, DAY), fact.dim, fact.key, part)] = counts(
                        daily, fact, part)

    @app.timer(interval=settings.flush_interval_s)  # type: ignore[untyped-decorator]
    async def flush() -> None:
        if not dirty:
            return
        pool = await pg()
        rows = list(dirty.items())
        dirty.clear()
        try:
            await pool.executemany(
                """INSERT INTO analytics_buckets (tenant_id, grain, bucket, dim, key, source_partition,
                                                 sent, delivered, read, failed)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                   ON CONFLICT (tenant_id, grain, dim, bucket, key, source_partition) DO UPDATE
                   SET sent = excluded.sent, delivered = excluded.delivered, read = excluded.read,
                       failed = excluded.failed, updated_at = now()""",
                [(t, g, datetime.fromtimestamp(b, UTC), d, k, p, *n) for (t, g, b, d, k, p), n in rows])
        except Exception:
            for row, n in rows:  # keep them for the next flush (newer values win)
                dirty.setdefault(row, n)
            log.exception("analytics flush failed; will retry")

    return app


__all__ = ["SEP", "build_app"]
