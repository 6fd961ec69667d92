"""Application layer: turns requests into commands on Kafka and answers queries from read models."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from zapstream_domain import commands as c
from zapstream_domain.session import iso
from zapstream_platform.readmodels import session_view
from zapstream_platform.tracing import child_of


class NotFound(Exception):
    """The resource does not exist for this tenant (other tenants' ids look the same)."""


class IdempotencyConflict(Exception):
    """The key was used for a different request, or its first request is still running."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Idempotency:
    """``Idempotency-Key``: the first answer for (tenant, key) is replayed to every retry."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @staticmethod
    def fingerprint(method: str, path: str, body: bytes) -> bytes:
        return hashlib.sha256(b"\0".join([method.encode(), path.encode(), body])).digest()

    async def run(
        self, tenant_id: str, key: str, fingerprint: bytes, produce: Callable[[], Awaitable[dict[str, Any]]]
    ) -> tuple[dict[str, Any], bool]:
        """Return (body, replayed)."""
        claimed = await self.pool.fetchval(
            """INSERT INTO idempotency_keys (tenant_id, key, fingerprint) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING RETURNING true""",
            tenant_id, key, fingerprint,
        )
        if claimed:
            try:
                body = await produce()
            except BaseException:
                await self.pool.execute("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2", tenant_id, key)
                raise
            await self.pool.execute(
                "UPDATE idempotency_keys SET status_code = 202, body = $3 WHERE tenant_id = $1 AND key = $2",
                tenant_id, key, orjson.dumps(body).decode(),
            )
            return body, False
        row = await self.pool.fetchrow(
            "SELECT fingerprint, body FROM idempotency_keys WHERE tenant_id = $1 AND key = $2", tenant_id, key
        )
        if row is None:  # the first request failed and released the key meanwhile
            return await self.run(tenant_id, key, fingerprint, produce)
        if bytes(row["fingerprint"]) != fingerprint:
            raise IdempotencyConflict(422, "this Idempotency-Key was already used for a different request")
        if row["body"] is None:
            raise IdempotencyConflict(409, "a request with this Idempotency-Key is still in progress")
        return orjson.loads(row["body"]), True


class CommandBus:
    """Publishes commands keyed by sessionId; acknowledged by every in-sync replica before 202."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, pool: asyncpg.Pool) -> None:
        self.producer = producer
        self.topic = topic
        self.pool = pool
        # session id → owning tenant. A session never changes tenant, so a confirmed
        # owner can be remembered; misses are never cached (the row may be created later).
        self._owners: OrderedDict[uuid.UUID, str] = OrderedDict()

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
        owner = self._owners.get(sid)
        if owner is None:
            owner = await self.pool.fetchval("SELECT tenant_id FROM session_registry WHERE id = $1", sid)
            if owner is None:
                raise NotFound
            self._owners[sid] = owner
            if len(self._owners) > 100_000:
                self._owners.popitem(last=False)
        if owner != tenant_id:
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
                   command_id: str | None = None, **fields: Any) -> str:
        """Publish one command; ``command_id`` fixed by the caller makes a re-publish recognisable."""
        command = cls(
            command_id=command_id or str(uuid.uuid4()),
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


def encode_cursor(ts: int, seq: int) -> str:
    """An opaque position: (timestamp, sequence) of the last message on the page."""
    return base64.urlsafe_b64encode(orjson.dumps([ts, seq])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        ts, seq = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(ts, int) or not isinstance(seq, int) or abs(ts) > 2**62 or abs(seq) > 2**62:
            raise ValueError
        return ts, seq
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise ValueError("invalid cursor") from exc


class Queries:
    """Reads the projector's read models; every query is filtered by tenant."""

    def __init__(self, pool: asyncpg.Pool, media_url: Callable[[str], str] | None = None) -> None:
        self.pool = pool
        # Signs a fresh URL for a stored object: the one in the event may have expired.
        self.media_url = media_url

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
                       cursor: tuple[int, int] | None) -> tuple[list[dict[str, Any]], str | None]:
        args: list[Any] = [tenant_id, uuid.UUID(session_id), chat_jid, limit + 1]
        where = ""
        if cursor is not None:
            where = "AND (ts, seq) < ($5, $6)"
            args += list(cursor)
        rows = await self.pool.fetch(
            f"""SELECT * FROM rm_messages WHERE tenant_id = $1 AND session_id = $2 AND chat_jid = $3 {where}
                ORDER BY ts DESC, seq DESC LIMIT $4""",
            *args,
        )
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1]["ts"], page[-1]["seq"]) if len(rows) > limit else None
        reactions: dict[str, list[dict[str, Any]]] = {}
        if page:
            agg = await self.pool.fetch(
                """SELECT message_id, emoji, count(*) AS n, array_agg(actor_jid ORDER BY reacted_at, actor_jid) AS actors
                   FROM rm_reactions WHERE session_id = $1 AND message_id = ANY($2::text[])
                   GROUP BY message_id, emoji ORDER BY message_id, min(reacted_at), emoji""",
                uuid.UUID(session_id), [r["id"] for r in page],
            )
            for a in agg:
                reactions.setdefault(a["message_id"], []).append(
                    {"emoji": a["emoji"], "count": a["n"], "actors": list(a["actors"])}
                )
        return [message_view(r, reactions.get(r["id"], []), self.media_url) for r in page], next_cursor

    async def contacts(self, tenant_id: str, session_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM rm_contacts WHERE tenant_id = $1 AND session_id = $2 ORDER BY jid LIMIT 5000",
            tenant_id, uuid.UUID(session_id),
        )
        return [{"id": r["jid"], "name": r["name"], "notify": r["notify"], "imgUrl": r["img_url"]} for r in rows]

    async def message_text(self, tenant_id: str, session_id: str, message_id: str) -> str | None:
        """The text of a message (for forwards); raises NotFound for unknown or deleted ones."""
        row = await self.pool.fetchrow(
            "SELECT text, is_deleted FROM rm_messages WHERE tenant_id = $1 AND session_id = $2 AND id = $3",
            tenant_id, uuid.UUID(session_id), message_id,
        )
        if row is None or row["is_deleted"]:
            raise NotFound
        return None if row["text"] is None else str(row["text"])

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


def media_view(raw: str | None, sign: Callable[[str], str] | None) -> dict[str, Any] | None:
    """A message's ``media`` as seed 001 shows it, with a freshly signed URL when the object is stored."""
    if raw is None:
        return None
    m = orjson.loads(raw)
    url = sign(m["key"]) if sign is not None and m.get("key") else m.get("url")
    view = {k: m.get(k) for k in ("kind", "mime", "size", "width", "height", "duration", "fileName")}
    view.update(url=url, ptt=bool(m.get("ptt")))
    if m.get("error"):
        view["error"] = m["error"]
    return view


def message_view(r: asyncpg.Record, reactions: list[dict[str, Any]],
                 sign: Callable[[str], str] | None = None) -> dict[str, Any]:
    return {
        "id": r["id"], "chatJid": r["chat_jid"], "fromMe": r["from_me"], "timestamp": r["ts"], "type": r["type"],
        "text": r["text"], "participant": r["participant"], "pushName": r["push_name"],
        "replyToMessageId": r["reply_to"], "forwarded": r["forwarded"],
        "status": r["status"], "statusAt": r["status_at"],
        "isEdited": r["is_edited"], "editedAt": r["edited_at"],
        "isDeleted": r["is_deleted"], "deletedAt": r["deleted_at"],
        "reactions": reactions,
        "media": media_view(r["media"], sign),
    }
