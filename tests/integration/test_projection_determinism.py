"""Projection is deterministic: any interleaving of sessions (each session's order kept) gives the same rows."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from projector.handlers import HANDLERS
from tests.conftest import ADMIN_DSN, PG_BASE
from tests.support.stack import REPO
from zapstream_domain import commands as c
from zapstream_domain import payloads as p
from zapstream_domain.decisions import decide
from zapstream_platform.db import create_database, drop_database, migrate
from zapstream_platform.envelope import Envelope

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TABLES = {
    "rm_sessions": "id",
    "rm_chats": "session_id, jid",
    "rm_messages": "session_id, id",
    "rm_contacts": "session_id, jid",
    "rm_reactions": "session_id, message_id, actor_jid",
}


def _session_stream(rng: random.Random) -> list[Envelope]:
    sid = str(uuid.uuid4())
    cmd = c.CreateSession(command_id=str(uuid.uuid4()), session_id=sid, tenant_id="t", issued_at="x")
    s, events = decide(None, cmd, NOW)
    assert s is not None
    s.record_connected(NOW, "51999999999")
    chats = [f"5198888{i:04d}@s.whatsapp.net" for i in range(3)]
    ids: list[tuple[str, str]] = []
    for i in range(30):
        chat = rng.choice(chats)
        mid = f"m{i}"
        ids.append((mid, chat))
        s.record_incoming(NOW, [p.MessageSummary(id=mid, remote_jid=chat, from_me=i % 3 == 0, timestamp=1000 + i,
                                                 text=f"t{i}")])
        s.record_contact_names(NOW, [p.Contact(id=chat, notify=f"n{i % 4}")])
    for mid, chat in rng.sample(ids, 10):
        s.record_receipts(NOW, [p.StatusUpdate(message_id=mid, remote_jid=chat, status=rng.choice(
            ["delivered", "read"]), status_at=2000)])
        s.record_edits(NOW, [p.MessageEdit(message_id=mid, chat_jid=chat, text=f"e-{mid}", edited_at=3000)])
        s.record_reactions(NOW, [p.ReactionEntry(message_id=mid, chat_jid=chat, actor_jid=chat, from_me=False,
                                                 emoji=rng.choice(["👍", "❤️"]), reacted_at=3001, removed=False)])
    for mid, chat in rng.sample(ids, 4):
        s.record_revokes(NOW, [p.MessageDelete(message_id=mid, deleted_at=4000, chat_jid=chat)])
    s.record_read_by_me(NOW, chats[0], [mid for mid, chat in ids if chat == chats[0]][:3], 5000)
    s.record_chat_cleared(NOW, chats[1], 1015)
    events += s.collect_events()
    return [Envelope.from_domain(e) for e in events]


def _interleave(streams: list[list[Envelope]], rng: random.Random) -> list[Envelope]:
    cursors = [0] * len(streams)
    out: list[Envelope] = []
    while any(cursors[i] < len(st) for i, st in enumerate(streams)):
        i = rng.choice([i for i, st in enumerate(streams) if cursors[i] < len(st)])
        out.append(streams[i][cursors[i]])
        cursors[i] += 1
    return out


@pytest.fixture
async def two_databases(infra: str) -> AsyncIterator[tuple[str, str]]:
    names = [f"zt_det_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    try:
        for name in names:
            await create_database(ADMIN_DSN, name)
            await migrate(f"{PG_BASE}/{name}", REPO / "db" / "migrations")
        yield f"{PG_BASE}/{names[0]}", f"{PG_BASE}/{names[1]}"
    finally:
        for name in names:
            await drop_database(ADMIN_DSN, name)


async def _project(dsn: str, envelopes: list[Envelope]) -> dict[str, list[tuple[object, ...]]]:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            for env in envelopes:
                await HANDLERS[env.type](conn, env) if env.type in HANDLERS else None
        dump = {}
        for table, order in TABLES.items():
            rows = await conn.fetch(f"SELECT * FROM {table} ORDER BY {order}")
            dump[table] = [tuple(r.values()) for r in rows]
        return dump
    finally:
        await conn.close()


async def test_any_interleaving_projects_to_the_same_rows(two_databases: tuple[str, str]) -> None:
    rng = random.Random(7)
    streams = [_session_stream(rng) for _ in range(3)]
    first = await _project(two_databases[0], _interleave(streams, random.Random(1)))
    second = await _project(two_databases[1], _interleave(streams, random.Random(2)))
    assert sum(len(v) for v in first.values()) > 50
    assert first == second
