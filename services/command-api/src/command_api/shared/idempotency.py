"""``Idempotency-Key``: the first answer for (tenant, key) is replayed to every retry of the same request."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import asyncpg
import orjson
from fastapi import Header, Request

from command_api.shared.problems import Problem

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=200,
    description="Makes a retry safe: the same key and request replay the first answer and send nothing twice; "
                "the same key for a different request is a 422.")]


@dataclass(frozen=True, slots=True)
class Claim:
    """What the store knows about a key: nothing (claimed now), a stored answer, or a running first request."""

    claimed: bool
    fingerprint: bytes | None = None
    body: dict[str, Any] | None = None


class IdempotencyStore(Protocol):
    async def claim(self, tenant_id: str, key: str, fingerprint: bytes) -> Claim: ...
    async def release(self, tenant_id: str, key: str) -> None: ...
    async def complete(self, tenant_id: str, key: str, body: dict[str, Any]) -> None: ...


class PgIdempotencyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def claim(self, tenant_id: str, key: str, fingerprint: bytes) -> Claim:
        claimed = await self.pool.fetchval(
            """INSERT INTO idempotency_keys (tenant_id, key, fingerprint) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING RETURNING true""",
            tenant_id, key, fingerprint,
        )
        if claimed:
            return Claim(True)
        row = await self.pool.fetchrow(
            "SELECT fingerprint, body FROM idempotency_keys WHERE tenant_id = $1 AND key = $2", tenant_id, key
        )
        if row is None:  # the first request failed and released the key meanwhile
            return await self.claim(tenant_id, key, fingerprint)
        return Claim(False, bytes(row["fingerprint"]), None if row["body"] is None else orjson.loads(row["body"]))

    async def release(self, tenant_id: str, key: str) -> None:
        await self.pool.execute("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2", tenant_id, key)

    async def complete(self, tenant_id: str, key: str, body: dict[str, Any]) -> None:
        await self.pool.execute(
            "UPDATE idempotency_keys SET status_code = 202, body = $3 WHERE tenant_id = $1 AND key = $2",
            tenant_id, key, orjson.dumps(body).decode(),
        )


def fingerprint(method: str, path: str, body: bytes) -> bytes:
    return hashlib.sha256(b"\0".join([method.encode(), path.encode(), body])).digest()


@dataclass(frozen=True, slots=True)
class Idem:
    """One request's idempotency: its key (None without the header) and the fingerprint of the request."""

    key: str | None
    fingerprint: bytes = b""

    @classmethod
    async def of(cls, request: Request, key: str | None) -> Idem:
        if key is None:
            return cls(None)
        return cls(key, fingerprint(request.method, request.url.path, await request.body()))

    def seed(self, tenant_id: str) -> str | None:
        """Names this request: command ids derived from it make a re-publish after a half-failed attempt
        recognisable to the runner, so nothing goes twice."""
        return None if self.key is None else f"{tenant_id}\0{self.key}\0{self.fingerprint.hex()}"


async def run_once(store: IdempotencyStore, tenant_id: str, idem: Idem,
                   produce: Callable[[str | None], Awaitable[dict[str, Any]]]) -> tuple[dict[str, Any], bool]:
    """Run ``produce(seed)`` once per key; returns (the answer, replayed)."""
    if idem.key is None:
        return await produce(None), False
    claim = await store.claim(tenant_id, idem.key, idem.fingerprint)
    if claim.claimed:
        try:
            body = await produce(idem.seed(tenant_id))
        except BaseException:
            await store.release(tenant_id, idem.key)
            raise
        await store.complete(tenant_id, idem.key, body)
        return body, False
    if claim.fingerprint != idem.fingerprint:
        raise Problem(422, "this Idempotency-Key was already used for a different request")
    if claim.body is None:
        raise Problem(409, "a request with this Idempotency-Key is still in progress")
    return claim.body, True
