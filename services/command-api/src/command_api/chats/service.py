"""Chats, their messages and contacts (read models), read receipts and presence."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from command_api.shared.access import Access
from command_api.shared.commands import Answer, Commands
from command_api.shared.idempotency import Idem
from command_api.shared.problems import Problem
from zapstream_contracts import commands as c
from zapstream_platform.tokens import Principal


class ChatsStore(Protocol):
    async def chats(self, tenant_id: str, session_id: str) -> list[dict[str, Any]]: ...
    async def messages(self, tenant_id: str, session_id: str, chat_jid: str, limit: int,
                       before: tuple[int, int] | None) -> list[dict[str, Any]]: ...
    async def reactions(self, session_id: str, message_ids: list[str]) -> list[dict[str, Any]]: ...
    async def contacts(self, tenant_id: str, session_id: str) -> list[dict[str, Any]]: ...


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
        raise Problem(422, "invalid cursor") from exc


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


def message_view(r: dict[str, Any], reactions: list[dict[str, Any]],
                 sign: Callable[[str], str] | None = None) -> dict[str, Any]:
    return {
        "id": r["id"], "chatJid": r["chat_jid"], "fromMe": r["from_me"], "timestamp": r["ts"], "type": r["type"],
        "text": r["text"], "participant": r["participant"], "pushName": r["push_name"],
        "replyTo": r["reply_to"], "forward": r["forwarded"],
        "status": r["status"], "statusAt": r["status_at"],
        "isEdited": r["is_edited"], "editedAt": r["edited_at"],
        "isDeleted": r["is_deleted"], "deletedAt": r["deleted_at"],
        "reactions": reactions,
        "media": media_view(r["media"], sign),
        "rich": orjson.loads(r["rich"]) if r.get("rich") else None,
        "pollTally": orjson.loads(r["poll_tally"]) if r.get("poll_tally") else None,
        # The names before seed 001's; kept for one minor version (deprecated in the OpenAPI document).
        "replyToMessageId": r["reply_to"], "forwarded": r["forwarded"],
    }


def chat_view(r: dict[str, Any]) -> dict[str, Any]:
    return {"jid": r["jid"], "sessionId": str(r["session_id"]), "unreadCount": r["unread_count"],
            "lastMessage": {"id": r["last_message_id"], "text": r["last_message_text"],
                            "timestamp": r["last_message_at"]}}


def contact_view(r: dict[str, Any]) -> dict[str, Any]:
    return {"id": r["jid"], "name": r["name"], "notify": r["notify"], "imgUrl": r["img_url"]}


class ChatsService:
    def __init__(self, store: ChatsStore, access: Access, commands: Commands,
                 sign: Callable[[str], str] | None = None) -> None:
        self.store = store
        self.access = access
        self.commands = commands
        # Signs a fresh URL for a stored object: the one in the event may have expired.
        self.sign = sign

    async def chats(self, who: Principal, session_id: str | None) -> dict[str, Any]:
        sid = await self.access.session_for(who, session_id)
        if sid is None:
            return {"sessionId": None, "chats": []}
        rows = [chat_view(r) for r in await self.store.chats(who.tenant_id, sid)]
        return {"sessionId": sid, "chats": await self.access.filter_rows(who, rows, "jid")}

    async def contacts(self, who: Principal, session_id: str | None) -> dict[str, Any]:
        sid = await self.access.session_for(who, session_id)
        if sid is None:
            return {"sessionId": None, "contacts": []}
        rows = [contact_view(r) for r in await self.store.contacts(who.tenant_id, sid)]
        return {"sessionId": sid, "contacts": await self.access.filter_rows(who, rows, "id")}

    async def messages(self, who: Principal, chat: str, session_id: str | None, limit: int,
                       cursor: str | None) -> dict[str, Any]:
        await self.access.chat(who, chat)
        position = decode_cursor(cursor) if cursor else None
        sid = await self.access.session_for(who, session_id)
        if sid is None:
            return {"sessionId": None, "chatJid": chat, "messages": [], "nextCursor": None}
        rows = await self.store.messages(who.tenant_id, sid, chat, limit + 1, position)
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1]["ts"], page[-1]["seq"]) if len(rows) > limit else None
        reactions: dict[str, list[dict[str, Any]]] = {}
        if page:
            for a in await self.store.reactions(sid, [r["id"] for r in page]):
                reactions.setdefault(a["message_id"], []).append(
                    {"emoji": a["emoji"], "count": a["n"], "actors": list(a["actors"])})
        items = [message_view(r, reactions.get(r["id"], []), self.sign) for r in page]
        return {"sessionId": sid, "chatJid": chat, "messages": items, "nextCursor": next_cursor}

    async def read(self, who: Principal, idem: Idem, traceparent: str | None, chat: str, message_ids: list[str],
                   session_id: str | None) -> Answer:
        await self.access.chat(who, chat)
        sid = await self.access.session_or_404(who, session_id)
        return await self.commands.accept(who, idem, traceparent, c.ReadMessages, sid, chat_jid=chat,
                                          message_ids=message_ids)

    async def presence(self, who: Principal, idem: Idem, traceparent: str | None, chat: str, presence: str,
                       session_id: str | None) -> Answer:
        await self.access.chat(who, chat)
        sid = await self.access.session_or_404(who, session_id)
        return await self.commands.accept(who, idem, traceparent, c.SendPresence, sid, chat_jid=chat,
                                          presence=presence)

    async def subscribe(self, who: Principal, idem: Idem, traceparent: str | None, chat: str,
                        session_id: str | None) -> Answer:
        await self.access.chat(who, chat)
        sid = await self.access.session_or_404(who, session_id)
        return await self.commands.accept(who, idem, traceparent, c.SubscribePresence, sid, jid=chat)
