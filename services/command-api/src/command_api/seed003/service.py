"""Seed 003's operations as thin compositions of our services (sessions, chats, messages, agents, identity)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson

from command_api.agents.schemas import NewAgentBody
from command_api.agents.service import AgentsService
from command_api.chats.service import ChatsService, media_view
from command_api.identity.schemas import LoginBody, RegisterBody
from command_api.identity.service import IdentityService
from command_api.messages.schemas import ChatSendBody
from command_api.messages.service import MessagesService
from command_api.photos.service import PhotosService
from command_api.sessions.service import SessionsService
from command_api.shared.access import Access
from command_api.shared.commands import Answer
from command_api.shared.idempotency import Idem
from command_api.shared.problems import Problem
from zapstream_platform.tokens import Principal

# Read-model statuses in which the runner is linking or linked already: init has nothing to start.
LINKING = frozenset({"created", "qr_pending", "connecting", "connected"})


class Seed003Store(Protocol):
    async def message_media(self, tenant_id: str, session_id: str, message_id: str) -> dict[str, Any] | None: ...


class Seed003Service:
    def __init__(self, store: Seed003Store, access: Access, sessions: SessionsService, chats: ChatsService,
                 messages: MessagesService, agents: AgentsService, identity: IdentityService,
                 photos: PhotosService, sign: Callable[[str], str] | None = None) -> None:
        self.photos = photos
        self.store = store
        self.access = access
        self.sessions = sessions
        self.chats = chats
        self.messages = messages
        self.agents = agents
        self.identity = identity
        self.sign = sign

    async def register(self, body: RegisterBody, ip: str) -> dict[str, Any]:
        return await self.identity.register(body, ip)

    async def login(self, body: LoginBody, ip: str) -> tuple[dict[str, Any], str]:
        return await self.identity.login(body, ip)

    async def create_station(self, who: Principal, body: NewAgentBody) -> dict[str, Any]:
        return await self.agents.create(who, body)

    async def employees(self, who: Principal) -> dict[str, Any]:
        return {"employees": [u for u in await self.agents.list(who) if u["role"] != "owner"]}

    async def init(self, who: Principal, idem: Idem, traceparent: str | None) -> tuple[dict[str, Any], bool]:
        """The tenant's WhatsApp session (seed 003 has one per admin): created if none, started if stopped.
        The QR follows on Socket.IO (``qr``) and on ``/ws/sessions``."""
        self.access.manage_sessions(who)
        sid = await self.access.session_for(who, None)
        if sid is None:
            body, replayed = await self.sessions.create(who, idem, traceparent, None)
            return {"sessionId": body["sessionId"], "status": "initializing", "commandId": body["commandId"]}, replayed
        try:
            status = (await self.sessions.get(who, sid))["status"]
        except Problem:
            status = "created"  # accepted, not projected yet: its create is on its way
        if status in LINKING:
            return {"sessionId": sid, "status": "connected" if status == "connected" else "initializing"}, False
        body, replayed = await self.sessions.start(who, idem, traceparent, sid)
        return {"sessionId": sid, "status": "initializing", "commandId": body["commandId"]}, replayed

    async def logout(self, who: Principal, idem: Idem, traceparent: str | None) -> Answer:
        sid = await self.access.session_or_404(who, None)
        return await self.sessions.stop(who, idem, traceparent, sid, "logout")

    async def assign(self, who: Principal, employee_id: str, chat: str) -> dict[str, Any]:
        await self.agents.assign(who, employee_id, chat)
        return {"employeeId": employee_id, "chatId": chat}

    async def revoke(self, who: Principal, employee_id: str, chat: str) -> dict[str, Any]:
        await self.agents.unassign(who, employee_id, chat)
        return {"employeeId": employee_id, "chatId": chat}

    async def chat_list(self, who: Principal) -> dict[str, Any]:
        return await self.chats.chats(who, None)

    async def chat_messages(self, who: Principal, chat: str, limit: int, cursor: str | None) -> dict[str, Any]:
        return await self.chats.messages(who, chat, None, limit, cursor)

    async def send(self, who: Principal, idem: Idem, traceparent: str | None, chat: str, text: str) -> Answer:
        return await self.messages.send_to_chat(who, idem, traceparent, chat, ChatSendBody(content=text))

    async def media(self, who: Principal, message_id: str) -> dict[str, Any]:
        sid = await self.access.session_or_404(who, None)
        row = await self.store.message_media(who.tenant_id, sid, message_id)
        if row is None or row["media"] is None:
            raise Problem(404, "message or media not found")
        await self.access.chat(who, row["chat_jid"])
        view = media_view(row["media"], self.sign)
        assert view is not None
        if view.get("url") is None:
            raise Problem(404, "media not stored", error=orjson.loads(row["media"]).get("error"))
        return {"messageId": message_id, "chatId": row["chat_jid"], "kind": view["kind"], "mimetype": view["mime"],
                "fileName": view["fileName"], "size": view["size"], "url": view["url"]}

    async def profile_photo(self, who: Principal, chat: str) -> dict[str, Any]:
        """Through the runner, cached in storage (``GET /chats/{jid}/photo``)."""
        found = await self.photos.photo(who, chat, None)
        return {"chatId": chat, "url": found["url"]}
