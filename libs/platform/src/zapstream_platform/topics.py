"""Topic names and their idempotent creation.

One topic per aggregate type, all keyed by sessionId and with the same
partition count, so a session's commands and events share a partition number
(co-partitioned) and its order holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from .settings import KafkaSettings


@dataclass(frozen=True, slots=True)
class Topics:
    session_commands: str
    session_events: str
    session_commands_dlq: str
    # Internal to the runner: compacted, latest state of each session plus checkpoints.
    session_snapshots: str
    # Campaigns (keyed by campaignId; suppression facts by tenantId). Events kept forever.
    campaign_commands: str = ""
    campaign_events: str = ""
    # Short retention, keyed by sessionId: the whole copies of session events that carry a secret (QR and
    # pairing codes), written in the same transactions as the events (zapstream_contracts.secrets).
    session_secrets: str = ""

    @classmethod
    def from_settings(cls, kafka: KafkaSettings) -> Topics:
        prefix = kafka.topic_prefix
        return cls(
            session_commands=f"{prefix}.session.commands",
            session_events=f"{prefix}.session.events",
            session_commands_dlq=f"{prefix}.session.commands.dlq",
            session_snapshots=f"{prefix}.session.snapshots",
            campaign_commands=f"{prefix}.campaign.commands",
            campaign_events=f"{prefix}.campaign.events",
            session_secrets=f"{prefix}.session.secrets",
        )


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (as every producer of ours uses it)."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def replication_for(kafka: KafkaSettings, brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas): the configured ones, else from the broker count.

    Three copies with two in sync when the cluster has three brokers or more (one broker can be lost
    with nothing acknowledged lost and writes going on); on fewer, every broker holds a copy.
    """
    rf = kafka.replication_factor or max(1, min(3, brokers))
    isr = kafka.min_insync_replicas or (2 if rf >= 3 else 1)
    return rf, min(isr, rf)


def partition_owner_producer(bootstrap_servers: str, group_id: str, input_topic: str,
                             partition: int) -> AIOKafkaProducer:
    """The transactional producer of the owner of one partition of ``input_topic`` (not started).

    Its transactional id names the group, the input topic and the partition, so whichever process owns that
    partition next fences this one when it starts its own: a deposed owner can no longer commit.
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        transactional_id=f"{group_id}.{input_topic}.{partition}",
        enable_idempotence=True,
        linger_ms=2,
        max_batch_size=256 * 1024,
    )


def new_topic(kafka: KafkaSettings, name: str, retention_ms: int, brokers: int = 1,
              configs: dict[str, str] | None = None) -> NewTopic:
    """A topic with the configured partitions, replication factor and ``min.insync.replicas``."""
    rf, isr = replication_for(kafka, brokers)
    return NewTopic(
        name=name,
        num_partitions=kafka.partitions,
        replication_factor=rf,
        topic_configs={"retention.ms": str(retention_ms), "min.insync.replicas": str(isr), **(configs or {})},
    )


def _snapshot_configs(kafka: KafkaSettings) -> dict[str, str]:
    # Compacted: one snapshot per session survives (plus the latest checkpoint). Short segments
    # and a low dirty ratio let the cleaner keep a new owner's read small.
    return {"cleanup.policy": "compact", "segment.ms": str(kafka.snapshot_segment_ms),
            "min.cleanable.dirty.ratio": "0.1", "delete.retention.ms": "3600000"}


async def ensure_topics(kafka: KafkaSettings, extra: dict[str, int] | None = None) -> list[str]:
    """Create the topics that are missing; return the names created.

    ``extra`` maps further topic names to their retention (e.g. the identity topic), created the same way.
    """
    topics = Topics.from_settings(kafka)
    wanted = {
        topics.session_commands: kafka.command_retention_ms,
        topics.session_events: kafka.event_retention_ms,
        topics.session_commands_dlq: kafka.dlq_retention_ms,
        topics.session_snapshots: -1,
        **(extra or {}),
        topics.campaign_commands: kafka.command_retention_ms,
        topics.campaign_events: kafka.event_retention_ms,
        topics.session_secrets: kafka.secret_retention_ms,
    }
    configs = {topics.session_snapshots: _snapshot_configs(kafka)}
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        brokers = len((await admin.describe_cluster()).get("brokers", [])) if wanted.keys() - existing else 1
        missing = [new_topic(kafka, name, retention, brokers, configs.get(name))
                   for name, retention in wanted.items() if name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process won the race; that is the idempotent outcome
        return [t.name for t in missing]
    finally:
        await admin.close()


async def partitions_of(kafka: KafkaSettings | str, topic: str) -> list[int]:
    """The partition numbers of ``topic`` (empty if it does not exist); ``kafka``: settings or bootstrap servers."""
    options = kafka.client_options() if isinstance(kafka, KafkaSettings) else {"bootstrap_servers": kafka}
    admin = AIOKafkaAdminClient(**options)
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
