"""Event → rows. Each handler runs inside the batch's transaction, next to the offset write.

Handlers are idempotent on their own too (upserts, forward-only statuses), so
projecting a session's events in any interleaving with other sessions gives
the same rows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson

from zapstream_domain.payloads import STATUS_RANK
from zapstream_platform.envelope import Envelope

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


session_qr = _session_update(lambda pl, _: {"status": "qr_pending", "qr": pl["qr"], "qr_expires_at": pl["expiresAt"]})
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
session_deleted = _session_update(lambda pl, _: {"status": "deleted"})
session_touched = _session_update(lambda pl, _: {})


async def _upsert_messages(conn: asyncpg.Connection, env: Envelope, messages: list[dict[str, Any]], live: bool) -> None:
    tenant = env.payload["tenantId"]
    for m in messages:
        status = m.get("status")
        await conn.execute(
            """INSERT INTO rm_messages (session_id, id, tenant_id, chat_jid, from_me, ts, type, text, participant,
                                        reply_to, status, status_rank, request_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
               ON CONFLICT (session_id, id) DO UPDATE SET
                 text = EXCLUDED.text, type = EXCLUDED.type,
                 status = CASE WHEN EXCLUDED.status_rank > rm_messages.status_rank
                               THEN EXCLUDED.status ELSE rm_messages.status END,
                 status_rank = GREATEST(rm_messages.status_rank, EXCLUDED.status_rank)""",
            env.session_id, m["id"], tenant, m["remoteJid"], m["fromMe"], m["timestamp"], m.get("type", "conversation"),
            m.get("text"), m.get("participant"), m.get("replyToMessageId"), status,
            STATUS_RANK.get(status or "", -1), env.payload.get("requestId"),
        )
        unread = 1 if (live and not m["fromMe"]) else 0
        await conn.execute(
            """INSERT INTO rm_chats (session_id, jid, tenant_id, last_message_id, last_message_text, last_message_at,
                                     unread_count)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (session_id, jid) DO UPDATE SET
                 unread_count = rm_chats.unread_count + EXCLUDED.unread_count,
                 last_message_id = CASE WHEN EXCLUDED.last_message_at >= rm_chats.last_message_at
                                        THEN EXCLUDED.last_message_id ELSE rm_chats.last_message_id END,
                 last_message_text = CASE WHEN EXCLUDED.last_message_at >= rm_chats.last_message_at
                                          THEN EXCLUDED.last_message_text ELSE rm_chats.last_message_text END,
                 last_message_at = GREATEST(rm_chats.last_message_at, EXCLUDED.last_message_at)""",
            env.session_id, m["remoteJid"], tenant, m["id"], m.get("text"), m["timestamp"], unread,
        )


async def messages_upsert(conn: asyncpg.Connection, env: Envelope) -> None:
    await _upsert_messages(conn, env, env.payload["messages"], live=env.payload.get("upsertType") == "notify")


async def history_sync(conn: asyncpg.Connection, env: Envelope) -> None:
    await _upsert_messages(conn, env, env.payload["messages"], live=False)


async def messages_update(conn: asyncpg.Connection, env: Envelope) -> None:
    for u in env.payload["updates"]:
        await conn.execute(
            """UPDATE rm_messages SET status = $3, status_at = $4, status_rank = $5
               WHERE session_id = $1 AND id = $2 AND status_rank < $5""",
            env.session_id, u["messageId"], u["status"], u["statusAt"], STATUS_RANK.get(u["status"], -1),
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
        await conn.execute(
            """INSERT INTO rm_commands (command_id, tenant_id, session_id, command_type, status, code, reason, result,
                                        finished_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (command_id) DO NOTHING""",
            pl["commandId"], pl["tenantId"], env.session_id, pl["commandType"], status, pl.get("code"),
            pl.get("reason"), orjson.dumps(pl.get("result") or {}).decode(), env.occurred_on,
        )

    return handler


HANDLERS: dict[str, Handler] = {
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
    "session.command.succeeded": _command_outcome("succeeded"),
    "session.command.failed": _command_outcome("failed"),
}
