"""Declarative sessions (seed 002): a JSON file of sessions that must exist for a tenant, started at boot.

The file is a list of ``{"tenantId": "...", "name": "tienda_lima", "description": "..."}``.
The first boot that sees an entry creates the session (``session.create``, which
starts linking) and remembers name → session id in ``declared_sessions``; later
boots send ``session.start``. Entries are never deleted by leaving the file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import asyncpg
import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from command_api.sessions.repository import SessionsRepository
from command_api.shared.bus import CommandBus
from zapstream_contracts import commands as c

log = logging.getLogger(__name__)


class DeclaredSession(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    tenant_id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=500)


_FILE = TypeAdapter(list[DeclaredSession])


def load(path: Path) -> list[DeclaredSession]:
    try:
        return _FILE.validate_python(orjson.loads(path.read_bytes()))
    except (OSError, orjson.JSONDecodeError, ValidationError) as exc:
        raise SystemExit(f"sessions file {path} is not a valid list of sessions: {type(exc).__name__}") from exc


async def declare_sessions(pool: asyncpg.Pool, bus: CommandBus, path: Path) -> list[tuple[str, str, str]]:
    """Ensure every declared session exists and is started; return (tenant, name, session id) triples."""
    out = []
    repo = SessionsRepository(pool)
    for entry in load(path):
        sid, created, status = await repo.declare(entry.tenant_id, entry.name)
        if status == "deleted":
            log.warning("declared session %s/%s was deleted; not restarting it", entry.tenant_id, entry.name)
            continue
        # Not projected yet (first boot, or a crash before the create reached Kafka): create (again).
        cls: type[c.Command] = c.CreateSession if created or status is None else c.StartSession
        fields = {"name": entry.name} if cls is c.CreateSession else {}
        await bus.send(cls, entry.tenant_id, str(sid), None, **fields)
        log.info("declared session %s/%s → %s (%s)", entry.tenant_id, entry.name, sid, cls.TYPE)
        out.append((entry.tenant_id, entry.name, str(sid)))
    return out
