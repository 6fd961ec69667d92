"""The projector's rules, one event and one SQL statement per row at a time: the reference.

This was the projector before it wrote batches with set-based statements
(``projector.handlers.project``). It stays here, unoptimised and easy to read,
as the oracle: the determinism test and the fault suite check that the batched
projector produces exactly the rows these handlers produce. Handlers use
unqualified table names (``search_path`` picks the schema).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson

from projector.handlers import epoch_seconds
from zapstream_contracts.envelope import Envelope
from zapstream_contracts.payloads import STATUS_RANK

Handler = Callable[[asyncpg.Connection, Envelope], Awaitable[None]]


async def session_created(conn: asyncpg.Connection, env: Envelope) -> None:
    pl = env.payload
    await conn.execute(
        """INSERT INTO rm_sessions (id, tenant_id, name, status, created_at, updated_at, version)
           VALUES ($1, $2, $3, $4, $5, $5, $6)
           ON CONFLICT (id) DO NOTHING""",
        env.session_id, pl["tenantId"], pl.get("name"), pl["status"], pl["createdAt"], env.version,
    )


def _session_update(fields: Callable[[dict[str, Any], Envelope], dict[str, Any]]) -> Handler:
    async def handler(conn: asyncpg.Connection, env: Envelope) -> None:
        values = fields(env.payload, env)
        values["updated_at"] = env.occurred_on
        values["version"] = env.version
        cols = list(values)
        sets = ", ".join(f"{col} = ${i + 2}" for i, col in enumerate(cols))
        await conn.execute(
            f"UPDATE rm_sessions SET {sets} WHERE id = $1 AND version < ${len(cols) + 1}",
            env.session_id, *values.values(),
        )

    return handler


session_qr = _session_update(lambda pl, _: {"status": "qr_pending", "qr": None, "qr_expires_at": pl["expiresAt"]})
session_connected = _session_update(
    lambda pl, _: {"status": "connected", "phone": pl["phone"], "connected_at": pl["connectedAt"], "qr": None,
                   "qr_expires_at": None}
)
session_disconnected = _session_update(
    lambda pl, _: {"status": "disconnected", "disconnected_at": pl["disconnectedAt"],
                   "disconnected_reason": pl["reason"], "qr": None, "qr_expires_at": None}
)
session_logged_out = _session_update(
    lambda pl, _: {"status": "logged_out", "disconnected_at": pl["loggedOutAt"], "disconnected_reason": pl["reason"],
                   "phone": None, "qr": None, "qr_expires_at": None}
)
_session_deleted = _session_update(lambda pl, _: {"status": "deleted"})


async def _purged(conn: asyncpg.Connection, session_id: str) -> bool:
    """Purged by an earlier ``session.deleted`` with ``purged: true``: it projects nothing but outcomes."""
    return bool(await conn.fetchval(
        "SELECT true FROM rm_sessions WHERE id = $1 AND status = 'deleted' AND disconnected_reason = 'purged'",
        session_id))


async def session_deleted(conn: asyncpg.Connection, env: Envelope) -> None:
    if not env.payload.get("purged"):
        await _session_deleted(conn, env)
        return
    for table in ("rm_messages", "rm_chats", "rm_contacts", "rm_reactions", "rm_commands", "rm_groups"):
        await conn.execute(f"DELETE FROM {table} WHERE session_id = $1", env.session_id)
    await conn.execute(
        """UPDATE rm_sessions SET status = 'deleted', name = NULL, phone = NULL, qr = NULL, qr_expires_at = NULL,
             disconnected_reason = 'purged', updated_at = $2, version = GREATEST(version, $3) WHERE id = $1""",
        env.session_id, env.occurred_on, env.version)
session_touched = _session_update(lambda pl, _: {})


async def _recount_unread(conn: asyncpg.Connection, session_id: str, chats: set[str]) -> None:
    """Unread counts are derived from the rows, so any replay order gives the same number."""
    for chat in chats:
        await conn.execute(
            """UPDATE rm_chats SET unread_count = (
                   SELECT count(*) FROM rm_messages m WHERE m.session_id = $1 AND m.chat_jid = $2 AND m.unread)
               WHERE session_id = $1 AND jid = $2""",
            session_id, chat,
        )


async def _upsert_messages(conn: asyncpg.Connection, env: Envelope, messages: list[dict[str, Any]], live: bool) -> None:
    tenant = env.payload["tenantId"]
    chats: set[str] = set()
    for index, m in enumerate(messages):
        status = m.get("status")
        await conn.execute(
            """INSERT INTO rm_messages (session_id, id, tenant_id, chat_jid, from_me, ts, type, text, participant,
                                        reply_to, status, status_rank, request_id, forwarded, push_name, unread, seq)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
               ON CONFLICT (session_id, id) DO UPDATE SET
                 status = CASE WHEN EXCLUDED.status_rank > rm_messages.status_rank
                               THEN EXCLUDED.status ELSE rm_messages.status END,
                 status_rank = GREATEST(rm_messages.status_rank, EXCLUDED.status_rank)""",
            env.session_id, m["id"], tenant, m["remoteJid"], m["fromMe"], m["timestamp"], m.get("type", "conversation"),
            m.get("text"), m.get("participant"), m.get("replyToMessageId"), status,
            STATUS_RANK.get(status or "", -1), env.payload.get("requestId"), bool(m.get("forwarded")),
            m.get("pushName"), live and not m["fromMe"], env.version * 10_000 + index,
        )
        await conn.execute(
            """INSERT INTO rm_chats (session_id, jid, tenant_id, last_message_id, last_message_text, last_message_at)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (session_id, jid) DO UPDATE SET
                 last_message_id = CASE WHEN EXCLUDED.last_message_at >= rm_chats.last_message_at
                                        THEN EXCLUDED.last_message_id ELSE rm_chats.last_message_id END,
                 last_message_text = CASE WHEN EXCLUDED.last_message_at >= rm_chats.last_message_at
                                          THEN EXCLUDED.last_message_text ELSE rm_chats.last_message_text END,
                 last_message_at = GREATEST(rm_chats.last_message_at, EXCLUDED.last_message_at)""",
            env.session_id, m["remoteJid"], tenant, m["id"], m.get("text"), m["timestamp"],
        )
        chats.add(m["remoteJid"])
    await _recount_unread(conn, env.session_id, chats)


async def messages_upsert(conn: asyncpg.Connection, env: Envelope) -> None:
    await _upsert_messages(conn, env, env.payload["messages"], live=env.payload.get("upsertType") == "notify")


async def history_sync(conn: asyncpg.Connection, env: Envelope) -> None:
    await _upsert_messages(conn, env, env.payload["messages"], live=False)


async def messages_update(conn: asyncpg.Connection, env: Envelope) -> None:
    chats: set[str] = set()
    for u in env.payload["updates"]:
        if env.payload.get("source") == "read":
            # This account read an incoming message: it stops counting as unread.
            chat = await conn.fetchval(
                "UPDATE rm_messages SET unread = false WHERE session_id = $1 AND id = $2 RETURNING chat_jid",
                env.session_id, u["messageId"],
            )
            if chat:
                chats.add(chat)
            continue
        await conn.execute(
            """UPDATE rm_messages SET status = $3, status_at = $4, status_rank = $5
               WHERE session_id = $1 AND id = $2 AND status_rank < $5""",
            env.session_id, u["messageId"], u["status"], u["statusAt"], STATUS_RANK.get(u["status"], -1),
        )
    await _recount_unread(conn, env.session_id, chats)


async def messages_edit(conn: asyncpg.Connection, env: Envelope) -> None:
    for e in env.payload["edits"]:
        await conn.execute(
            """UPDATE rm_messages SET text = $3, is_edited = true, edited_at = $4
               WHERE session_id = $1 AND id = $2 AND (edited_at IS NULL OR edited_at <= $4)""",
            env.session_id, e["messageId"], e["text"], e["editedAt"],
        )
        await conn.execute(
            "UPDATE rm_chats SET last_message_text = $3 WHERE session_id = $1 AND last_message_id = $2",
            env.session_id, e["messageId"], e["text"],
        )


async def messages_delete(conn: asyncpg.Connection, env: Envelope) -> None:
    pl = env.payload
    chats: set[str] = set()
    if pl["scope"] == "chat":
        cleared_at = epoch_seconds(pl.get("deletedAt"))  # RFC 3339 since v2 of the event
        await conn.execute(
            """UPDATE rm_messages SET is_deleted = true, deleted_at = $3, unread = false, text = NULL
               WHERE session_id = $1 AND chat_jid = $2 AND ts <= $3""",
            env.session_id, pl["chatJid"], cleared_at,
        )
        await conn.execute(
            """UPDATE rm_chats SET cleared_at = GREATEST(coalesce(cleared_at, 0), $3),
                 last_message_text = CASE WHEN last_message_at <= $3 THEN NULL ELSE last_message_text END
               WHERE session_id = $1 AND jid = $2""",
            env.session_id, pl["chatJid"], cleared_at,
        )
        chats.add(pl["chatJid"])
    for d in pl["deletes"]:
        chat = await conn.fetchval(
            """UPDATE rm_messages SET is_deleted = true, deleted_at = $3, unread = false, text = NULL
               WHERE session_id = $1 AND id = $2 RETURNING chat_jid""",
            env.session_id, d["messageId"], d["deletedAt"],
        )
        if chat:
            chats.add(chat)
            await conn.execute(
                "UPDATE rm_chats SET last_message_text = NULL WHERE session_id = $1 AND last_message_id = $2",
                env.session_id, d["messageId"],
            )
    await _recount_unread(conn, env.session_id, chats)


async def messages_reaction(conn: asyncpg.Connection, env: Envelope) -> None:
    for r in env.payload["reactions"]:
        if r["removed"] or not r.get("emoji"):
            await conn.execute(
                """DELETE FROM rm_reactions WHERE session_id = $1 AND message_id = $2 AND actor_jid = $3
                   AND reacted_at <= $4""",
                env.session_id, r["messageId"], r["actorJid"], r["reactedAt"],
            )
            continue
        await conn.execute(
            """INSERT INTO rm_reactions (session_id, message_id, actor_jid, tenant_id, emoji, reacted_at)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (session_id, message_id, actor_jid) DO UPDATE SET
                 emoji = EXCLUDED.emoji, reacted_at = EXCLUDED.reacted_at
               WHERE rm_reactions.reacted_at <= EXCLUDED.reacted_at""",
            env.session_id, r["messageId"], r["actorJid"], env.payload["tenantId"], r["emoji"], r["reactedAt"],
        )


async def contacts_upsert(conn: asyncpg.Connection, env: Envelope) -> None:
    for ct in env.payload["contacts"]:
        await conn.execute(
            """INSERT INTO rm_contacts (session_id, jid, tenant_id, name, notify, img_url)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (session_id, jid) DO UPDATE SET
                 name = COALESCE(EXCLUDED.name, rm_contacts.name),
                 notify = COALESCE(EXCLUDED.notify, rm_contacts.notify),
                 img_url = COALESCE(EXCLUDED.img_url, rm_contacts.img_url)""",
            env.session_id, ct["id"], env.payload["tenantId"], ct.get("name"), ct.get("notify"), ct.get("imgUrl"),
        )


def _command_outcome(status: str) -> Handler:
    async def handler(conn: asyncpg.Connection, env: Envelope) -> None:
        pl = env.payload
        # A purged session's outcomes are kept without their result.
        result = {} if await _purged(conn, env.session_id) else pl.get("result") or {}
        await conn.execute(
            """INSERT INTO rm_commands (command_id, tenant_id, session_id, command_type, status, code, reason, result,
                                        finished_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (command_id) DO NOTHING""",
            pl["commandId"], pl["tenantId"], env.session_id, pl["commandType"], status, pl.get("code"),
            pl.get("reason"), orjson.dumps(result).decode(), env.occurred_on,
        )

    return handler


async def messages_media(conn: asyncpg.Connection, env: Envelope) -> None:
    """Attach each message's media. The row exists: the upsert comes first in the session's order."""
    for m in env.payload["media"]:
        await conn.execute(
            "UPDATE rm_messages SET media = $3 WHERE session_id = $1 AND id = $2",
            env.session_id, m["messageId"], orjson.dumps(m).decode(),
        )


def _unless_purged(handler: Handler) -> Handler:
    async def guarded(conn: asyncpg.Connection, env: Envelope) -> None:
        if not await _purged(conn, env.session_id):
            await handler(conn, env)

    return guarded


_HANDLERS: dict[str, Handler] = {
    "session.created": session_created,
    "session.qr.updated": session_qr,
    "session.status.connected": session_connected,
    "session.status.disconnected": session_disconnected,
    "session.status.logged_out": session_logged_out,
    "session.deleted": session_deleted,
    "session.started": session_touched,
    "session.messages.upsert": messages_upsert,
    "session.messages.update": messages_update,
    "session.history.sync": history_sync,
    "session.contacts.upsert": contacts_upsert,
    "session.messages.edit": messages_edit,
    "session.messages.delete": messages_delete,
    "session.messages.reaction": messages_reaction,
    "session.messages.media": messages_media,
    "session.command.succeeded": _command_outcome("succeeded"),
    "session.command.failed": _command_outcome("failed"),
}
HANDLERS: dict[str, Handler] = {
    t: h if t in ("session.command.succeeded", "session.command.failed") else _unless_purged(h)
    for t, h in _HANDLERS.items()}
