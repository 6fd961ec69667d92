"""Crypto-shredding: the key store (PostgreSQL) of the per-subject data keys that personal data is encrypted with.

The codec is the contract's (:mod:`zapstream_contracts.pii`, re-exported here): a field is written as
``zsenc:1:<subjectId>:<base64url(nonce ‖ AES-256-GCM ciphertext+tag)>``. Keys live in ``pii_keys``
(migration 0016): one per user (identity topic) and one per tenant (session event topic). Erasing a subject
deletes its key (and records the erasure in ``pii_erasures``), after which every copy reads as erased.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeAlias, TypeVar

import asyncpg
import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from zapstream_contracts.pii import (
    ERASED,
    PREFIX,
    decrypt,
    decrypt_payload,
    encrypt,
    encrypt_fields,
    is_encrypted,
    new_key,
    open_envelope,
    pii_fields,
    reveal,
    seal_envelope,
    subject_of,
    subjects_in,
    subjects_of,
)
from zapstream_platform.errors import is_infrastructure

__all__ = [
    "ERASED", "PREFIX", "KeyRing", "Revealer", "data_key", "decrypt", "encrypt", "encrypt_fields", "erase",
    "erase_tenant", "is_encrypted", "keys_for", "reveal", "subject_of", "subjects_in",
]

# -- key store (PostgreSQL) -------------------------------------------------------------------------------

Conn: TypeAlias = "asyncpg.Connection | asyncpg.Pool"


async def data_key(conn: asyncpg.Connection, subject_id: str, tenant_id: str, kind: str = "user") -> bytes | None:
    """The subject's key, created on first use; None once the subject was erased (nothing new is written)."""
    if await conn.fetchval("SELECT 1 FROM pii_erasures WHERE subject_id = $1", subject_id):
        return None
    await conn.execute(
        "INSERT INTO pii_keys (subject_id, tenant_id, kind, data_key) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (subject_id) DO NOTHING", subject_id, tenant_id, kind, AESGCM.generate_key(bit_length=256))
    key = await conn.fetchval("SELECT data_key FROM pii_keys WHERE subject_id = $1", subject_id)
    return bytes(key) if key is not None else None


async def erase(conn: asyncpg.Connection, subject_id: str, tenant_id: str, kind: str = "user",
                by: str | None = None) -> bool:
    """Destroy the subject's key (crypto-shredding); True when this call erased it."""
    await conn.execute("DELETE FROM pii_keys WHERE subject_id = $1", subject_id)
    done = await conn.fetchval(
        "INSERT INTO pii_erasures (subject_id, tenant_id, kind, erased_by) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (subject_id) DO NOTHING RETURNING true", subject_id, tenant_id, kind, by)
    return bool(done)


async def keys_for(conn: Conn, subjects: Iterable[str]) -> dict[str, bytes]:
    wanted = sorted(set(subjects))
    if not wanted:
        return {}
    rows = await conn.fetch("SELECT subject_id, data_key FROM pii_keys WHERE subject_id = ANY($1::text[])", wanted)
    return {r["subject_id"]: bytes(r["data_key"]) for r in rows}


class Revealer:
    """Decrypts records for a reader with access to the key table (caches keys; erased subjects stay erased)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.keys: dict[str, bytes] = {}
        self.missing: set[str] = set()

    async def reveal(self, value: Any) -> Any:
        unknown = subjects_in(value) - self.keys.keys() - self.missing
        if unknown:
            found = await keys_for(self.conn, unknown)
            self.keys |= found
            self.missing |= unknown - found.keys()
        return reveal(value, self.keys)


async def erase_tenant(conn: asyncpg.Connection, tenant_id: str, by: str | None = None) -> list[str]:
    """Destroy the tenant's key and every key of its subjects (users, contacts); the subjects erased now."""
    subjects = {r["subject_id"]: r["kind"] for r in await conn.fetch(
        "SELECT subject_id, kind FROM pii_keys WHERE tenant_id = $1", tenant_id)}
    subjects.setdefault(tenant_id, "tenant")
    done = [s for s, kind in sorted(subjects.items()) if await erase(conn, s, tenant_id, kind, by=by)]
    return done


class _TenantEnvelope(Protocol):
    """A session ``Envelope`` or a ``CampaignEnvelope``: both carry their tenant and are sealed with its key."""

    @property
    def type(self) -> str: ...

    @property
    def payload(self) -> dict[str, Any]: ...

    @property
    def tenant_id(self) -> str: ...


E = TypeVar("E", bound=_TenantEnvelope)


class KeyRing:
    """The session and campaign event topics' keys (one per tenant) for a service with access to ``pii_keys``.

    Writers :meth:`seal` envelopes (the tenant's key is created on first use); readers :meth:`open` them,
    or :meth:`open_value` a raw record value. Keys (and the absence of one) are cached for ``ttl_s``, so an
    erasure reaches a long-running reader within that time; a replay started after it sees it at once.
    An erased tenant's new records are sealed with a throwaway key: they are erased from the start.
    While the database is unreachable, keys cached earlier keep serving (stale rather than stopped: the
    runner and the readers ride out a PostgreSQL restart for the tenants they have seen).
    """

    def __init__(self, pool: asyncpg.Pool, ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.pool = pool
        self.ttl_s = ttl_s
        self.clock = clock
        self._keys: dict[str, tuple[float, bytes | None]] = {}

    def _cached(self, subject: str) -> tuple[bool, bytes | None]:
        hit = self._keys.get(subject)
        if hit is None or self.clock() - hit[0] > self.ttl_s:
            return False, None
        return True, hit[1]

    def _stale(self, subjects: Iterable[str], exc: BaseException) -> dict[str, bytes | None]:
        """What was cached for ``subjects`` when the database failed; re-raises unless all were."""
        if not is_infrastructure(exc) or any(s not in self._keys for s in subjects):
            raise exc
        return {s: self._keys[s][1] for s in subjects}

    async def keys(self, subjects: Iterable[str]) -> dict[str, bytes]:
        """The keys of ``subjects`` that exist (erased or unknown ones are left out)."""
        out: dict[str, bytes] = {}
        unknown: list[str] = []
        for subject in subjects:
            known, key = self._cached(subject)
            if not known:
                unknown.append(subject)
            elif key is not None:
                out[subject] = key
        if unknown:
            try:
                found = await keys_for(self.pool, unknown)
            except Exception as exc:
                return out | {s: k for s, k in self._stale(unknown, exc).items() if k is not None}
            now = self.clock()
            for subject in unknown:
                self._keys[subject] = (now, found.get(subject))
            out |= found
        return out

    async def writer_key(self, tenant_id: str) -> bytes:
        """The tenant's key, created on first use; a throwaway one when the tenant was erased."""
        known, key = self._cached(tenant_id)
        if not known:
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    key = await data_key(conn, tenant_id, tenant_id, "tenant")
            except Exception as exc:
                key = self._stale([tenant_id], exc)[tenant_id]
            else:
                self._keys[tenant_id] = (self.clock(), key)
        return key if key is not None else new_key()

    async def seal(self, env: E) -> E:
        tenant = env.tenant_id
        if not tenant or pii_fields(env.type) is None:
            return env
        return seal_envelope(env, await self.writer_key(tenant), tenant)

    async def open(self, env: E) -> E:
        subjects = subjects_of(env.type, env.payload)
        if not subjects:
            return env
        return open_envelope(env, await self.keys(subjects))

    async def open_value(self, value: bytes) -> bytes:
        """A record value (``{type, …, payload}`` JSON) with its personal fields decrypted, as the writer
        would have serialized it in clear; values with nothing encrypted are returned as they are."""
        if PREFIX.encode() not in value:
            return value
        body: dict[str, Any] = orjson.loads(value)
        type_, payload = str(body.get("type", "")), body.get("payload")
        if not isinstance(payload, dict):
            return value
        subjects = subjects_of(type_, payload)
        if not subjects:
            return value
        body["payload"] = decrypt_payload(type_, payload, await self.keys(subjects))
        return orjson.dumps(body)

