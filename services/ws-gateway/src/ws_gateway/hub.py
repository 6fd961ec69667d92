"""Fan-out of the event topic to WebSocket clients, by tenant.

Each client has a bounded queue: a slow client is disconnected (close code
1013) rather than allowed to slow down everyone else or grow memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, TopicPartition

from zapstream_platform.topics import partitions_of

log = logging.getLogger(__name__)

# Bookkeeping events of the runner, not part of the client's contract.
INTERNAL_TYPES = frozenset({b"session.messages.send_requested", b"session.started"})


class Client:
    def __init__(self, tenant_id: str, maxsize: int) -> None:
        self.tenant_id = tenant_id
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize)
        self.overflowed = asyncio.Event()

    def offer(self, frame: bytes) -> None:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed.set()


class Hub:
    def __init__(self) -> None:
        self.clients: dict[str, set[Client]] = defaultdict(set)
        self.delivered = 0
        self.ready = asyncio.Event()  # set once the pump is positioned at the live end

    def add(self, client: Client) -> None:
        self.clients[client.tenant_id].add(client)

    def remove(self, client: Client) -> None:
        group = self.clients.get(client.tenant_id)
        if group is not None:
            group.discard(client)
            if not group:
                del self.clients[client.tenant_id]

    def publish(self, tenant_id: str, frame: bytes) -> None:
        for client in self.clients.get(tenant_id, ()):
            client.offer(frame)
            self.delivered += 1


async def pump(hub: Hub, bootstrap: str, topic: str, stopping: asyncio.Event) -> None:
    """Tail every partition of the event topic from its live end (read-committed)."""
    partitions = await partitions_of(bootstrap, topic)
    while not partitions:
        log.warning("waiting for topic %s", topic)
        await asyncio.sleep(1)
        partitions = await partitions_of(bootstrap, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        hub.ready.set()
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            for records in batches.values():
                for record in records:
                    headers = dict(record.headers)
                    if headers.get("ce_type", b"") in INTERNAL_TYPES:
                        continue
                    tenant = headers.get("ce_tenantid", b"").decode()
                    if tenant and tenant in hub.clients:
                        hub.publish(tenant, record.value)
    finally:
        await consumer.stop()

