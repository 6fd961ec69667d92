"""The session-event key ring: seals with the tenant's key, opens records byte for byte as written in clear,
caches keys for a while, serves stale keys through a database outage, and seals an erased tenant's new data
with a key nobody has."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from zapstream_contracts import payloads as p
from zapstream_contracts.envelope import Envelope
from zapstream_platform.pii import KeyRing


class FakePool:
    """Just what ``pii.data_key`` and ``pii.keys_for`` ask of PostgreSQL."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}
        self.erased: set[str] = set()
        self.down = False
        self.queries = 0

    def _hit(self) -> None:
        self.queries += 1
        if self.down:
            raise ConnectionRefusedError("database down")

    async def fetch(self, sql: str, subjects: list[str]) -> list[dict[str, Any]]:
        self._hit()
        return [{"subject_id": s, "data_key": self.keys[s]} for s in subjects if s in self.keys]

    async def fetchval(self, sql: str, subject: str) -> Any:
        self._hit()
        if "pii_erasures" in sql:
            return subject in self.erased or None
        return self.keys.get(subject)

    async def execute(self, sql: str, subject: str, tenant: str, kind: str, key: bytes) -> None:
        self._hit()
        if subject not in self.erased:
            self.keys.setdefault(subject, key)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakePool]:
        self._hit()
        yield self


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _upsert(text: str = "¿quedamos mañana?") -> Envelope:
    payload = p.MessagesUpsert(tenant_id="t1", upsert_type="notify", messages_count=1, messages=[
        p.MessageSummary(id="m1", remote_jid="1@s.whatsapp.net", from_me=False, timestamp=1, text=text,
                         push_name="Ana")]).model_dump(by_alias=True, mode="json")
    return Envelope(type="session.messages.upsert", session_id="s1", event_id="e1",
                    occurred_on="2026-01-01T00:00:00.000Z", payload=payload, version=2)


async def test_sealed_records_open_to_the_bytes_written_in_clear() -> None:
    pool, clock = FakePool(), Clock()
    ring = KeyRing(pool, ttl_s=60, clock=clock)  # type: ignore[arg-type]
    env = _upsert()
    sealed = await ring.seal(env)
    assert "mañana".encode() not in sealed.value() and "t1" in pool.keys
    reader = KeyRing(pool, clock=clock)  # type: ignore[arg-type]
    assert await reader.open_value(sealed.value()) == env.value()
    assert (await reader.open(sealed)).payload == env.payload
    # A record with nothing encrypted is forwarded as it is, without a key lookup.
    queries, clear = pool.queries, env.value()
    assert await reader.open_value(clear) is clear and pool.queries == queries


async def test_keys_are_cached_for_the_ttl_and_an_erasure_shows_after_it() -> None:
    pool, clock = FakePool(), Clock()
    writer = KeyRing(pool, ttl_s=60, clock=clock)  # type: ignore[arg-type]
    reader = KeyRing(pool, ttl_s=60, clock=clock)  # type: ignore[arg-type]
    sealed = await writer.seal(_upsert())
    assert (await reader.open(sealed)).payload["messages"][0]["text"] == "¿quedamos mañana?"
    del pool.keys["t1"]
    pool.erased.add("t1")
    assert (await reader.open(sealed)).payload["messages"][0]["text"] is not None  # cached
    clock.now = 61
    opened = await reader.open(sealed)
    assert opened.payload["messages"][0]["text"] is None and opened.payload["erased"] is True
    # The writer, once it notices, seals with a key nobody has: erased from the start, never a new key.
    fresh = await writer.seal(_upsert("nuevo"))
    assert "t1" not in pool.keys
    assert (await KeyRing(pool).open(fresh)).payload["erased"] is True  # type: ignore[arg-type]


async def test_a_database_outage_serves_stale_keys_but_never_invents_them() -> None:
    pool, clock = FakePool(), Clock()
    ring = KeyRing(pool, ttl_s=60, clock=clock)  # type: ignore[arg-type]
    sealed = await ring.seal(_upsert())
    await ring.open(sealed)
    pool.down, clock.now = True, 600
    assert (await ring.open(sealed)).payload["messages"][0]["text"] == "¿quedamos mañana?"
    assert "mañana".encode() not in (await ring.seal(_upsert())).value()
    with pytest.raises(ConnectionRefusedError):
        await KeyRing(pool).open(sealed)  # type: ignore[arg-type]
