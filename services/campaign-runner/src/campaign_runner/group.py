"""A consumer-group member that runs one worker per assigned partition (the session runner's pattern).

Each worker owns a transactional producer whose ``transactional.id`` is fixed
per input partition, so a new owner's ``init_transactions`` fences the old one
(aiokafka has no KIP-447). Workers commit their consumed offsets inside their
own transactions; this loop only routes batches and retries failures.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ProducerFenced

from zapstream_platform.errors import is_infrastructure

log = logging.getLogger(__name__)


class Worker(Protocol):
    partition: int
    next_offset: int

    async def start(self, committed: int | None) -> None: ...

    async def stop(self) -> None: ...

    async def handle(self, records: list[Any]) -> None: ...


class PartitionGroup(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        *,
        name: str,
        bootstrap_servers: str,
        group_id: str,
        topic: str,
        instance_id: str,
        factory: Callable[[int], Worker],
        batch_max: int = 500,
        poll_timeout_ms: int = 100,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 1_000,
        retry_backoff_s: float = 0.5,
    ) -> None:
        self.name = name
        self.bootstrap = bootstrap_servers
        self.group_id = group_id
        self.topic = topic
        self.instance_id = instance_id
        self.factory = factory
        self.batch_max = batch_max
        self.poll_timeout_ms = poll_timeout_ms
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.retry_backoff_s = retry_backoff_s
        self.workers: dict[int, Worker] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self._failures: dict[int, int] = {}

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        workers = [self.workers.pop(tp.partition) for tp in revoked if tp.partition in self.workers]
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        assert self.consumer is not None
        if self._stopping.is_set():
            return
        fresh = [tp for tp in assigned if tp.partition not in self.workers]
        self.consumer.pause(*fresh)
        workers = [self.factory(tp.partition) for tp in fresh]
        committed = {tp.partition: await self.consumer.committed(tp) for tp in fresh}
        await asyncio.gather(*(w.start(committed[w.partition]) for w in workers))
        for w in workers:
            self.workers[w.partition] = w
        self.consumer.resume(*fresh)
        log.info("partitions assigned", extra={"fields": {"group": self.name, "partitions": sorted(self.workers)}})

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            client_id=self.instance_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            max_poll_records=self.batch_max,
        )
        self.consumer = consumer
        await consumer.start()
        consumer.subscribe([self.topic], listener=self)
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=self.poll_timeout_ms, max_records=self.batch_max)
                await asyncio.gather(*(self._dispatch(tp, recs) for tp, recs in batches.items() if recs))
        finally:
            await self.on_partitions_revoked([TopicPartition(self.topic, p) for p in list(self.workers)])
            await consumer.stop()
            await self.on_partitions_revoked([TopicPartition(self.topic, p) for p in list(self.workers)])

    async def _dispatch(self, tp: TopicPartition, records: list[Any]) -> None:
        assert self.consumer is not None
        worker = self.workers.get(tp.partition)
        if worker is None:
            self.consumer.seek(tp, records[0].offset)
            return
        try:
            await worker.handle(records)
            self._failures.pop(tp.partition, None)
        except ProducerFenced:
            log.warning("producer fenced", extra={"fields": {"group": self.name, "partition": tp.partition}})
            await asyncio.sleep(1.0)
            self.consumer.seek(tp, worker.next_offset)
        except Exception as exc:
            attempts = self._failures.get(tp.partition, 0) + 1
            self._failures[tp.partition] = attempts
            if is_infrastructure(exc):
                log.warning("infrastructure unavailable; retrying",
                            extra={"fields": {"group": self.name, "error": repr(exc)[:300]}})
            else:
                log.exception("batch failed", extra={"fields": {"group": self.name, "partition": tp.partition,
                                                                "attempt": attempts}})
            await asyncio.sleep(min(self.retry_backoff_s * 2 ** (attempts - 1), 10.0))
            self.consumer.seek(tp, worker.next_offset)
