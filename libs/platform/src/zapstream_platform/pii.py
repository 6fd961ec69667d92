"""Crypto-shredding: personal data in kept-forever topics is encrypted with a per-subject data key.

A field is written as ``zsenc:1:<subjectId>:<base64url(nonce ‖ AES-256-GCM ciphertext+tag)>``, a plain
string, so schemas keep ``type: string`` and a record stays readable (minus that field) without the key.
The associated data binds the ciphertext to its subject and field name, so a value cannot be moved to
another field or subject unnoticed. Keys live in PostgreSQL (``pii_keys``, migration 0016); erasing a
subject deletes its key (and records the erasure in ``pii_erasures``), after which :func:`reveal` shows
``ERASED`` for every copy, wherever it was stored.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from typing import Any, TypeAlias

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "zsenc:1:"
ERASED = "[erased]"
_NONCE = 12


def is_encrypted(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def subject_of(value: str) -> str:
    """The subject whose key encrypted ``value`` (a ``zsenc:1:`` string)."""
    return value[len(PREFIX):].split(":", 1)[0]


def _aad(subject_id: str, field: str) -> bytes:
    return f"{subject_id}|{field}".encode()


def encrypt(key: bytes, subject_id: str, field: str, plaintext: str) -> str:
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), _aad(subject_id, field))
    return f"{PREFIX}{subject_id}:{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"


def decrypt(key: bytes, field: str, value: str) -> str:
    subject_id, blob = value[len(PREFIX):].split(":", 1)
    raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
    return AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], _aad(subject_id, field)).decode()


def encrypt_fields(payload: dict[str, Any], fields: Iterable[str], key: bytes, subject_id: str) -> dict[str, Any]:
    """A copy of ``payload`` with ``fields`` (those present and not None) encrypted for ``subject_id``."""
    out = dict(payload)
    for name in fields:
        if isinstance(out.get(name), str) and not is_encrypted(out[name]):
            out[name] = encrypt(key, subject_id, name, out[name])
    return out


def subjects_in(value: Any) -> set[str]:
    """Subjects of every encrypted string anywhere in ``value`` (dicts and lists walked)."""
    found: set[str] = set()
    if is_encrypted(value):
        found.add(subject_of(value))
    elif isinstance(value, dict):
        for v in value.values():
            found |= subjects_in(v)
    elif isinstance(value, list):
        for v in value:
            found |= subjects_in(v)
    return found


def reveal(value: Any, keys: dict[str, bytes], field: str = "") -> Any:
    """``value`` with every encrypted string decrypted when its subject's key is in ``keys``, else ``ERASED``."""
    if is_encrypted(value):
        key = keys.get(subject_of(value))
        if key is None:
            return ERASED
        try:
            return decrypt(key, field, value)
        except (InvalidTag, ValueError):
            return ERASED
    if isinstance(value, dict):
        return {k: reveal(v, keys, k) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v, keys, field) for v in value]
    return value


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
