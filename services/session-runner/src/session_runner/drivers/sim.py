"""``SimDriver``: the :class:`WhatsAppDriver` port over the simulator's device WebSocket.

One WebSocket per session at ``/ws/devices/{session_id}``. Requests carry a ``rid``
and are answered by ``{"op": "result", "rid": ...}`` frames; events arrive as
``{"op": "event", "seq": N, "type": ...}`` frames.

Per session, a reader task decodes frames (resolving request futures at once) and
queues events; a dispatcher task awaits the handler for one event at a time. The
split lets a handler call the driver (send, ack, ...) without deadlocking the reader.

Reconnect semantics:

* The simulator closes with 4000 (fault injection) or the network fails: the handler
  gets ``Disconnected(seq=0, reason="connection lost: ...")`` and the driver reconnects
  with exponential backoff; the server then replays every un-acked event and sends
  ``Connected`` (or QR codes) again.
* 4001 (another connection for the same device won), 4003 (simulator reset): the handler
  gets ``Disconnected(seq=0, reason="replaced: ..."/"reset: ...")``; no reconnect.
* 4002 (logged out): the ``LoggedOut`` event came as a frame just before; no reconnect,
  no ``Disconnected``.
* ``disconnect()``/``logout()``/``aclose()``: no ``Disconnected``, no reconnect; events
  already received are still handed to the handler before the call returns.

Presence subscriptions (``subscribe_presence``) last as long as the connection, as on
WhatsApp: after every ``Connected`` (including the one following a reconnect) the
runner must subscribe again. The current presence arrives right after subscribing.
Chat states (``send_chat_presence``) reach every device of the chat partner,
subscribed or not. ``PresenceUpdate`` events are never replayed.

Events synthesized by the driver (``Disconnected``) have ``seq=0``: there is nothing to ack.
``ack`` is best effort and never raises; acks made while reconnecting ride on the
reconnect (``?ack=N``), so the server replays only what is still un-acked.

Media goes through the simulator's HTTP media CDN, as on WhatsApp: ``send_media`` streams
the file to ``POST {base}/v1/media`` (answer: ``{"url", "sha256", "size"}``), then sends the
``send`` op with ``media: {url, kind, mime, size, sha256, fileName, ptt, width, height,
duration}`` (size and hash as the upload answered) and the caption as ``text``; a re-send
uploads again, and the server answers ``duplicate`` as for texts. A failed upload raises
:class:`DriverError` and sends nothing. Received ``message`` frames carry the same
``media`` object, decoded to :class:`IncomingMedia` with ``handle`` = its URL (relative to
the simulator); ``download_media`` streams ``GET {base}{url}`` to a temp file next to
``dest_path`` and renames it (whole or not at all). Downloading uses HTTP only, so it needs
no live device connection. Nothing is held in memory whole: files move in 1 MiB chunks.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import os
import random
import secrets
from collections.abc import Callable
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import orjson
from pydantic import TypeAdapter, ValidationError
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from session_runner.drivers.port import (
    ChatCleared,
    Connected,
    ContactsUpdate,
    Disconnected,
    DriverError,
    DriverEvent,
    EventHandler,
    GroupAction,
    GroupParticipantsChanged,
    HistorySync,
    IncomingCall,
    IncomingMedia,
    IncomingMessage,
    LoggedOut,
    MessageEdited,
    MessageRevoked,
    OutcomeUnknown,
    OutgoingMedia,
    PollVote,
    Presence,
    PresenceUpdate,
    QrCode,
    Reaction,
    Receipt,
    Rich,
    SendResult,
)
from zapstream_contracts.payloads import GroupInfo, RichContent

log = logging.getLogger(__name__)

# Close codes of the simulator (wa_simulator.core) that end a session for good.
_CLOSE_REPLACED = 4001
_CLOSE_LOGGED_OUT = 4002
_CLOSE_RESET = 4003
_TERMINAL_PREFIX = {_CLOSE_REPLACED: "replaced", _CLOSE_RESET: "reset"}

_STOP = object()

_CHUNK = 1024 * 1024  # file bytes per read/write while uploading or downloading media


def _media(raw: dict[str, Any] | None) -> IncomingMedia | None:
    if raw is None:
        return None
    return IncomingMedia(
        kind=raw["kind"],
        mime=raw["mime"],
        handle=raw["url"],
        size=raw.get("size"),
        file_name=raw.get("fileName"),
        ptt=bool(raw.get("ptt")),
        width=raw.get("width"),
        height=raw.get("height"),
        duration=raw.get("duration"),
    )


def _message(frame: dict[str, Any], seq: int) -> IncomingMessage:
    return IncomingMessage(
        seq=seq,
        id=frame["id"],
        chat_jid=frame["chat"],
        sender_jid=frame["sender"],
        from_me=bool(frame.get("fromMe")),
        timestamp=int(frame["timestamp"]),
        text=frame.get("text"),
        reply_to_id=frame.get("replyTo"),
        forwarded=bool(frame.get("forwarded")),
        push_name=frame.get("pushName"),
        media=_media(frame.get("media")),
        rich=_rich(frame.get("rich")),
        mentions=tuple(frame.get("mentions") or ()),
    )


_RICH: TypeAdapter[Rich] = TypeAdapter(RichContent)


def _rich(raw: dict[str, Any] | None) -> Rich | None:
    """The simulator carries rich content in the domain's own wire shape (camelCase, ``kind``)."""
    if raw is None:
        return None
    try:
        return _RICH.validate_python(raw)
    except ValidationError:
        return None  # a shape we cannot read: kept as a plain message rather than failing the batch


def _history(frame: dict[str, Any], seq: int) -> HistorySync:
    return HistorySync(
        seq=seq,
        sync_type=frame["syncType"],
        progress=int(frame["progress"]),
        is_latest=bool(frame["isLatest"]),
        messages=tuple(_message(m, seq) for m in frame.get("messages") or ()),
        contacts=tuple((c[0], c[1]) for c in frame.get("contacts") or ()),
    )


_DECODERS: dict[str, Callable[[dict[str, Any], int], DriverEvent]] = {
    "message": _message,
    "group_participants": lambda f, seq: GroupParticipantsChanged(
        seq=seq, group_jid=f["group"], action=f["action"], participants=tuple(f["participants"]),
        author=f.get("author")),
    "poll_vote": lambda f, seq: PollVote(seq=seq, chat_jid=f["chat"], poll_id=f["pollId"], voter_jid=f["voter"],
                                         timestamp=int(f["timestamp"]), options=tuple(f["options"])),
    "call": lambda f, seq: IncomingCall(seq=seq, call_id=f["id"], caller_jid=f["from"],
                                        timestamp=int(f["timestamp"]), video=bool(f.get("isVideo"))),
    "receipt": lambda f, seq: Receipt(
        seq=seq,
        chat_jid=f["chat"],
        message_ids=tuple(f["ids"]),
        status=f["status"],
        timestamp=int(f["timestamp"]),
    ),
    "qr": lambda f, seq: QrCode(seq=seq, code=f["code"], expires_at_ms=int(f["expiresAt"])),
    "connected": lambda f, seq: Connected(seq=seq, phone=f["phone"]),
    "logged_out": lambda f, seq: LoggedOut(seq=seq, reason=f.get("reason") or ""),
    "disconnected": lambda f, seq: Disconnected(seq=seq, reason=f.get("reason") or ""),
    "presence": lambda f, seq: PresenceUpdate(
        seq=seq, chat_jid=f["chat"], jid=f["jid"], presence=f["presence"], last_seen=f.get("lastSeen")
    ),
    "history_sync": _history,
    "edit": lambda f, seq: MessageEdited(
        seq=seq,
        chat_jid=f["chat"],
        message_id=f["id"],
        text=f["text"],
        timestamp=int(f["timestamp"]),
        from_me=bool(f.get("fromMe")),
    ),
    "revoke": lambda f, seq: MessageRevoked(
        seq=seq,
        chat_jid=f["chat"],
        message_id=f["id"],
        timestamp=int(f["timestamp"]),
        from_me=bool(f.get("fromMe")),
    ),
    "reaction": lambda f, seq: Reaction(
        seq=seq,
        chat_jid=f["chat"],
        message_id=f["id"],
        actor_jid=f["actor"],
        emoji=f["emoji"],
        timestamp=int(f["timestamp"]),
        from_me=bool(f.get("fromMe")),
    ),
    "chat_clear": lambda f, seq: ChatCleared(seq=seq, chat_jid=f["chat"], timestamp=int(f["timestamp"])),
    "contacts": lambda f, seq: ContactsUpdate(
        seq=seq, contacts=tuple((c[0], c[1], c[2]) for c in f.get("contacts") or ())
    ),
}


def _open_part(dest_path: str) -> tuple[BinaryIO, str]:
    """A new file next to ``dest_path`` (same file system, so the final rename is atomic).

    Not ``mkstemp``: its 0600 mode would ignore the umask the caller expects for ``dest_path``.
    """
    part = f"{dest_path}.{secrets.token_hex(6)}.part"
    return open(part, "xb"), part


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def decode_event(frame: dict[str, Any]) -> DriverEvent | None:
    """Turn an ``{"op": "event"}`` frame into a port event; ``None`` for unknown types."""
    decoder = _DECODERS.get(frame.get("type", ""))
    return decoder(frame, int(frame["seq"])) if decoder is not None else None


class _FileChunks:
    """An open file as an async byte stream for httpx; reads run in a thread.

    A class rather than an async generator: an upload abandoned midway leaves no
    generator to finalize, and the caller closes the file.
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    def __aiter__(self) -> _FileChunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await asyncio.to_thread(self._file.read, _CHUNK)
        if not chunk:
            raise StopAsyncIteration
        return chunk


class _Session:
    __slots__ = (
        "acked",
        "closing",
        "dispatcher",
        "ended",
        "events",
        "handler",
        "open_error",
        "opened",
        "pending",
        "session_id",
        "stop_requested",
        "supervisor",
        "ws",
    )

    def __init__(self, session_id: str, handler: EventHandler) -> None:
        self.session_id = session_id
        self.handler = handler
        self.ws: ClientConnection | None = None
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.acked = 0
        self.closing = False  # disconnect()/logout()/aclose() asked for it: no reconnect
        self.ended = False  # no connection will be made any more
        self.stop_requested = asyncio.Event()
        self.opened = asyncio.Event()  # the first connection attempt finished, for better or worse
        self.open_error: DriverError | None = None
        self.supervisor: asyncio.Task[None] | None = None
        self.dispatcher: asyncio.Task[None] | None = None


class SimDriver:
    """WhatsApp driver talking to the ``wa_simulator`` process."""

    supports_client_message_ids = True

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8090",
        *,
        connect_timeout: float = 5.0,
        request_timeout: float = 10.0,
        reconnect_initial_delay: float = 0.2,
        reconnect_max_delay: float = 10.0,
        ping_interval: float | None = 20.0,
    ) -> None:
        parts = urlsplit(base_url)
        scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
        if scheme is None or not parts.netloc:
            raise ValueError(f"base_url must be an http(s):// or ws(s):// URL, got {base_url!r}")
        self._ws_base = urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        http_scheme = "https" if scheme == "wss" else "http"
        self._http_base = urlunsplit((http_scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self._http: httpx.AsyncClient | None = None  # made on first media call
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._reconnect_initial = reconnect_initial_delay
        self._reconnect_max = reconnect_max_delay
        self._ping_interval = ping_interval
        self._sessions: dict[str, _Session] = {}
        self._rids = itertools.count(1)
        self._closed = False

    # -------------------------------------------------------------- port calls

    async def connect(self, session_id: str, on_event: EventHandler) -> None:
        """Open the device's WebSocket; returns once it is open (events follow via ``on_event``).

        Calling it again for a live (or reconnecting) session with the same handler is a
        no-op; with another handler it raises :class:`DriverError`.
        """
        if self._closed:
            raise DriverError("the driver is closed")
        existing = self._sessions.get(session_id)
        if existing is not None:
            if not existing.ended and not existing.closing:
                if existing.handler == on_event:
                    await existing.opened.wait()  # a concurrent first connect may still be in flight
                    if existing.open_error is not None:
                        raise existing.open_error
                    return
                raise DriverError(
                    f"session {session_id!r} is already connected with another handler; disconnect() it first"
                )
            await self._shutdown(existing)
        session = _Session(session_id, on_event)
        self._sessions[session_id] = session
        try:
            ws = await self._open(session)
        except BaseException as exc:
            session.open_error = (
                exc if isinstance(exc, DriverError) else DriverError(f"connect aborted: {exc!r}")
            )
            if self._sessions.get(session_id) is session:
                del self._sessions[session_id]
            raise
        finally:
            session.opened.set()
        session.ws = ws
        session.dispatcher = asyncio.create_task(self._dispatch(session), name=f"sim-dispatch-{session_id}")
        session.supervisor = asyncio.create_task(self._supervise(session, ws), name=f"sim-read-{session_id}")

    async def pair_code(self, session_id: str, phone: str) -> str:
        """Ask for a code to type on ``phone``; the device must be connected and not linked."""
        frame = await self._request(self._live(session_id), {"op": "pair_code", "phone": phone})
        return str(frame["code"])

    async def send_text(
        self,
        session_id: str,
        to_jid: str,
        text: str,
        *,
        message_id: str,
        reply_to_id: str | None = None,
        forwarded: bool = False,
        mentions: tuple[str, ...] = (),
    ) -> SendResult:
        """Send a text; re-sending an accepted ``message_id`` answers ``duplicate=True`` and delivers nothing."""
        payload = {
            "op": "send",
            "id": message_id,
            "to": to_jid,
            "text": text,
            "replyTo": reply_to_id,
            "forwarded": forwarded,
            "mentions": list(mentions) or None,
        }
        frame = await self._request(self._live(session_id), payload)
        return SendResult(
            message_id=frame["id"], timestamp=int(frame["timestamp"]), duplicate=bool(frame.get("duplicate"))
        )

    async def send_rich(
        self,
        session_id: str,
        to_jid: str,
        content: Rich,
        *,
        message_id: str,
        reply_to_id: str | None = None,
    ) -> SendResult:
        """A location, contact card or poll; idempotent on ``message_id`` like :meth:`send_text`."""
        payload = {
            "op": "send",
            "id": message_id,
            "to": to_jid,
            "text": None,
            "replyTo": reply_to_id,
            "rich": content.model_dump(mode="json", by_alias=True),
        }
        frame = await self._request(self._live(session_id), payload)
        return SendResult(
            message_id=frame["id"], timestamp=int(frame["timestamp"]), duplicate=bool(frame.get("duplicate"))
        )

    async def create_group(self, session_id: str, subject: str, participants: list[str]) -> GroupInfo:
        frame = await self._request(self._live(session_id), {"op": "group_create", "subject": subject,
                                                             "participants": participants})
        return GroupInfo.model_validate(frame["group"])

    async def update_group_participants(self, session_id: str, group_jid: str, action: GroupAction,
                                        participants: list[str]) -> list[str]:
        frame = await self._request(self._live(session_id), {"op": "group_participants", "group": group_jid,
                                                             "action": action, "participants": participants})
        return [str(x) for x in frame["changed"]]

    async def profile_photo(self, session_id: str, jid: str) -> bytes | None:
        frame = await self._request(self._live(session_id), {"op": "profile_photo", "jid": jid})
        photo = frame.get("photo")
        return base64.b64decode(photo) if isinstance(photo, str) else None

    async def reject_call(self, session_id: str, caller_jid: str, call_id: str) -> None:
        await self._request(self._live(session_id), {"op": "reject_call", "from": caller_jid, "id": call_id})

    async def leave_group(self, session_id: str, group_jid: str) -> None:
        await self._request(self._live(session_id), {"op": "group_leave", "group": group_jid})

    async def group_invite_link(self, session_id: str, group_jid: str, reset: bool = False) -> str:
        frame = await self._request(self._live(session_id), {"op": "group_invite", "group": group_jid,
                                                             "reset": reset})
        return str(frame["link"])

    async def joined_groups(self, session_id: str) -> list[GroupInfo]:
        frame = await self._request(self._live(session_id), {"op": "groups"})
        return [GroupInfo.model_validate(g) for g in frame["groups"]]

    async def send_media(
        self,
        session_id: str,
        to_jid: str,
        media: OutgoingMedia,
        *,
        message_id: str,
        reply_to_id: str | None = None,
        forwarded: bool = False,
    ) -> SendResult:
        """Upload ``media.path``, then send it like :meth:`send_text` (``duplicate`` on a re-sent id).

        The session must be connected before the upload starts; an unreadable file or a
        refused upload raises :class:`DriverError` and nothing is sent.
        """
        self._live(session_id)  # no point uploading for a session that cannot send
        uploaded = await self._upload(media)
        payload = {
            "op": "send",
            "id": message_id,
            "to": to_jid,
            "text": media.caption,
            "replyTo": reply_to_id,
            "forwarded": forwarded,
            "media": {
                "url": uploaded["url"],
                "kind": media.kind,
                "mime": media.mime,
                "size": uploaded["size"],
                "sha256": uploaded["sha256"],
                "fileName": media.file_name,
                "ptt": media.ptt,
                "width": media.width,
                "height": media.height,
                "duration": media.duration,
            },
        }
        frame = await self._request(self._live(session_id), payload)
        return SendResult(
            message_id=frame["id"], timestamp=int(frame["timestamp"]), duplicate=bool(frame.get("duplicate"))
        )

    async def download_media(self, session_id: str, media: IncomingMedia, dest_path: str) -> int:
        """Stream the media's bytes from the simulator to ``dest_path``; returns their size.

        ``dest_path`` is written whole or not at all (a sibling temp file, renamed at the end).
        Any failure (unknown or reset media, network, short body) raises :class:`DriverError`.
        """
        url = self._media_url(media.handle)
        client = self._http_client()
        try:
            file, part = await asyncio.to_thread(_open_part, dest_path)
        except OSError as exc:
            raise DriverError(f"cannot write media to {dest_path!r}: {exc}") from exc
        size = 0
        try:
            try:
                async with client.stream("GET", url) as response:
                    if response.status_code != 200:
                        await response.aread()
                        raise DriverError(
                            f"session {session_id!r}: media download {url} answered "
                            f"{response.status_code}: {response.text[:200]}"
                        )
                    async for chunk in response.aiter_bytes(_CHUNK):
                        await asyncio.to_thread(file.write, chunk)
                        size += len(chunk)
            finally:
                file.close()  # at once, even when cancelled: an unclosed file is a ResourceWarning
            if media.size is not None and size != media.size:
                raise DriverError(
                    f"session {session_id!r}: media {url} has {size} bytes, the message said {media.size}"
                )
            await asyncio.to_thread(os.replace, part, dest_path)
        except BaseException as exc:
            _unlink_quietly(part)  # synchronous: it must happen even when cancelled
            if isinstance(exc, httpx.HTTPError | OSError):
                raise DriverError(f"session {session_id!r}: media download {url} failed: {exc!r}") from exc
            raise
        return size

    async def edit_message(self, session_id: str, chat_jid: str, message_id: str, text: str) -> int:
        """Edit one of our messages (within 15 minutes); re-sending the same edit is harmless."""
        payload = {"op": "edit", "chat": chat_jid, "id": message_id, "text": text}
        return int((await self._request(self._live(session_id), payload))["timestamp"])

    async def revoke_message(self, session_id: str, chat_jid: str, message_id: str) -> int:
        """Delete one of our messages for everyone; idempotent (a repeat answers the first timestamp)."""
        payload = {"op": "revoke", "chat": chat_jid, "id": message_id}
        return int((await self._request(self._live(session_id), payload))["timestamp"])

    async def react(self, session_id: str, chat_jid: str, message_id: str, emoji: str) -> int:
        """Set our reaction on any message of the chat (``""`` removes it)."""
        payload = {"op": "react", "chat": chat_jid, "id": message_id, "emoji": emoji}
        return int((await self._request(self._live(session_id), payload))["timestamp"])

    async def subscribe_presence(self, session_id: str, jid: str) -> None:
        """Watch ``jid``'s presence until this connection ends (re-subscribe after each ``Connected``)."""
        await self._request(self._live(session_id), {"op": "presence_subscribe", "jid": jid})

    async def send_chat_presence(self, session_id: str, chat_jid: str, presence: Presence) -> None:
        """Show ``composing``/``recording``/``paused`` in a chat."""
        await self._request(
            self._live(session_id), {"op": "chat_presence", "chat": chat_jid, "presence": presence}
        )

    async def mark_read(self, session_id: str, chat_jid: str, message_ids: list[str]) -> None:
        """Send read receipts for messages received in ``chat_jid``."""
        session = self._live(session_id)
        if message_ids:
            await self._request(session, {"op": "read", "chat": chat_jid, "ids": list(message_ids)})

    async def ack(self, session_id: str, seq: int) -> None:
        """Acknowledge every event up to ``seq``; best effort, never raises.

        While the connection is down the ack is remembered and sent with the
        reconnect. For a session this driver no longer holds it is dropped: a lost
        ack only means the server redelivers those events later.
        """
        session = self._sessions.get(session_id)
        if session is None or seq <= session.acked:
            return
        session.acked = seq
        ws = session.ws
        if ws is not None:
            try:
                await ws.send(orjson.dumps({"op": "ack", "seq": seq}).decode())
            except ConnectionClosed:
                pass  # the reconnect carries it (?ack=)

    async def disconnect(self, session_id: str) -> None:
        """Close the connection (the device stays linked); a no-op for unknown sessions."""
        session = self._sessions.get(session_id)
        if session is not None:
            await self._shutdown(session)

    async def logout(self, session_id: str) -> None:
        """Unlink the device; the handler receives ``LoggedOut`` before this returns."""
        session = self._live(session_id)
        await self._request(session, {"op": "logout"})
        # The server sends LoggedOut, then closes with 4002; wait so that event is queued.
        if session.supervisor is not None:
            await asyncio.wait([session.supervisor], timeout=self._request_timeout)
        await self._shutdown(session)

    async def aclose(self) -> None:
        """Close every session; the driver cannot be used afterwards."""
        self._closed = True
        await asyncio.gather(*(self._shutdown(s) for s in list(self._sessions.values())))
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # --------------------------------------------------------------- internals

    def _http_client(self) -> httpx.AsyncClient:
        if self._closed:
            raise DriverError("the driver is closed")
        if self._http is None:
            self._http = httpx.AsyncClient(
                # Per read/write, not per transfer: a big upload is fine while it progresses.
                timeout=httpx.Timeout(self._request_timeout, connect=self._connect_timeout),
                trust_env=False,  # the simulator is local; never route it through an environment proxy
            )
        return self._http

    def _media_url(self, handle: str) -> str:
        if handle.startswith("/"):
            return self._http_base + handle  # keeps a base path the simulator may be mounted under
        if handle.startswith(("http://", "https://")):
            return handle
        raise DriverError(f"not a simulator media handle: {handle!r}")

    async def _upload(self, media: OutgoingMedia) -> dict[str, Any]:
        """Stream ``media.path`` to the simulator's media store; returns its ``{url, sha256, size}``."""
        try:
            file = await asyncio.to_thread(open, media.path, "rb")
        except OSError as exc:
            raise DriverError(f"cannot read media file {media.path!r}: {exc}") from exc
        url = f"{self._http_base}/v1/media"
        try:
            size = os.fstat(file.fileno()).st_size
            response = await self._http_client().post(
                url,
                content=_FileChunks(file),
                # An explicit length avoids chunked encoding and lets the server refuse early (413).
                headers={"Content-Type": media.mime, "Content-Length": str(size)},
            )
        except httpx.HTTPError as exc:
            raise DriverError(f"media upload to {url} failed: {exc!r}") from exc
        except OSError as exc:
            raise DriverError(f"cannot read media file {media.path!r}: {exc}") from exc
        finally:
            file.close()  # at once, even when cancelled
        if response.status_code != 200:
            raise DriverError(f"media upload refused ({response.status_code}): {response.text[:200]}")
        try:
            answer = orjson.loads(response.content)
            return {"url": str(answer["url"]), "sha256": str(answer["sha256"]), "size": int(answer["size"])}
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DriverError(f"unexpected answer to a media upload: {response.text[:200]!r}") from exc

    def _live(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None or session.ended or session.closing:
            raise DriverError(f"session {session_id!r} is not connected; call connect() first")
        if session.ws is None:
            raise DriverError(f"session {session_id!r} is not connected (reconnecting); retry later")
        return session

    async def _open(self, session: _Session) -> ClientConnection:
        url = f"{self._ws_base}/ws/devices/{quote(session.session_id, safe='')}"
        if session.acked:
            url += f"?ack={session.acked}"
        try:
            return await ws_connect(
                url,
                open_timeout=self._connect_timeout,
                ping_interval=self._ping_interval,
                ping_timeout=self._ping_interval,
                close_timeout=min(self._request_timeout, 5.0),
                compression=None,  # small JSON frames: deflate costs more CPU than it saves
                proxy=None,  # the simulator is local; never route it through an environment proxy
                max_size=16 * 1024 * 1024,
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise DriverError(f"cannot reach the WhatsApp simulator at {url}: {exc!r}") from exc

    async def _request(self, session: _Session, request: dict[str, Any]) -> dict[str, Any]:
        ws = session.ws
        op = request["op"]
        if ws is None:
            raise DriverError(f"session {session.session_id!r} is not connected")
        rid = str(next(self._rids))
        request["rid"] = rid
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        session.pending[rid] = future
        try:
            try:
                await ws.send(orjson.dumps(request).decode())
            except ConnectionClosed as exc:
                raise OutcomeUnknown(
                    f"session {session.session_id!r}: connection lost while sending {op}"
                ) from exc
            try:
                async with asyncio.timeout(self._request_timeout):
                    frame = await future
            except TimeoutError:
                raise OutcomeUnknown(
                    f"session {session.session_id!r}: no answer to {op} within {self._request_timeout}s"
                ) from None
        finally:
            session.pending.pop(rid, None)
        if not frame.get("ok"):
            raise DriverError(f"session {session.session_id!r}: simulator refused {op}: {frame.get('error')}")
        return frame

    def _fail_pending(self, session: _Session) -> None:
        for future in session.pending.values():
            if not future.done():
                future.set_exception(
                    OutcomeUnknown(
                        f"session {session.session_id!r}: connection lost before the answer arrived; "
                        "the outcome is unknown (re-send with the same message_id)"
                    )
                )
        session.pending.clear()

    async def _read(self, session: _Session, ws: ClientConnection) -> tuple[int, str]:
        """Read frames until the connection closes; returns (close code, reason)."""
        try:
            async for raw in ws:
                try:
                    frame = orjson.loads(raw)
                    op = frame.get("op")
                    if op == "event":
                        event = decode_event(frame)
                        if event is None:
                            log.warning("session %s: ignoring unknown event %r", session.session_id, frame)
                        else:
                            session.events.put_nowait(event)
                    elif op == "result":
                        future = session.pending.pop(str(frame.get("rid")), None)
                        if future is not None and not future.done():
                            future.set_result(frame)
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                    log.warning("session %s: ignoring malformed frame %r", session.session_id, raw)
        except ConnectionClosed:
            pass
        await ws.close()  # idempotent; makes sure the transport is released
        return ws.close_code or 1006, ws.close_reason or ""

    async def _supervise(self, session: _Session, ws: ClientConnection) -> None:
        """Own the session's connection: read it, and reconnect after unexpected drops."""
        try:
            while True:
                code, reason = await self._read(session, ws)
                session.ws = None
                self._fail_pending(session)
                if session.closing or code == _CLOSE_LOGGED_OUT:
                    return
                prefix = _TERMINAL_PREFIX.get(code)
                if prefix is not None:
                    session.events.put_nowait(
                        Disconnected(seq=0, reason=f"{prefix}: {reason}", replaced=prefix == "replaced")
                    )
                    return
                session.events.put_nowait(
                    Disconnected(seq=0, reason=f"connection lost: {reason or f'close code {code}'}")
                )
                reconnected = await self._reconnect(session)
                if reconnected is None:
                    return
                ws = reconnected
        finally:
            session.ended = True
            session.ws = None
            self._fail_pending(session)
            session.events.put_nowait(_STOP)

    async def _reconnect(self, session: _Session) -> ClientConnection | None:
        delay = self._reconnect_initial
        while True:
            try:
                # Jitter spreads a herd of sessions reconnecting after a simulator restart.
                async with asyncio.timeout(delay * random.uniform(0.5, 1.0)):
                    await session.stop_requested.wait()
                return None
            except TimeoutError:
                pass
            sent_ack = session.acked
            try:
                ws = await self._open(session)
            except DriverError as exc:
                log.info("session %s: reconnect failed: %s", session.session_id, exc)
                delay = min(delay * 2, self._reconnect_max)
                continue
            if session.closing:
                await ws.close()
                return None
            session.ws = ws
            if session.acked > sent_ack:  # acked while the handshake was in flight
                try:
                    await ws.send(orjson.dumps({"op": "ack", "seq": session.acked}).decode())
                except ConnectionClosed:
                    pass
            return ws

    async def _dispatch(self, session: _Session) -> None:
        while True:
            event = await session.events.get()
            if event is _STOP:
                # A session the server ended (replaced, logged out, reset) frees its slot by itself.
                if self._sessions.get(session.session_id) is session:
                    del self._sessions[session.session_id]
                return
            try:
                await session.handler(session.session_id, event)
            except Exception:
                # Keep the stream going; the un-acked event comes back on the next reconnect.
                log.exception("session %s: event handler failed on %r", session.session_id, event)

    async def _shutdown(self, session: _Session) -> None:
        session.closing = True
        session.stop_requested.set()
        ws = session.ws
        if ws is not None:
            await ws.close()
        if session.supervisor is not None:
            _done, pending = await asyncio.wait([session.supervisor], timeout=self._connect_timeout + 1)
            if pending:
                session.supervisor.cancel()
                await asyncio.wait([session.supervisor])
        # Drain what was received; skip when called from the handler itself (it would wait on itself).
        if session.dispatcher is not None and session.dispatcher is not asyncio.current_task():
            await asyncio.wait([session.dispatcher])
        if self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]
