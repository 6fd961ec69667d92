"""Topic names and their idempotent creation.

One topic per aggregate type, all keyed by sessionId and with the same
partition count, so a session's commands and events share a partition number
(co-partitioned) and its order holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from .settings import KafkaSettings


@dataclass(frozen=True, slots=True)
class Topics:
    session_commands: str
    session_events: str
    session_commands_dlq: str
    # Campaigns (keyed by campaignId; suppression facts by tenantId). Events kept forever.
    campaign_commands: str = ""
    campaign_events: str = ""

    @classmethod
    def from_settings(cls, kafka: KafkaSettings) -> Topics:
        prefix = kafka.topic_prefix
        return cls(
            session_commands=f"{prefix}.session.commands",
            session_events=f"{prefix}.session.events",
            session_commands_dlq=f"{prefix}.session.commands.dlq",
            campaign_commands=f"{prefix}.campaign.commands",
            campaign_events=f"{prefix}.campaign.events",
        )


async def ensure_topics(kafka: KafkaSettings) -> list[str]:
    """Create the topics that are missing; return the names created."""
    topics = Topics.from_settings(kafka)
    wanted = {
        topics.session_commands: kafka.command_retention_ms,
        topics.session_events: kafka.event_retention_ms,
        topics.session_commands_dlq: kafka.dlq_retention_ms,
        topics.campaign_commands: kafka.command_retention_ms,
        topics.campaign_events: kafka.event_retention_ms,
    }
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=name,
                num_partitions=kafka.partitions,
                replication_factor=1,
                topic_configs={"retention.ms": str(retention), "min.insync.replicas": "1"},
            )
            for name, retention in wanted.items()
            if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process won the race; that is the idempotent outcome
        return [t.name for t in missing]
    finally:
        await admin.close()


async def partitions_of(bootstrap_servers: str, topic: str) -> list[int]:
    """The partition numbers of ``topic`` (empty if it does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    for entry in described:
        if entry.get("topic") == topic and not entry.get("error_code"):
            return sorted(int(p["partition"]) for p in entry.get("partitions", []))
    return []


async def read_all(bootstrap_servers: str, topic: str) -> list[Any]:
    """Every committed record of ``topic``, from the start of each partition to its current end.

    For small topics read whole (dead letters, tests); replay streams instead.
    """
    tps = [TopicPartition(topic, p) for p in await partitions_of(bootstrap_servers, topic)]
    # "earliest": the reset that assign() starts must not land after the seek and skip to the end.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
                records += batch.get(tp, [])
        return records
    finally:
        await consumer.stop()
