"""Declarative sessions (seed 002) against the real PostgreSQL: created once, started on later boots."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from command_api.sessions.declared import declare_sessions
from zapstream_contracts import commands as c


class FakeBus:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, dict[str, Any]]] = []

    async def send(self, cls: type[c.Command], tenant_id: str, session_id: str, traceparent: str | None,
                   **fields: Any) -> str:
        self.sent.append((cls.TYPE, tenant_id, session_id, fields))
        return str(uuid.uuid4())


async def test_sessions_file_creates_once_then_starts(pg: asyncpg.Pool, tmp_path: Path) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "sessions.json"
    path.write_bytes(orjson.dumps([{"tenantId": tenant, "name": "tienda_lima", "description": "Lima"},
                                   {"tenantId": tenant, "name": "soporte"}]))
    bus = FakeBus()
    first = await declare_sessions(pg, bus, path)  # type: ignore[arg-type]
    assert [t for t, *_ in bus.sent] == ["session.create", "session.create"]
    assert bus.sent[0][3] == {"name": "tienda_lima"}
    owners = await pg.fetch("SELECT id FROM session_registry WHERE tenant_id = $1", tenant)
    assert {str(r["id"]) for r in owners} == {sid for *_, sid in first}

    # Projected as existing: the next boot starts them, with the same ids.
    for _, _, sid in first:
        await pg.execute(
            """INSERT INTO rm_sessions (id, tenant_id, status, created_at, updated_at, version)
               VALUES ($1, $2, 'disconnected', 'x', 'x', 1)""", uuid.UUID(sid), tenant)
    bus2 = FakeBus()
    second = await declare_sessions(pg, bus2, path)  # type: ignore[arg-type]
    assert second == first and [t for t, *_ in bus2.sent] == ["session.start", "session.start"]


async def test_invalid_sessions_file_stops_the_boot(pg: asyncpg.Pool, tmp_path: Path) -> None:
    path = tmp_path / "sessions.json"
    for raw in (b"{", b'{"tenantId": "x"}', b'[{"name": "no tenant"}]'):
        path.write_bytes(raw)
        with pytest.raises(SystemExit):
            await declare_sessions(pg, FakeBus(), path)  # type: ignore[arg-type]
    with pytest.raises(SystemExit):
        await declare_sessions(pg, FakeBus(), tmp_path / "missing.json")  # type: ignore[arg-type]
