"""Application layer: turns requests into commands on Kafka and answers queries from read models."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from zapstream_domain import commands as c
from zapstream_domain.session import iso
from zapstream_platform import apikeys
from zapstream_platform.readmodels import session_view
from zapstream_platform.tracing import child_of


class NotFound(Exception):
    """The resource does not exist for this tenant (other tenants' ids look the same)."""


class Auth:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def tenant_for_key(self, key: str) -> str | None:
        tenant: str | None = await apikeys.tenant_for(self.pool, key)
        return tenant


class CommandBus:
    """Publishes commands keyed by sessionId; acknowledged by every in-sync replica before 202."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, pool: asyncpg.Pool) -> None:
        self.producer = producer
        self.topic = topic
        self.pool = pool

    async def register_session(self, tenant_id: str) -> str:
        session_id = str(uuid.uuid4())
        await self.pool.execute(
            "INSERT INTO session_registry (id, tenant_id) VALUES ($1, $2)", uuid.UUID(session_id), tenant_id
        )
        return session_id

    async def owned(self, tenant_id: str, session_id: str) -> str:
        try:
            sid = uuid.UUID(session_id)
        except ValueError as exc:
            raise NotFound from exc
        row = await self.pool.fetchrow(
            "SELECT 1 FROM session_registry WHERE id = $1 AND tenant_id = $2", sid, tenant_id
        )
        if row is None:
            raise NotFound
        return str(sid)

    async def latest_session(self, tenant_id: str) -> str:
        row = await self.pool.fetchrow(
            """SELECT r.id FROM session_registry r LEFT JOIN rm_sessions s ON s.id = r.id
               WHERE r.tenant_id = $1 AND coalesce(s.status, 'created') <> 'deleted'
               ORDER BY r.created_at DESC LIMIT 1""",
            tenant_id,
        )
        if row is None:
            raise NotFound
        return str(row["id"])

    async def send(self, cls: type[c.Command], tenant_id: str, session_id: str, traceparent: str | None,
                   **fields: Any) -> str:
        command = cls(
            command_id=str(uuid.uuid4()),
            session_id=session_id,
            tenant_id=tenant_id,
            issued_at=iso(datetime.now(UTC)),
            traceparent=child_of(traceparent),
            **fields,
        )
        await self.producer.send_and_wait(
            self.topic,
            value=command.model_dump_json(by_alias=True).encode(),
            key=session_id.encode(),
            headers=[("ce_type", command.TYPE.encode()), ("traceparent", (command.traceparent or "").encode())],
        )
        return command.command_id


def encode_cursor(ts: int, mid: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ts, mid])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        ts, mid = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(ts, int) or not isinstance(mid, str):
            raise ValueError
        return ts, mid
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise ValueError("invalid cursor") from exc


class Queries:
    """Reads the projector's read models; every query is filtered by tenant."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def sessions(self, tenant_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM rm_sessions WHERE tenant_id = $1 AND status <> 'deleted' ORDER BY created_at DESC",
            tenant_id,
        )
        return [session_view(r) for r in rows]

    async def session(self, tenant_id: str, session_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM rm_sessions WHERE tenant_id = $1 AND id = $2", tenant_id, uuid.UUID(session_id)
        )
        return None if row is None else session_view(row)

    async def chats(self, tenant_id: str, session_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            """SELECT * FROM rm_chats WHERE tenant_id = $1 AND session_id = $2
               ORDER BY last_message_at DESC, jid LIMIT 500""",
            tenant_id, uuid.UUID(session_id),
        )
        return [
            {
                "jid": r["jid"],
                "sessionId": str(r["session_id"]),
                "unreadCount": r["unread_count"],
                "lastMessage": {"id": r["last_message_id"], "text": r["last_message_text"],
                                "timestamp": r["last_message_at"]},
            }
            for r in rows
        ]

    async def messages(self, tenant_id: str, session_id: str, chat_jid: str, limit: int,
                       cursor: tuple[int, str] | None) -> tuple[list[dict[str, Any]], str | None]:
        args: list[Any] = [tenant_id, uuid.UUID(session_id), chat_jid, limit + 1]
        where = ""
        if cursor is not None:
            where = "AND (ts, id) < ($5, $6)"
            args += list(cursor)
        rows = await self.pool.fetch(
            f"""SELECT * FROM rm_messages WHERE tenant_id = $1 AND session_id = $2 AND chat_jid = $3 {where}
                ORDER BY ts DESC, id DESC LIMIT $4""",
            *args,
        )
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1]["ts"], page[-1]["id"]) if len(rows) > limit else None
        return [message_view(r) for r in page], next_cursor

    async def command(self, tenant_id: str, command_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM rm_commands WHERE tenant_id = $1 AND command_id = $2", tenant_id, command_id
        )
        if row is None:
            return None
        return {
            "commandId": row["command_id"], "sessionId": str(row["session_id"]), "type": row["command_type"],
            "status": row["status"], "code": row["code"], "reason": row["reason"],
            "result": orjson.loads(row["result"]) if row["result"] else {}, "finishedAt": row["finished_at"],
        }


def message_view(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["id"], "chatJid": r["chat_jid"], "fromMe": r["from_me"], "timestamp": r["ts"], "type": r["type"],
        "text": r["text"], "participant": r["participant"], "replyToMessageId": r["reply_to"],
        "status": r["status"], "statusAt": r["status_at"],
    }
