"""HTTP and WebSocket front of the simulator (FastAPI).

Device protocol (JSON text frames, orjson):

* device → server: ``{"op": ..., "rid": ..., ...}`` answered by ``{"op": "result", "rid": ..., "ok": bool, ...}``
  (``ok: false`` carries ``error``; the request took no effect); ``{"op": "ack", "seq": N}`` has no answer.

  ============================  ===============================================  ====================
  op                            fields                                           result
  ============================  ===============================================  ====================
  ``send``                      ``id, to, text, replyTo?, forwarded?, media?``   ``id, timestamp,
                                                                                 duplicate``
  ``edit``                      ``chat, id, text`` (own messages, 15 min)        ``timestamp``
  ``revoke``                    ``chat, id`` (own messages; idempotent)          ``timestamp``
  ``react``                     ``chat, id, emoji`` (``""`` removes)             ``timestamp``
  ``read``                      ``chat, ids``                                    ``ids`` (now read)
  ``presence_subscribe``        ``jid`` (until the connection ends)              —
  ``chat_presence``             ``chat, presence`` (composing/recording/paused)  —
  ``pair_code``                 ``phone``                                        ``code``
  ``disconnect``, ``logout``    —                                                —
  ============================  ===============================================  ====================

* server → device: ``{"op": "event", "seq": N, "type": ..., ...}``; types: ``qr``, ``connected``,
  ``presence`` (ephemeral), ``history_sync``, ``message`` (``forwarded``, ``pushName``, ``media``),
  ``receipt``, ``edit``, ``revoke``, ``reaction``, ``chat_clear``, ``contacts``, ``logged_out``.
* connect with ``?ack=N`` to acknowledge up to ``N`` before the replay starts.
* close codes: 4000 dropped (reconnect), 4001 replaced by a newer connection,
  4002 logged out, 4003 simulator reset (those three: do not reconnect).

Media, as on WhatsApp's CDN (upload first, then send the URL):

* ``POST /v1/media``: the raw request body is the file (streamed to disk, never held in
  memory; ``Content-Type`` optional, kept as the upload's type) →
  ``{"url": "/v1/media/<id>", "sha256": <hex>, "size": N}``; 413 past ``SIM_MAX_MEDIA_BYTES``
  (128 MB), 400 when empty. Files live in ``SIM_MEDIA_DIR`` (default: a temp dir, removed at
  shutdown); ``/control/reset`` forgets them.
* ``GET /v1/media/<id>``: the bytes (404 for an unknown id).
* ``send`` with ``media``: ``{url, kind, mime, size, sha256?, fileName?, ptt?, width?, height?,
  duration?}``; ``url`` as the upload answered, ``kind`` one of image/video/audio/document/sticker,
  ``size`` (and ``sha256``) must match the upload, ``ptt`` only for audio; ``text`` is the caption
  (``null`` or ``""``: none). ``message`` events and the inbox/outbox views carry ``media`` with all
  ten keys (``url`` as stored; absent ones ``null``, ``ptt`` false), ``null`` for texts.
  ``/control/stats`` counts ``mediaUploads`` and ``mediaStored``.

Control endpoints under ``/control`` drive the world for tests and benchmarks. Messaging
parity ones: ``POST /control/inject`` (``forwarded``; ``media``: ``{dataBase64, kind, mime,
fileName?, ptt?, width?, height?, duration?}`` stores the bytes as an upload and sends them,
``text`` being the caption), ``POST|GET /control/contacts/{phone}``
(``name`` = push name, ``savedName``), ``POST /control/contacts/{phone}/react|edit|revoke|presence``
and ``POST /control/devices/{sid}/clear-chat``. A scripted contact reacts 👍 to a text
containing ``#react`` once it has read it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import ClientDisconnect

from wa_simulator.config import Settings
from wa_simulator.core import CLOSE_NORMAL, Link, NotFound, SimError, Simulator, TooLarge, normalize_phone
from wa_simulator.media import MediaStore
from wa_simulator.scheduling import AsyncioScheduler

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class OrjsonResponse(Response):
    """JSON response rendered with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class ScanBody(_Body):
    phone: str
    session_id: str | None = Field(default=None, alias="sessionId")
    qr: str | None = None
    name: str | None = None


class PairBody(_Body):
    code: str
    name: str | None = None


class ReasonBody(_Body):
    reason: str | None = None


class LatencyBody(_Body):
    ms: int = Field(ge=0)


class InjectMediaBody(_Body):
    data_base64: str = Field(alias="dataBase64")
    kind: str
    mime: str
    file_name: str | None = Field(default=None, alias="fileName")
    ptt: bool = False
    width: int | None = None
    height: int | None = None
    duration: int | None = None


class InjectBody(_Body):
    sender: str = Field(alias="from")
    to: str
    text: str | None = None  # required without media; with media, the caption
    id: str | None = None
    reply_to: str | None = Field(default=None, alias="replyTo")
    forwarded: bool = False
    media: InjectMediaBody | None = None
    rich: dict[str, Any] | None = None  # a location, contact card or poll (the runner's wire shape)


class PhotoBody(_Body):
    data_base64: str | None = Field(default=None, alias="dataBase64")  # null hides the photo


class VoteBody(_Body):
    to: str
    poll_id: str = Field(alias="pollId")
    options: list[str]


class CallBody(_Body):
    to: str
    video: bool = False


class ContactBody(_Body):
    auto_reply: bool | None = Field(default=None, alias="autoReply")
    auto_read: bool | None = Field(default=None, alias="autoRead")
    typing: bool | None = None
    name: str | None = None
    saved_name: str | None = Field(default=None, alias="savedName")


class ContactActionBody(_Body):
    to: str
    message_id: str = Field(alias="messageId")


class ContactReactBody(ContactActionBody):
    emoji: str


class ContactEditBody(ContactActionBody):
    text: str


class ContactPresenceBody(_Body):
    presence: str
    to: str | None = None


class ClearChatBody(_Body):
    chat: str


async def _body(request: Request, model: type[M]) -> M:
    # FastAPI's own body parsing goes through the stdlib json module; orjson is the project's codec.
    raw = await request.body()
    try:
        data = orjson.loads(raw) if raw.strip() else {}
        return model.model_validate(data)
    except orjson.JSONDecodeError as exc:
        raise SimError(f"invalid JSON body: {exc}") from None
    except ValidationError as exc:
        raise SimError(f"invalid body: {exc.errors(include_url=False, include_context=False)}") from None


class WsLink:
    """A device connection: frames are queued and written by one task, so the core never awaits."""

    __slots__ = ("_closing", "_queue", "_ws")

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self._queue: asyncio.Queue[bytes | tuple[int, str] | None] = asyncio.Queue()
        self._closing = False

    def push(self, frame: bytes) -> None:
        if not self._closing:
            self._queue.put_nowait(frame)

    def close(self, code: int, reason: str) -> None:
        if not self._closing:
            self._closing = True
            self._queue.put_nowait((code, reason))

    def stop(self) -> None:
        """The peer is gone: let the writer finish without closing."""
        self._closing = True
        self._queue.put_nowait(None)

    async def run_writer(self) -> None:
        ws = self._ws
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    return
                if isinstance(item, bytes):
                    await ws.send_text(item.decode())
                else:
                    await ws.close(code=item[0], reason=item[1])
                    return
        except Exception as exc:  # the client vanished mid-write; the reader loop cleans up
            log.debug("device writer stopped: %r", exc)


def _process(sim: Simulator, session_id: str, link: Link, frame: dict[str, Any]) -> None:
    op = frame.get("op")
    rid = frame.get("rid")
    after: Callable[[], None] | None = None
    result: dict[str, Any] = {}
    try:
        if not sim.is_current(session_id, link):
            raise SimError("this connection was replaced or closed")
        if op == "send":
            msg, duplicate = sim.send(
                session_id,
                msg_id=frame.get("id"),
                to_jid=frame.get("to"),
                text=frame.get("text"),
                reply_to=frame.get("replyTo"),
                forwarded=frame.get("forwarded", False),
                media=frame.get("media"),
                rich=frame.get("rich"),
                mentions=frame.get("mentions"),
            )
            result = {"id": msg.id, "timestamp": msg.timestamp, "duplicate": duplicate}
        elif op == "edit":
            result = {
                "timestamp": sim.edit(session_id, frame.get("chat"), frame.get("id"), frame.get("text"))
            }
        elif op == "revoke":
            result = {"timestamp": sim.revoke(session_id, frame.get("chat"), frame.get("id"))}
        elif op == "react":
            result = {
                "timestamp": sim.react(session_id, frame.get("chat"), frame.get("id"), frame.get("emoji"))
            }
        elif op == "presence_subscribe":
            sim.subscribe_presence(session_id, frame.get("jid"))
        elif op == "chat_presence":
            sim.chat_presence(session_id, frame.get("chat"), frame.get("presence"))
        elif op == "read":
            result = {"ids": sim.mark_read(session_id, frame.get("chat"), frame.get("ids"))}
        elif op == "pair_code":
            result = {"code": sim.request_pair_code(session_id, frame.get("phone"))}
        elif op == "profile_photo":
            photo = sim.profile_photo(session_id, frame.get("jid"))
            result = {"photo": base64.b64encode(photo).decode() if photo is not None else None}
        elif op == "reject_call":
            sim.reject_call(session_id, frame.get("from"), frame.get("id"))
        elif isinstance(op, str) and op.startswith("group"):
            result = _group_op(sim, session_id, op, frame)
        elif op == "disconnect":
            after = lambda: sim.drop(session_id, "disconnected by device", CLOSE_NORMAL)  # noqa: E731
        elif op == "logout":
            sim.check_linked(session_id)
            after = lambda: sim.logout(session_id, "logged out by device")  # noqa: E731
        else:
            raise SimError(f"unknown op {op!r}")
    except SimError as exc:
        reply: dict[str, Any] = {"op": "result", "rid": rid, "ok": False, "error": str(exc)}
    except Exception as exc:
        log.exception("device op %r failed", op)
        reply = {"op": "result", "rid": rid, "ok": False, "error": f"internal error: {exc!r}"}
    else:
        reply = {"op": "result", "rid": rid, "ok": True, **result}
    # The answer goes out before the close/LoggedOut that `after` triggers.
    link.push(orjson.dumps(reply))
    if after is not None:
        after()


def _group_op(sim: Simulator, session_id: str, op: str, frame: dict[str, Any]) -> dict[str, Any]:
    me = sim.phone_of(session_id)
    groups = sim.groups
    if op == "group_create":
        info = groups.create(me, frame.get("subject"), frame.get("participants"), sim.now_s())
        sim.group_changed(session_id, info["id"], "add", [p["id"] for p in info["participants"]
                                                         if p["admin"] != "superadmin"])
        return {"group": info}
    if op == "group_participants":
        changed = groups.participants(me, frame.get("group"), frame.get("action"), frame.get("participants"))
        sim.group_changed(session_id, str(frame.get("group")), str(frame.get("action")), changed)
        return {"changed": changed}
    if op == "group_leave":
        groups.leave(me, frame.get("group"))
        sim.group_changed(session_id, str(frame.get("group")), "leave", [f"{me}@s.whatsapp.net"])
        return {}
    if op == "group_invite":
        return {"link": groups.invite_link(me, frame.get("group"), frame.get("reset"))}
    if op == "groups":
        return {"groups": groups.of(me)}
    raise SimError(f"unknown op {op!r}")


# Ops that the injected latency slows down (all of them, so a send and its later edit stay in order).
_DELAYED_OPS = frozenset({"send", "edit", "revoke", "react"})


def _handle_frame(sim: Simulator, session_id: str, link: Link, raw: str | bytes) -> None:
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        link.push(orjson.dumps({"op": "result", "rid": None, "ok": False, "error": "invalid JSON frame"}))
        return
    if not isinstance(frame, dict):
        link.push(
            orjson.dumps({"op": "result", "rid": None, "ok": False, "error": "frame must be an object"})
        )
        return
    op = frame.get("op")
    if op == "ack":
        seq = frame.get("seq")
        if isinstance(seq, int):
            sim.ack(session_id, seq, link)
        return
    if op in _DELAYED_OPS and sim.latency_ms > 0:
        # Timers with equal delays fire in order, so per-device order of these ops is kept.
        asyncio.get_running_loop().call_later(sim.latency_ms / 1000, _process, sim, session_id, link, frame)
        return
    _process(sim, session_id, link, frame)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the simulator application (state lives in ``app.state.sim``)."""
    settings = settings or Settings()
    sim = Simulator(settings, AsyncioScheduler())
    store = MediaStore.from_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        sim.shutdown()
        await store.close()

    app = FastAPI(title="wa-simulator", default_response_class=OrjsonResponse, lifespan=lifespan)
    app.state.sim = sim
    app.state.media = store

    @app.exception_handler(SimError)
    async def sim_error(_request: Request, exc: SimError) -> OrjsonResponse:
        return OrjsonResponse({"error": str(exc)}, status_code=exc.status)

    @app.websocket("/ws/devices/{session_id}")
    async def device_socket(ws: WebSocket, session_id: str) -> None:
        await ws.accept()
        link = WsLink(ws)
        writer = asyncio.create_task(link.run_writer())
        raw_ack = ws.query_params.get("ack")
        ack = int(raw_ack) if raw_ack is not None and raw_ack.isdigit() else None
        sim.attach(session_id, link, ack)
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                raw = message.get("text")
                if raw is None:
                    raw = message.get("bytes")
                if raw is not None:
                    _handle_frame(sim, session_id, link, raw)
        except Exception as exc:
            log.debug("device %s reader stopped: %r", session_id, exc)
        finally:
            sim.detach(session_id, link)
            link.stop()
            _done, pending = await asyncio.wait([writer], timeout=2.0)
            for task in pending:
                task.cancel()

    @app.post("/control/scan")
    async def scan(request: Request) -> OrjsonResponse:
        body = await _body(request, ScanBody)
        device = sim.scan(body.phone, session_id=body.session_id, qr=body.qr, name=body.name)
        return OrjsonResponse(device.as_dict())

    @app.post("/control/pair")
    async def pair(request: Request) -> OrjsonResponse:
        body = await _body(request, PairBody)
        return OrjsonResponse(sim.pair(body.code, body.name).as_dict())

    @app.get("/control/devices")
    async def devices() -> OrjsonResponse:
        return OrjsonResponse({"devices": sim.devices_view()})

    @app.get("/control/devices/{session_id}")
    async def device(session_id: str) -> OrjsonResponse:
        return OrjsonResponse(sim.device_info(session_id))

    @app.post("/control/devices/{session_id}/drop")
    async def drop(session_id: str, request: Request) -> OrjsonResponse:
        body = await _body(request, ReasonBody)
        sim.drop(session_id, body.reason or "connection dropped by the simulator")
        return OrjsonResponse(sim.device_info(session_id))

    @app.post("/control/devices/{session_id}/logout")
    async def logout(session_id: str, request: Request) -> OrjsonResponse:
        body = await _body(request, ReasonBody)
        sim.logout(session_id, body.reason or "logged out from the phone")
        return OrjsonResponse(sim.device_info(session_id))

    @app.post("/control/latency")
    async def latency(request: Request) -> OrjsonResponse:
        body = await _body(request, LatencyBody)
        sim.set_latency(body.ms)
        return OrjsonResponse({"ms": sim.latency_ms})

    @app.post("/v1/media")
    async def upload_media(request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > store.max_bytes:
            raise TooLarge(f"media larger than the simulator's cap of {store.max_bytes} bytes")
        media_id = sim.new_media_id()
        try:
            size, sha256 = await store.receive(media_id, request.stream())
        except ClientDisconnect:
            return Response(status_code=400)  # the uploader is gone; nobody reads this
        mime = request.headers.get("content-type") or "application/octet-stream"
        stored = sim.add_media(media_id, size, sha256, mime)
        return OrjsonResponse({"url": stored.url, "sha256": stored.sha256, "size": stored.size})

    @app.get("/v1/media/{media_id}")
    async def download_media(media_id: str) -> FileResponse:
        stored = sim.stored_media(media_id)
        return FileResponse(store.path(media_id), media_type=stored.mime)

    async def _store_injected(body: InjectMediaBody) -> tuple[str, dict[str, Any]]:
        try:
            data = base64.b64decode(body.data_base64, validate=True)
        except binascii.Error:
            raise SimError("media.dataBase64 is not valid base64") from None
        media_id = sim.new_media_id()
        size, sha256 = await store.store_bytes(media_id, data)
        stored = sim.add_media(media_id, size, sha256, body.mime)
        return media_id, {
            "url": stored.url,
            "kind": body.kind,
            "mime": body.mime,
            "size": size,
            "sha256": sha256,
            "fileName": body.file_name,
            "ptt": body.ptt,
            "width": body.width,
            "height": body.height,
            "duration": body.duration,
        }

    async def _discard(media_id: str | None) -> None:
        if media_id is not None:
            sim.forget_media(media_id)
            await store.remove(media_id)

    @app.post("/control/inject")
    async def inject(request: Request) -> OrjsonResponse:
        body = await _body(request, InjectBody)
        media_id, media = await _store_injected(body.media) if body.media is not None else (None, None)
        try:
            msg, duplicate = sim.inject(
                body.sender,
                body.to,
                body.text,
                msg_id=body.id,
                reply_to=body.reply_to,
                forwarded=body.forwarded,
                media=media,
                rich=body.rich,
            )
        except SimError:
            await _discard(media_id)  # refused: nothing will ever name the upload made for it
            raise
        if duplicate:
            await _discard(media_id)  # the message keeps the first attempt's upload
        return OrjsonResponse({**msg.as_dict(), "duplicate": duplicate})

    @app.post("/control/contacts/{phone}")
    async def contact(phone: str, request: Request) -> OrjsonResponse:
        body = await _body(request, ContactBody)
        sim.set_contact(
            phone,
            auto_reply=body.auto_reply,
            auto_read=body.auto_read,
            typing=body.typing,
            name=body.name,
            saved_name=body.saved_name,
        )
        return OrjsonResponse(sim.contact_view(phone))

    @app.get("/control/contacts/{phone}")
    async def contact_view(phone: str) -> OrjsonResponse:
        return OrjsonResponse(sim.contact_view(phone))

    @app.post("/control/contacts/{phone}/photo")
    async def set_photo(phone: str, request: Request) -> OrjsonResponse:
        body = await _body(request, PhotoBody)
        data = base64.b64decode(body.data_base64) if body.data_base64 is not None else None
        sim.photos[normalize_phone(phone)] = data
        return OrjsonResponse({"phone": phone, "hasPhoto": data is not None})

    @app.post("/control/contacts/{phone}/vote")
    async def vote(phone: str, request: Request) -> OrjsonResponse:
        body = await _body(request, VoteBody)
        return OrjsonResponse(sim.vote(phone, body.to, body.poll_id, body.options))

    @app.post("/control/contacts/{phone}/call")
    async def call(phone: str, request: Request) -> OrjsonResponse:
        body = await _body(request, CallBody)
        return OrjsonResponse(sim.call(phone, body.to, body.video))

    @app.get("/control/calls/{call_id}")
    async def call_status(call_id: str) -> OrjsonResponse:
        found = sim.calls.get(call_id)
        if found is None:
            raise NotFound(f"unknown call {call_id!r}")
        return OrjsonResponse(found)

    @app.post("/control/contacts/{phone}/react")
    async def contact_react(phone: str, request: Request) -> OrjsonResponse:
        body = await _body(request, ContactReactBody)
        return OrjsonResponse(sim.contact_react(phone, body.to, body.message_id, body.emoji).as_dict())

    @app.post("/control/contacts/{phone}/edit")
    async def contact_edit(phone: str, request: Request) -> OrjsonResponse:
        body = await _body(request, ContactEditBody)
        return OrjsonResponse(sim.contact_edit(phone, body.to, body.message_id, body.text).as_dict())

    @app.post("/control/contacts/{phone}/revoke")
    async def contact_revoke(phone: str, request: Request) -> OrjsonResponse:
        body = await _body(request, ContactActionBody)
        return OrjsonResponse(sim.contact_revoke(phone, body.to, body.message_id).as_dict())

    @app.post("/control/contacts/{phone}/presence")
    async def contact_presence(phone: str, request: Request) -> OrjsonResponse:
        body = await _body(request, ContactPresenceBody)
        sim.contact_set_presence(phone, body.presence, body.to)
        return OrjsonResponse(sim.contact_view(phone))

    @app.post("/control/devices/{session_id}/clear-chat")
    async def clear_chat(session_id: str, request: Request) -> OrjsonResponse:
        body = await _body(request, ClearChatBody)
        return OrjsonResponse({"chat": body.chat, "timestamp": sim.clear_chat(session_id, body.chat)})

    @app.get("/control/accounts/{phone}/inbox")
    async def inbox(phone: str) -> OrjsonResponse:
        return OrjsonResponse({"phone": phone, "messages": sim.inbox(phone)})

    @app.get("/control/accounts/{phone}/outbox")
    async def outbox(phone: str) -> OrjsonResponse:
        return OrjsonResponse({"phone": phone, "messages": sim.outbox(phone)})

    @app.get("/control/stats")
    async def stats() -> OrjsonResponse:
        return OrjsonResponse(sim.stats_view())

    @app.post("/control/reset")
    async def reset() -> OrjsonResponse:
        sim.reset()
        await store.clear()
        return OrjsonResponse({"ok": True})

    return app
