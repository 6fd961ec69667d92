"""Who may do what on the session and chat routes.

* owner/admin: everything in their tenant.
* machine (API key): everything in its tenant, limited to its sessions when the key is scoped
  (another session is a 404, as if it did not exist; a scoped key cannot create sessions).
* agent: reads sessions (without the QR), never manages them (403); sees and acts only on the
  chats assigned to it: a command on another chat is a 403, ``GET /chats`` and ``GET /contacts``
  list only its chats, a message list of another chat is a 403, and ``GET /commands/{id}``
  answers only for commands it issued (404 otherwise).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from command_api.application import CommandBus, NotFound
from command_api.problems import Problem
from zapstream_platform.tokens import Principal, assigned_chats


class Permissions:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @staticmethod
    def manage_sessions(who: Principal, creating: bool = False) -> None:
        if who.is_agent:
            raise Problem(403, "agents cannot manage sessions")
        if creating and who.session_ids is not None:
            raise Problem(403, "this API key is limited to some sessions and cannot create new ones")

    async def owned_session(self, who: Principal, bus: CommandBus, session_id: str) -> str:
        """The session id if ``who`` may use it; 404 otherwise (foreign and missing look the same)."""
        try:
            sid = await bus.owned(who.tenant_id, session_id)
        except NotFound as exc:
            raise Problem(404, "session not found") from exc
        if not self.in_scope(who, sid):
            raise Problem(404, "session not found")
        return sid

    async def declared_or_owned(self, who: Principal, bus: CommandBus, name_or_id: str) -> str:
        """A session id, or the name of a declared session (seed 002 names sessions like ``tienda_lima``)."""
        sid = await self.pool.fetchval(
            "SELECT session_id FROM declared_sessions WHERE tenant_id = $1 AND name = $2", who.tenant_id, name_or_id
        )
        return await self.owned_session(who, bus, str(sid) if sid is not None else name_or_id)

    @staticmethod
    def in_scope(who: Principal, session_id: str) -> bool:
        return who.session_ids is None or session_id in who.session_ids

    async def latest_in_scope(self, who: Principal) -> str | None:
        assert who.session_ids is not None
        row = await self.pool.fetchrow(
            """SELECT r.id FROM session_registry r LEFT JOIN rm_sessions s ON s.id = r.id
               WHERE r.tenant_id = $1 AND r.id = ANY($2::uuid[]) AND coalesce(s.status, 'created') <> 'deleted'
               ORDER BY r.created_at DESC LIMIT 1""",
            who.tenant_id, [uuid.UUID(s) for s in who.session_ids])
        return None if row is None else str(row["id"])

    async def chats_of(self, who: Principal) -> frozenset[str] | None:
        """The chats ``who`` may see: None for everything."""
        if not who.is_agent:
            return None
        assert who.user_id is not None
        chats: frozenset[str] = await assigned_chats(self.pool, who.user_id)
        return chats

    async def chat(self, who: Principal, chat_jid: str) -> None:
        allowed = await self.chats_of(who)
        if allowed is not None and chat_jid not in allowed:
            raise Problem(403, "this chat is not assigned to you")

    async def forward_source(self, who: Principal, session_id: str, message_id: str) -> None:
        """An agent may forward only messages of its own chats (the text would leak otherwise)."""
        allowed = await self.chats_of(who)
        if allowed is None:
            return
        chat = await self.pool.fetchval(
            "SELECT chat_jid FROM rm_messages WHERE tenant_id = $1 AND session_id = $2 AND id = $3",
            who.tenant_id, uuid.UUID(session_id), message_id)
        if chat is None or chat not in allowed:
            raise Problem(404, "message to forward not found")

    async def filter_rows(self, who: Principal, rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
        allowed = await self.chats_of(who)
        return rows if allowed is None else [r for r in rows if r.get(key) in allowed]

    @staticmethod
    def session_view(who: Principal, view: dict[str, Any]) -> dict[str, Any]:
        # The QR links a phone to the tenant's session: an admin's business, not an agent's.
        return view | {"qr": None, "qrExpiresAt": None} if who.is_agent else view

    async def record_issuer(self, who: Principal, command_id: str) -> None:
        if who.is_agent and who.user_id is not None:
            await self.pool.execute(
                "INSERT INTO command_issuers (command_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                command_id, uuid.UUID(who.user_id))

    async def command_visible(self, who: Principal, outcome: dict[str, Any]) -> bool:
        if not self.in_scope(who, str(outcome.get("sessionId"))):
            return False
        if who.is_agent and who.user_id is not None:
            return bool(await self.pool.fetchval(
                "SELECT true FROM command_issuers WHERE command_id = $1 AND user_id = $2",
                outcome.get("commandId"), uuid.UUID(who.user_id)))
        return True
