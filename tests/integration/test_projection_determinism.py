"""Projection is deterministic.

* Any interleaving of sessions (each session's order kept) gives the same rows.
* The batched projector (``projector.handlers.project``) gives, for any batch size, exactly the rows of the
  per-row reference (``tests/support/reference_projection.py``): several events for one row in one batch
  (upsert, receipts, edit, delete), late receipts, re-deliveries, chat clears in mid-batch, and a purged
  session (``session.deleted`` with ``purged``) followed by re-deliveries of its earlier events, which must not
  bring its rows back.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from projector.handlers import project
from projector.replay import clone_schema
from tests.conftest import ADMIN_DSN, PG_BASE
from tests.support.reference_projection import HANDLERS
from tests.support.stack import REPO
from zapstream_contracts import commands as c
from zapstream_contracts import payloads as p
from zapstream_contracts.envelope import Envelope
from zapstream_domain.decisions import decide
from zapstream_platform.db import create_database, drop_database, migrate

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TABLES = {
    "rm_sessions": "id",
    "rm_chats": "session_id, jid",
    "rm_messages": "session_id, id",
    "rm_contacts": "session_id, jid",
    "rm_reactions": "session_id, message_id, actor_jid",
    "rm_commands": "command_id",
}


def _session_stream(rng: random.Random, purge: bool = False) -> list[Envelope]:
    sid = str(uuid.uuid4())
    cmd = c.CreateSession(command_id=str(uuid.uuid4()), session_id=sid, tenant_id="t", issued_at="x")
    s, events = decide(None, cmd, NOW)
    assert s is not None
    s.record_qr(NOW, "2026-01-01T00:01:00.000Z")
    s.record_connected(NOW, "51999999999")
    chats = [f"5198888{i:04d}@s.whatsapp.net" for i in range(3)]
    s.record_history(NOW, p.HistorySync(
        tenant_id="t", sync_type="INITIAL_BOOTSTRAP", progress=100, is_latest=True, chats_count=3, contacts_count=0,
        messages_count=6, messages_truncated=False,
        messages=[p.MessageSummary(id=f"h{i}", remote_jid=chats[i % 3], from_me=i % 2 == 0, timestamp=900 + i,
                                   text=f"h{i}") for i in range(6)]))
    ids: list[tuple[str, str]] = []
    for i in range(30):
        chat = rng.choice(chats)
        mid = f"m{i}"
        ids.append((mid, chat))
        s.record_incoming(NOW, [p.MessageSummary(id=mid, remote_jid=chat, from_me=i % 3 == 0, timestamp=1000 + i,
                                                 text=f"t{i}")])
        s.record_contact_names(NOW, [p.Contact(id=chat, notify=f"n{i % 4}")])
        if i % 3 == 0:
            s.record_command_succeeded(NOW, str(uuid.uuid4()), "session.send_message", {"messageId": mid})
            s.record_receipts(NOW, [p.StatusUpdate(message_id=mid, remote_jid=chat, status="delivered",
                                                   status_at=1500 + i)])
    for mid, chat in rng.sample(ids, 10):
        s.record_receipts(NOW, [p.StatusUpdate(message_id=mid, remote_jid=chat, status=rng.choice(
            ["delivered", "read"]), status_at=2000)])
        s.record_edits(NOW, [p.MessageEdit(message_id=mid, chat_jid=chat, text=f"e-{mid}", edited_at=3000)])
        s.record_reactions(NOW, [p.ReactionEntry(message_id=mid, chat_jid=chat, actor_jid=chat, from_me=False,
                                                 emoji=rng.choice(["👍", "❤️"]), reacted_at=3001, removed=False)])
    mid, chat = ids[5]
    s.record_reactions(NOW, [p.ReactionEntry(message_id=mid, chat_jid=chat, actor_jid="x@s.whatsapp.net",
                                             from_me=False, emoji="😮", reacted_at=3002, removed=False)])
    s.record_reactions(NOW, [p.ReactionEntry(message_id=mid, chat_jid=chat, actor_jid="x@s.whatsapp.net",
                                             from_me=False, emoji="", reacted_at=3003, removed=True)])
    s.record_media(NOW, [p.MediaEntry(message_id=ids[1][0], chat_jid=ids[1][1], kind="image", url="https://x/1",
                                      mime="image/jpeg", size=10, width=4, height=3)])
    s.record_command_failed(NOW, str(uuid.uuid4()), "session.send_message", "invalid_jid", "no such number")
    last = {chat: mid for mid, chat in ids}  # each chat's last message: edits and deletes change the chat row too
    s.record_edits(NOW, [p.MessageEdit(message_id=last[chats[2]], chat_jid=chats[2], text="edited last",
                                       edited_at=3500)])
    s.record_revokes(NOW, [p.MessageDelete(message_id=last[chats[0]], deleted_at=3600, chat_jid=chats[0])])
    for mid, chat in rng.sample(ids, 4):
        s.record_revokes(NOW, [p.MessageDelete(message_id=mid, deleted_at=4000, chat_jid=chat)])
    s.record_read_by_me(NOW, chats[0], [mid for mid, chat in ids if chat == chats[0]][:3], 5000)
    s.record_chat_cleared(NOW, chats[1], 1015)
    cleared = [mid for mid, chat in ids if chat == chats[1]][:2]  # rows the clear changed, touched again after it
    s.record_edits(NOW, [p.MessageEdit(message_id=cleared[0], chat_jid=chats[1], text="after the clear",
                                       edited_at=6000)])
    s.record_read_by_me(NOW, chats[1], cleared, 6001)
    s.record_incoming(NOW, [p.MessageSummary(id="late", remote_jid=chats[1], from_me=False, timestamp=1100,
                                             text="after the clear")])
    s.record_disconnected(NOW, "connection_lost")
    if purge:  # as the runner records a purging delete, then a command that came too late
        delete = str(uuid.uuid4())
        s.delete(NOW, purge=True)  # what decide() runs for a session.delete with purge
        s.record_command_succeeded(NOW, delete, "session.delete", None)
        s.record_command_failed(NOW, str(uuid.uuid4()), "session.send_message", "session_deleted",
                                "session was deleted")
    events += s.collect_events()
    envs = [Envelope.from_domain(e) for e in events]
    # What the domain never emits but a topic can hold: re-deliveries of whole events, a late "delivered"
    # after "read" for the same message, and an edit older than the one already applied.
    first_read = next(e for e in envs if e.type == "session.messages.update" and e.payload["updates"][0]["status"]
                      == "read" and e.payload.get("source") != "read")
    late = {**first_read.payload, "updates": [{**first_read.payload["updates"][0], "status": "delivered"}]}
    old_edit = next(e for e in envs if e.type == "session.messages.edit")
    older = {**old_edit.payload, "edits": [{**old_edit.payload["edits"][0], "text": "stale", "editedAt": 10}]}
    extra = [
        Envelope(type=first_read.type, session_id=sid, event_id=str(uuid.uuid4()), occurred_on=first_read.occurred_on,
                 payload=late, version=len(envs) + 1),
        Envelope(type=old_edit.type, session_id=sid, event_id=str(uuid.uuid4()), occurred_on=old_edit.occurred_on,
                 payload=older, version=len(envs) + 2),
    ]
    return envs + rng.sample(envs[2:40], 8) + extra


def _interleave(streams: list[list[Envelope]], rng: random.Random) -> list[Envelope]:
    cursors = [0] * len(streams)
    out: list[Envelope] = []
    while any(cursors[i] < len(st) for i, st in enumerate(streams)):
        i = rng.choice([i for i, st in enumerate(streams) if cursors[i] < len(st)])
        out.append(streams[i][cursors[i]])
        cursors[i] += 1
    return out


@pytest.fixture
async def database(infra: str) -> AsyncIterator[asyncpg.Connection]:
    name = f"zt_det_{uuid.uuid4().hex[:8]}"
    await create_database(ADMIN_DSN, name)
    try:
        await migrate(f"{PG_BASE}/{name}", REPO / "db" / "migrations")
        conn = await asyncpg.connect(f"{PG_BASE}/{name}")
        try:
            yield conn
        finally:
            await conn.close()
    finally:
        await drop_database(ADMIN_DSN, name)


async def _dump(conn: asyncpg.Connection, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    return {table: [tuple(r.values()) for r in await conn.fetch(f"SELECT * FROM {schema}.{table} ORDER BY {order}")]
            for table, order in TABLES.items()}


async def _reference(conn: asyncpg.Connection, schema: str, envelopes: list[Envelope]) -> dict[str, Any]:
    await clone_schema(conn, "rm_v1", schema)
    async with conn.transaction():
        await conn.execute(f"SET LOCAL search_path TO {schema}, public")
        for env in envelopes:
            if env.type in HANDLERS:
                await HANDLERS[env.type](conn, env)
    return await _dump(conn, schema)


async def _batched(conn: asyncpg.Connection, schema: str, envelopes: list[Envelope], size: int) -> dict[str, Any]:
    await clone_schema(conn, "rm_v1", schema)
    for i in range(0, len(envelopes), size):
        async with conn.transaction():  # one transaction per batch, as the projector does
            await project(conn, schema, envelopes[i:i + size])
    return await _dump(conn, schema)


def _only_outcomes_left(dump: dict[str, list[tuple[Any, ...]]], purged: str) -> None:
    """The purged session: its row, deleted and without its number, and result-less command outcomes."""
    mine = {t: [r for r in rows if purged in (str(r[0]), str(r[2]))] for t, rows in dump.items()}
    assert [(r[3], r[4]) for r in mine["rm_sessions"]] == [("deleted", None)]
    assert all(not mine[t] for t in ("rm_chats", "rm_messages", "rm_contacts", "rm_reactions"))
    assert mine["rm_commands"] and all(r[7] == "{}" or r[7] == {} for r in mine["rm_commands"])
    assert "session.delete" in {r[3] for r in mine["rm_commands"]}


async def test_any_interleaving_projects_to_the_same_rows(database: asyncpg.Connection) -> None:
    rng = random.Random(7)
    streams = [_session_stream(rng) for _ in range(3)] + [_session_stream(random.Random(5), purge=True)]
    first = await _batched(database, "rm_v2", _interleave(streams, random.Random(1)), 1000)
    second = await _batched(database, "rm_v3", _interleave(streams, random.Random(2)), 1000)
    assert sum(len(v) for v in first.values()) > 50
    assert first == second
    _only_outcomes_left(first, streams[-1][0].session_id)


async def test_batches_of_any_size_give_the_rows_of_the_per_row_reference(database: asyncpg.Connection) -> None:
    rng = random.Random(11)
    streams = [_session_stream(rng) for _ in range(3)] + [_session_stream(random.Random(5), purge=True)]
    envelopes = _interleave(streams, random.Random(3))
    expected = await _reference(database, "rm_v2", envelopes)
    assert all(expected[t] for t in TABLES)
    _only_outcomes_left(expected, streams[-1][0].session_id)
    for n, size in enumerate((1, 4, 37, len(envelopes))):
        assert await _batched(database, f"rm_v{3 + n}", envelopes, size) == expected, f"batches of {size}"
