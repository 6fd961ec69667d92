"""The consumer loop: a consumer-group member over the session command topic.

Partition ownership is session ownership. Assignment starts a
:class:`PartitionOwner` (fencing the previous owner); revocation hands its
sessions over cleanly. Failover is just a rebalance.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ProducerFenced

from session_runner.drivers.port import WhatsAppDriver
from session_runner.media import MediaPipeline
from session_runner.partition import PartitionOwner
from session_runner.settings import Settings
from zapstream_platform.errors import is_infrastructure
from zapstream_platform.topics import Topics

log = logging.getLogger(__name__)


class SessionRunner(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs partition owners for whatever partitions the group gives this instance."""

    def __init__(self, settings: Settings, driver: WhatsAppDriver, media: MediaPipeline | None = None) -> None:
        self.settings = settings
        self.driver = driver
        self.media = media
        self.topics = Topics.from_settings(settings.kafka)
        self.owners: dict[int, PartitionOwner] = {}
        self.session_owner: dict[str, PartitionOwner] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        # partition → (offset, attempts) of the batch that keeps failing there
        self._failures: dict[int, tuple[int, int]] = {}

    # ConsumerRebalanceListener -------------------------------------------------
    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        owners = [self.owners.pop(tp.partition) for tp in revoked if tp.partition in self.owners]
        await asyncio.gather(*(o.stop() for o in owners), return_exceptions=True)
        for sid in [sid for sid, o in self.session_owner.items() if o in owners]:
            del self.session_owner[sid]

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # aiokafka may fetch for a partition while this listener still runs;
        # paused partitions return nothing until their owner is ready.
        assert self.consumer is not None
        if self._stopping.is_set():
            return  # leaving the group: whoever gets these partitions next starts them
        fresh = [tp for tp in assigned if tp.partition not in self.owners]
        self.consumer.pause(*fresh)
        new = [tp.partition for tp in fresh]
        owners = [
            PartitionOwner(
                partition=part,
                topics=self.topics,
                bootstrap_servers=self.settings.kafka.bootstrap_servers,
                group_id=self.settings.group_id,
                driver=self.driver,
                register=self.session_owner.__setitem__,
                flush_max=self.settings.batch_max,
                flush_linger_s=self.settings.flush_linger_ms / 1000,
                media=self.media,
                media_attempts=self.settings.media_attempts,
            )
            for part in new
        ]
        committed = {tp.partition: await self.consumer.committed(tp) for tp in fresh}
        await asyncio.gather(*(o.start(committed[o.partition]) for o in owners))
        for owner in owners:
            self.owners[owner.partition] = owner
        self.consumer.resume(*fresh)

    # loop ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka.bootstrap_servers,
            group_id=self.settings.group_id,
            client_id=self.settings.instance_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=self.settings.heartbeat_interval_ms,
            max_poll_records=self.settings.batch_max,
            # Under load the broker gathers up to this many ms of commands per fetch: larger
            # batches mean fewer transactions (each costs several round trips).
            fetch_max_wait_ms=self.settings.fetch_linger_ms,
            fetch_min_bytes=64 * 1024,
        )
        self.consumer = consumer
        await consumer.start()
        consumer.subscribe([self.topics.session_commands], listener=self)
        log.info("runner started", extra={"fields": {"instance": self.settings.instance_id}})
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(
                    timeout_ms=self.settings.poll_timeout_ms, max_records=self.settings.batch_max
                )
                await asyncio.gather(*(self._dispatch(tp, records) for tp, records in batches.items() if records))
        finally:
            # Finish in-flight transactions and close connections first, then leave the
            # group: the next owner must not fence a producer that is still writing.
            await self.on_partitions_revoked([TopicPartition(self.topics.session_commands, p) for p in list(self.owners)])
            await consumer.stop()
            # An assignment that raced with the shutdown may have started owners meanwhile.
            await self.on_partitions_revoked([TopicPartition(self.topics.session_commands, p) for p in list(self.owners)])
            log.info("runner stopped")

    async def _dispatch(self, tp: TopicPartition, records: list) -> None:  # type: ignore[type-arg]
        owner = self.owners.get(tp.partition)
        assert self.consumer is not None
        if owner is None:
            # Never drop records: fetch them again once the partition has an owner.
            self.consumer.seek(tp, records[0].offset)
            return
        failing = self._failures.get(tp.partition)
        if failing is not None and failing[0] == owner.next_offset:
            # After a failure, go one record at a time so the poison is the only one held back.
            pending = [r for r in records if r.offset >= owner.next_offset][:1]
            if pending and records[-1] is not pending[0]:
                self.consumer.seek(tp, pending[0].offset + 1)
            records = pending or records
        try:
            await owner.handle_commands(records)
            self._failures.pop(tp.partition, None)
        except ProducerFenced:
            # Another runner owns this partition now; the rebalance will take it from us.
            log.warning("producer fenced", extra={"fields": {"partition": tp.partition}})
            await asyncio.sleep(1.0)
            self.consumer.seek(tp, owner.next_offset)
        except Exception as exc:
            offset = owner.next_offset
            if is_infrastructure(exc):
                log.warning("infrastructure unavailable; retrying", extra={"fields": {"partition": tp.partition,
                                                                                     "error": repr(exc)[:300]}})
                await asyncio.sleep(1.0)
                self.consumer.seek(tp, offset)
                return
            attempts = self._failures.get(tp.partition, (offset, 0))[1] + 1 if failing and failing[0] == offset else 1
            self._failures[tp.partition] = (offset, attempts)
            log.exception("batch failed", extra={"fields": {"partition": tp.partition, "offset": offset,
                                                            "attempt": attempts}})
            poison = next((r for r in records if r.offset >= offset), None)
            if attempts >= self.settings.max_attempts and len(records) == 1 and poison is not None:
                try:
                    await owner.dead_letter(poison, f"{type(exc).__name__}: {exc}")
                    self._failures.pop(tp.partition, None)
                except Exception:
                    log.exception("dead-lettering failed; will retry", extra={"fields": {"partition": tp.partition}})
                    await asyncio.sleep(1.0)
            else:
                await asyncio.sleep(min(self.settings.retry_backoff_s * 2 ** (attempts - 1), 10.0))
            self.consumer.seek(tp, owner.next_offset)


def install_signal_handlers(runner: SessionRunner) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.request_stop)
