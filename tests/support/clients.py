"""Test-side clients: a WebSocket event collector, a topic reader and small polling helpers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import ClientConnection, connect

from zapstream_contracts.envelope import Envelope
from zapstream_platform.topics import read_all

Event = dict[str, Any]


class WsCollector:
    """Connects to ``/ws/sessions`` and keeps every frame it receives."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: list[Event] = []
        self._conn: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> WsCollector:
        self._conn = await connect(self.url, open_timeout=10)
        self._task = asyncio.create_task(self._read())
        await self.wait_for(lambda e: e["type"] == "session.snapshot")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._conn is not None and self._task is not None
        await self._conn.close()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self) -> None:
        assert self._conn is not None
        async for frame in self._conn:
            async with self._changed:
                self.events.append(orjson.loads(frame))
                self._changed.notify_all()

    def of_type(self, type_: str) -> list[Event]:
        return [e for e in self.events if e["type"] == type_]

    async def wait_for(self, pred: Callable[[Event], bool], timeout: float = 20) -> Event:
        deadline = time.monotonic() + timeout
        async with self._changed:
            while True:
                for e in self.events:
                    if pred(e):
                        return e
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    types = [e["type"] for e in self.events]
                    raise AssertionError(f"no matching WS event within {timeout}s; got {types}")
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    pass


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20, interval: float = 0.2) -> Any:
    """Retry ``check`` until it returns a truthy value or raises nothing; return that value."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = await check()
            if value:
                return value
        except AssertionError as exc:
            last = exc
        await asyncio.sleep(interval)
    if last:
        raise last
    raise AssertionError(f"condition not met within {timeout}s")


FORGED_SOURCE = "/tests/forged"
"""``ce_source`` of records a test writes broken on purpose (poison events): no service ever uses it."""


async def read_topic(bootstrap: str, topic: str) -> list[Envelope]:
    """Every committed event of ``topic``, from offset 0 to the current end."""
    return [Envelope.from_record(value, headers) for value, headers in await read_records(bootstrap, topic)]


async def read_records(bootstrap: str, topic: str) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
    """Every committed record of ``topic`` as (value, headers), from offset 0 to the current end."""
    return [(r.value, list(r.headers)) for r in await read_all(bootstrap, topic)]


async def produce_envelopes(bootstrap: str, topic: str, envelopes: list[Envelope]) -> None:
    """Write ``envelopes`` to ``topic`` in one transaction, keyed by session, as the runner would."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"t-{uuid.uuid4()}")
    await producer.start()
    try:
        async with producer.transaction():
            for env in envelopes:
                await producer.send(topic, env.value(), key=env.session_id.encode(), headers=env.headers("/test"))
    finally:
        await producer.stop()
