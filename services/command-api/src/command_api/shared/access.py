"""Who may do what, and which session a request is about.

* owner/admin: everything in their tenant.
* machine (API key): everything in its tenant, limited to its sessions when the key is scoped
  (another session is a 404, as if it did not exist; a scoped key cannot create sessions).
* agent: reads sessions (without the QR), never manages them (403); sees and acts only on the
  chats assigned to it: a command on another chat is a 403, ``GET /chats`` and ``GET /contacts``
  list only its chats, a message list of another chat is a 403, and ``GET /commands/{id}``
  answers only for commands it issued (404 otherwise).

Another tenant's ids, deleted sessions and ids out of an API key's scope all answer the same 404.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Protocol

from command_api.shared.problems import Problem
from zapstream_platform.tokens import Principal

NO_SESSION = "tenant has no session"


class SessionDirectory(Protocol):
    """Session ownership (sessions/repository.py)."""

    async def owner_of(self, session_id: uuid.UUID) -> tuple[str, bool] | None:
        """(tenant, deleted) of a registered session."""
        ...

    async def latest_session(self, tenant_id: str, scope: Iterable[str] | None) -> str | None: ...
    async def declared_session(self, tenant_id: str, name: str) -> str | None: ...


class ChatGrants(Protocol):
    """Agents' chats and the commands they issued (agents/repository.py)."""

    async def assigned_chats(self, user_id: str) -> frozenset[str]: ...
    async def message_chat(self, tenant_id: str, session_id: str, message_id: str) -> str | None: ...
    async def record_issuer(self, command_id: str, user_id: str) -> None: ...
    async def issued_by(self, command_id: str, user_id: str) -> bool: ...


def parse_uuid(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


class Access:
    def __init__(self, sessions: SessionDirectory, grants: ChatGrants, cache_size: int = 100_000) -> None:
        self.sessions = sessions
        self.grants = grants
        # session id as the client wrote it → (canonical id, owning tenant). A session never changes tenant,
        # so a confirmed owner can be remembered; misses and deleted sessions are never cached.
        self._owners: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._cache_size = cache_size

    # -- sessions --

    @staticmethod
    def manage_sessions(who: Principal, creating: bool = False) -> None:
        if who.is_agent:
            raise Problem(403, "agents cannot manage sessions")
        if creating and who.session_ids is not None:
            raise Problem(403, "this API key is limited to some sessions and cannot create new ones")

    @staticmethod
    def in_scope(who: Principal, session_id: str) -> bool:
        return who.session_ids is None or session_id in who.session_ids

    def forget(self, session_id: str) -> None:
        """A session was deleted: stop trusting the cached owner (under any spelling of its id)."""
        for raw in [raw for raw, (sid, _) in self._owners.items() if sid == session_id]:
            del self._owners[raw]

    async def owned(self, who: Principal, session_id: str, deleted_ok: bool = False) -> str:
        """The session id if ``who`` may use it; 404 otherwise (foreign, deleted and missing look the same).

        ``deleted_ok``: a deleted session of ``who``'s is found too (purging the data of one deleted earlier).
        """
        cached = self._owners.get(session_id)
        if cached is None:
            parsed = parse_uuid(session_id)
            if parsed is None:
                raise Problem(404, "session not found")
            found = await self.sessions.owner_of(parsed)
            if found is None or (found[1] and not deleted_ok):
                raise Problem(404, "session not found")
            cached = (str(parsed), found[0])
            if not found[1]:
                self._owners[session_id] = cached
                if len(self._owners) > self._cache_size:
                    self._owners.popitem(last=False)
        sid, owner = cached
        if owner != who.tenant_id or not self.in_scope(who, sid):
            raise Problem(404, "session not found")
        return sid

    async def session_for(self, who: Principal, session_id: str | None) -> str | None:
        """The named session (404 if not ``who``'s), else the tenant's latest in scope; None: no session."""
        if session_id:
            return await self.owned(who, session_id)
        return await self.sessions.latest_session(who.tenant_id, who.session_ids)

    async def session_or_404(self, who: Principal, session_id: str | None) -> str:
        sid = await self.session_for(who, session_id)
        if sid is None:
            raise Problem(404, NO_SESSION)
        return sid

    async def declared_or_owned(self, who: Principal, name_or_id: str) -> str:
        """A session id, or the name of a declared session (seed 002 names sessions like ``tienda_lima``)."""
        sid = await self.sessions.declared_session(who.tenant_id, name_or_id)
        return await self.owned(who, sid if sid is not None else name_or_id)

    # -- chats --

    async def chats_of(self, who: Principal) -> frozenset[str] | None:
        """The chats ``who`` may see: None for everything."""
        if not who.is_agent:
            return None
        assert who.user_id is not None
        return await self.grants.assigned_chats(who.user_id)

    async def chat(self, who: Principal, chat_jid: str) -> None:
        allowed = await self.chats_of(who)
        if allowed is not None and chat_jid not in allowed:
            raise Problem(403, "this chat is not assigned to you")

    async def forward_source(self, who: Principal, session_id: str, message_id: str) -> None:
        """An agent may forward only messages of its own chats (the text would leak otherwise)."""
        allowed = await self.chats_of(who)
        if allowed is None:
            return
        chat = await self.grants.message_chat(who.tenant_id, session_id, message_id)
        if chat is None or chat not in allowed:
            raise Problem(404, "message to forward not found")

    async def filter_rows(self, who: Principal, rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
        allowed = await self.chats_of(who)
        return rows if allowed is None else [r for r in rows if r.get(key) in allowed]

    # -- commands --

    async def record_issuer(self, who: Principal, command_id: str) -> None:
        if who.is_agent and who.user_id is not None:
            await self.grants.record_issuer(command_id, who.user_id)

    async def command_visible(self, who: Principal, outcome: dict[str, Any]) -> bool:
        if not self.in_scope(who, str(outcome.get("sessionId"))):
            return False
        if who.is_agent and who.user_id is not None:
            return await self.grants.issued_by(str(outcome.get("commandId")), who.user_id)
        return True
