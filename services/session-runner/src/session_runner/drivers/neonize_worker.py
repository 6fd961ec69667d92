"""The neonize side of :class:`~session_runner.drivers.neonize_driver.NeonizeDriver`.

:class:`SessionHost` owns the ``neonize`` async clients (``NewAClient``) of a few sessions and
turns their events into port events. It runs inside a worker process started by the driver
(``worker_main``), so that a Go panic in the native library — which aborts the whole process —
takes down only this worker and the few sessions it hosts; the driver restarts it.

Pitfalls handled here:

* **Nothing is downloaded at import.** ``neonize._binder`` downloads the native library from
  GitHub *at import* when the bundled one is missing or has another version.
  :func:`check_native_library` verifies the bundled file and its version first, without
  importing neonize, and refuses to import otherwise.
* **No bot badge.** The native library reads ``NEONIZE_BOT_TAG`` (``off``/``none``/``false``/``0``
  disable the ``<bot biz_bot="1"/>`` node; anything else, including unset, adds it to every 1:1
  message). Go copies the environment when the library loads, so it is set *before* the import.
* **Handlers before connect.** neonize subscribes Go to exactly the events that have a handler
  when ``connect()`` is called; they are all registered first.
* **One OS thread per connected client.** ``connect()`` parks a blocking FFI call in the default
  executor for the whole life of the connection, and every other call goes through
  ``asyncio.to_thread`` too; the executor is sized from ``sessions_per_worker``.
* **Calls before login panic.** The native functions index a client map without checking, so a
  call for a client that is not registered (or not logged in) dereferences nil in Go. Every call
  goes through :meth:`SessionHost._online` (or a state check) first.
* **Ordering.** neonize schedules each Go callback as its own task; handlers only enqueue, and
  one pump per session emits in arrival order (awaiting lookups such as ``get_me`` in between).
* **Media without neonize's builders.** ``build_audio_message`` & co. upload with a media type
  guessed by libmagic (an Opus-in-WebM voice note goes up as *video*, so its keys are derived
  for video and the recipient cannot decrypt it) and probe with ffmpeg unconditionally.
  :meth:`SessionHost.send_media` uploads with the kind's media type and fills the message from
  :class:`OutgoingMedia` (:func:`build_media_message`); ffmpeg is only an optional extra for
  video thumbnails and missing durations.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import ctypes
import functools
import importlib.util
import io
import logging
import os
import platform
import re
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from session_runner.drivers import neonize_mapping as nm
from session_runner.drivers.port import (
    ContactsUpdate,
    Disconnected,
    DriverError,
    DriverEvent,
    IncomingCall,
    LoggedOut,
    MediaKind,
    OutcomeUnknown,
    OutgoingMedia,
    Presence,
    Rich,
    SendResult,
)
from zapstream_contracts.payloads import GroupInfo, Poll

log = logging.getLogger(__name__)

Emit = Callable[[str, Any], None]
"""``emit(session_id, item)``: an event, or a ``("device", jid)`` note, for the driver."""

_QUOTE_CACHE = 2048  # recent messages kept per session, to quote them in replies
# Media transfers get ``request_timeout`` plus the time this slow a link needs for their size, so
# a 100 MB document is not cut off at 30 s while a dead connection is still noticed.
_MEDIA_MIN_BYTES_PER_S = 256 * 1024
_PREVIEW_TIMEOUT = 20.0  # ffmpeg/ffprobe for a thumbnail or a duration; past it, send without
_THUMBNAIL_PX = 200
_VOICE_NOTE_MIME = "audio/ogg; codecs=opus"  # what WhatsApp clients expect on a PTT
_UPLOAD_TYPE: dict[MediaKind, str] = {  # neonize.utils.enum.MediaType member per kind
    "image": "MediaImage",
    "sticker": "MediaImage",
    "video": "MediaVideo",
    "audio": "MediaAudio",
    "document": "MediaDocument",
}


# ------------------------------------------------------------------------- native library


def _native_library_name() -> str:
    """The file neonize loads (mirrors ``neonize.utils.platform.generated_name``)."""
    system = platform.system().lower()
    arch = {"aarch64": "arm64", "x86_64": "amd64"}.get(platform.machine().lower(), platform.machine().lower())
    ext = {"windows": "dll", "darwin": "dylib"}.get(system, "so")
    return f"neonize-{system}-{arch}.{ext}"


def check_native_library() -> Path:
    """Make sure importing neonize will load the bundled library and download nothing.

    Raises :class:`DriverError` (with what to do) when the library is missing or its version
    differs from the Python package's, the two cases in which neonize downloads at import.
    """
    spec = importlib.util.find_spec("neonize")
    if spec is None or not spec.submodule_search_locations:
        raise DriverError("the neonize package is not installed (add it to session-runner's dependencies)")
    root = Path(next(iter(spec.submodule_search_locations)))
    lib = root / _native_library_name()
    if not lib.is_file():
        raise DriverError(
            f"neonize's native library {lib.name} is not bundled for this platform; neonize would "
            "download it from GitHub at import, which zapstream refuses. Install a neonize wheel "
            "built for this platform."
        )
    match = re.search(r'__GONEONIZE_VERSION__\s*=\s*"([^"]+)"', (root / "download.py").read_text())
    expected = match.group(1) if match else None
    if expected is not None:
        native = ctypes.CDLL(str(lib))
        native.GetVersion.restype = ctypes.c_char_p
        found = native.GetVersion().decode()
        if found != expected:
            raise DriverError(
                f"neonize's native library is version {found}, the package expects {expected}; "
                "neonize would re-download it at import. Reinstall neonize."
            )
    return lib


def import_neonize() -> None:
    """Import neonize the safe way: bot badge off, no download. Idempotent."""
    import sys

    if "neonize._binder" not in sys.modules:
        os.environ["NEONIZE_BOT_TAG"] = "off"  # read by Go when the library loads
        check_native_library()
    elif os.environ.get("NEONIZE_BOT_TAG", "").strip().lower() not in ("off", "none", "false", "0"):
        log.warning("neonize was imported before NEONIZE_BOT_TAG=off was set: messages carry the bot badge")
    import io

    # neonize's platform probe runs ``os.popen("uname -a").read()`` at import and never closes
    # the pipe (a ResourceWarning, an error under ``-W error``): read it through a closed pipe.
    real_popen = os.popen

    def closed_popen(cmd: str, mode: str = "r", buffering: int = -1) -> Any:
        with real_popen(cmd, mode, buffering) as pipe:
            return io.StringIO(pipe.read())

    os.popen = closed_popen
    try:
        import neonize.aioze.client  # noqa: F401
    finally:
        os.popen = real_popen


# ---------------------------------------------------------------------------------- media


@dataclass(frozen=True, slots=True)
class MediaPreview:
    """What the worker learns from the file itself, to fill what :class:`OutgoingMedia` leaves out."""

    thumbnail: bytes | None = None  # JPEG shown before the media is downloaded
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    animated: bool = False


def build_media_message(
    media: OutgoingMedia,
    upload: Any,
    *,
    context: Any = None,
    preview: MediaPreview | None = None,
    now: int | None = None,
) -> Any:
    """The ``waE2E.Message`` for ``media`` once uploaded (``upload``: neonize's ``UploadResponse``).

    ``context`` is the ``ContextInfo`` of a reply/forward; values given in ``media`` win over
    the ``preview``. A caption on audio or a sticker is dropped: WhatsApp has no field for it.
    """
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
        AudioMessage,
        DocumentMessage,
        ImageMessage,
        Message,
        StickerMessage,
        VideoMessage,
    )

    preview = preview or MediaPreview()
    common: dict[str, Any] = {
        "URL": upload.url,
        "directPath": upload.DirectPath,
        "mediaKey": upload.MediaKey,
        "fileEncSHA256": upload.FileEncSHA256,
        "fileSHA256": upload.FileSHA256,
        "fileLength": upload.FileLength,
        "mediaKeyTimestamp": int(time.time()) if now is None else now,
        "mimetype": media.mime,
    }
    if context is not None:
        common["contextInfo"] = context
    width = media.width or preview.width
    height = media.height or preview.height
    duration = media.duration or preview.duration
    sized = {"width": width, "height": height}
    if media.kind == "image":
        return Message(
            imageMessage=ImageMessage(
                **common, **sized, caption=media.caption, JPEGThumbnail=preview.thumbnail
            )
        )
    if media.kind == "video":
        return Message(
            videoMessage=VideoMessage(
                **common, **sized, seconds=duration, caption=media.caption, JPEGThumbnail=preview.thumbnail
            )
        )
    if media.kind == "audio":
        if media.ptt and media.mime.split(";", 1)[0].strip() == "audio/ogg":
            common["mimetype"] = _VOICE_NOTE_MIME
        return Message(audioMessage=AudioMessage(**common, seconds=duration, PTT=media.ptt))
    if media.kind == "sticker":
        return Message(stickerMessage=StickerMessage(**common, **sized, isAnimated=preview.animated))
    if media.kind == "document":
        name = media.file_name or Path(media.path).name
        return Message(
            documentMessage=DocumentMessage(**common, fileName=name, title=name, caption=media.caption)
        )
    raise DriverError(f"unknown media kind {media.kind!r}")


def _image_preview(path: str, thumbnail: bool) -> MediaPreview:
    from PIL import Image

    with Image.open(path) as img:
        width, height = img.size
        animated = int(getattr(img, "n_frames", 1)) > 1
        jpeg = None
        if thumbnail:
            small = img.convert("RGB")
            small.thumbnail((_THUMBNAIL_PX, _THUMBNAIL_PX))
            out = io.BytesIO()
            small.save(out, format="JPEG", quality=70)
            jpeg = out.getvalue()
    return MediaPreview(thumbnail=jpeg, width=width, height=height, animated=animated)


async def _av_preview(path: str, thumbnail: bool) -> MediaPreview:
    from neonize.utils.ffmpeg import AFFmpeg

    async with AFFmpeg(path) as ffmpeg:
        info = await ffmpeg.extract_info()
        video = next((s for s in info.streams if s.codec_type == "video"), None)
        jpeg = await ffmpeg.extract_thumbnail() if thumbnail and video is not None else None
    width = height = None
    if video is not None:
        width, height = int(video.width or 0) or None, int(video.height or 0) or None
    return MediaPreview(
        thumbnail=jpeg or None,
        width=width,
        height=height,
        duration=round(float(info.format.duration or 0)) or None,
    )


@functools.cache
def _has_ffmpeg() -> bool:
    return bool(shutil.which("ffmpeg") and shutil.which("ffprobe"))


async def media_preview(media: OutgoingMedia) -> MediaPreview:
    """Thumbnail and missing dimensions/duration, read from the file; best effort.

    Images and stickers use Pillow; video and audio need ffmpeg on ``PATH`` and are skipped
    without it. A failure only costs the preview: the media is still sent.
    """
    try:
        if media.kind in ("image", "sticker"):
            return await asyncio.to_thread(_image_preview, media.path, media.kind == "image")
        wants_probe = media.kind == "video" or (media.kind == "audio" and not media.duration)
        if wants_probe and _has_ffmpeg():
            async with asyncio.timeout(_PREVIEW_TIMEOUT):
                return await _av_preview(media.path, thumbnail=media.kind == "video")
    except Exception as exc:
        log.warning("no preview for %s %s: %s: %s", media.kind, media.path, type(exc).__name__, exc)
    return MediaPreview()


def _write_file(path: str, data: bytes) -> None:
    # Through a temporary name, so a reader never sees half a file under ``path``.
    part = f"{path}.part-{os.getpid()}-{threading.get_ident()}"
    try:
        with open(part, "wb") as out:
            out.write(data)
        os.replace(part, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(part)
        raise


# ------------------------------------------------------------------------------ sessions


@dataclass
class _Session:
    session_id: str
    client: Any
    state: str = "connecting"  # connecting → pairing | online ⇄ offline → ended
    opened: asyncio.Future[str] | None = None
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    pump: asyncio.Task[None] | None = None
    closing: bool = False
    me: Any = None  # neonize Device once logged in
    qr_index: int = 0
    messages: collections.OrderedDict[str, Any] = field(default_factory=collections.OrderedDict)
    push_names: nm.PushNameTracker = field(default_factory=nm.PushNameTracker)
    contacts_sent: bool = False
    # call id → the caller's JID exactly as the offer named it (whatsmeow rejects with that one)
    calls: collections.OrderedDict[str, Any] = field(default_factory=collections.OrderedDict)

    def remember(self, message_id: str, sender: Any, chat: Any, message: Any) -> None:
        self.messages[message_id] = (sender, chat, message)
        self.messages.move_to_end(message_id)
        while len(self.messages) > _QUOTE_CACHE:
            self.messages.popitem(last=False)


class SessionHost:
    """The neonize clients of one worker process, behind plain async calls.

    ``emit`` is called on the event loop with ``(session_id, event)`` in order per session;
    events carry ``seq=0`` (the driver numbers them).
    """

    def __init__(
        self,
        emit: Emit,
        *,
        connect_timeout: float = 20.0,
        request_timeout: float = 30.0,
        proxy: str | None = None,
    ) -> None:
        import_neonize()
        self._emit = emit
        self._proxy = proxy
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._sessions: dict[str, _Session] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def _background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ lifecycle

    async def connect(self, session_id: str, store: str, jid: str | None, new_device: bool) -> str:
        """Start the client; returns ``"pairing"`` (QR codes follow) or ``"online"``."""
        from neonize.aioze import events as nev
        from neonize.aioze.client import NewAClient
        from neonize.proto.Neonize_pb2 import JID

        if session_id in self._sessions:
            await self._stop(self._sessions.pop(session_id))
        loop = asyncio.get_running_loop()
        host = self

        class _Client(NewAClient):  # type: ignore[misc]
            def _NewAClient__onLoginStatus(self, uuid: int, status: int) -> None:
                loop.call_soon_threadsafe(host._login_status, session_id, ctypes.string_at(status).decode())

        client = _Client(
            store,
            jid=JID(**nm.parse_jid(jid)) if jid else None,
            uuid=session_id,
            new_device=new_device,
        )
        session = _Session(session_id, client, opened=loop.create_future())
        self._sessions[session_id] = session
        session.pump = asyncio.create_task(self._pump(session), name=f"neonize-pump-{session_id}")

        def on(kind: Any, fn: Callable[[_Session, Any], Any]) -> None:
            async def handler(_: Any, ev: Any) -> None:
                session.queue.put_nowait((fn, ev))  # synchronous: keeps Go's order

            client.event(kind)(handler)

        # Every handler is registered before connect(): neonize subscribes Go to these only.
        on(nev.ConnectedEv, self._on_connected)
        on(nev.MessageEv, self._on_message)
        on(nev.ReceiptEv, lambda s, ev: nm.map_receipt(ev, 0))
        on(nev.ChatPresenceEv, lambda s, ev: nm.map_chat_presence(ev, 0))
        on(nev.PresenceEv, lambda s, ev: nm.map_presence(ev, 0))
        on(nev.CallOfferEv, self._on_call)
        on(nev.GroupInfoEv, lambda s, ev: nm.map_group_info_event(ev, 0))
        on(nev.HistorySyncEv, self._on_history)
        on(nev.LoggedOutEv, self._on_logged_out)
        on(nev.StreamReplacedEv, self._on_replaced)
        on(nev.DisconnectedEv, self._on_disconnected)
        on(nev.ConnectFailureEv, self._on_failure(nm.map_connect_failure))
        on(nev.TemporaryBanEv, self._on_failure(nm.map_temporary_ban))
        on(nev.ClientOutdatedEv, self._on_failure(nm.map_client_outdated))
        on(nev.StreamErrorEv, self._on_failure(nm.map_stream_error))
        on(nev.OfflineSyncCompletedEv, self._on_offline_sync)

        async def on_qr(_: Any, code: bytes) -> None:
            session.queue.put_nowait((self._on_qr, code.decode()))

        client.event.qr(on_qr)

        proxy = None
        if self._proxy:
            from neonize._binder import ProxySettings

            proxy = ProxySettings(proxy_address=self._proxy)
        try:
            task = await client.connect(proxy)
        except Exception as exc:
            await self._drop(session)
            raise DriverError(f"session {session_id!r}: cannot start neonize: {exc}") from exc
        assert session.opened is not None
        done, _ = await asyncio.wait(
            {task, session.opened}, timeout=self._connect_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if session.opened in done:
            return session.opened.result()
        if task in done:
            failure = task.exception()
            await self._drop(session)
            raise DriverError(
                f"session {session_id!r}: cannot connect to WhatsApp: {failure or 'connection ended'}"
            )
        # A dial that hangs also blocks whatsmeow's Disconnect(): stop it in the background and
        # answer now, so connect() stays bounded by connect_timeout.
        self._background(self._drop(session))
        raise DriverError(
            f"session {session_id!r}: no answer from WhatsApp within {self._connect_timeout}s "
            "(network down or WhatsApp unreachable)"
        )

    async def disconnect(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            await self._stop(session)

    async def logout(self, session_id: str) -> None:
        session = self._online(session_id)
        session.closing = True
        try:
            await self._guarded(session, session.client.logout(), "logout")
        except BaseException:
            session.closing = False
            raise
        session.state = "ended"
        self._emit(session_id, LoggedOut(seq=0, reason="logged out by this device"))
        self._sessions.pop(session_id, None)
        await self._stop(session)

    async def aclose(self) -> None:
        await asyncio.gather(*(self.disconnect(sid) for sid in list(self._sessions)), return_exceptions=True)

    # --------------------------------------------------------------------- calls

    async def pair_code(self, session_id: str, phone: str) -> str:
        session = self._sessions.get(session_id)
        if session is None or session.state != "pairing":
            raise DriverError(f"session {session_id!r} is not waiting to be paired (no QR shown)")
        digits = re.sub(r"\D", "", phone)
        code = await self._guarded(session, session.client.PairPhone(digits, True), "pair_code")
        return str(code)

    async def send_text(
        self, session_id: str, to_jid: str, text: str, reply_to_id: str | None, forwarded: bool,
        mentions: tuple[str, ...] = (),
    ) -> SendResult:
        from neonize.proto.Neonize_pb2 import JID
        from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ExtendedTextMessage, Message

        session = self._online(session_id)
        to = JID(**nm.parse_jid(to_jid))
        ctx = self._context(session, to, reply_to_id, forwarded)
        if mentions:
            ctx = nm.with_mentions(ctx, mentions)
        if ctx is None:
            message = Message(conversation=text)
        else:
            message = Message(extendedTextMessage=ExtendedTextMessage(text=text, contextInfo=ctx))
        return await self._send(session, to, message)

    async def send_rich(self, session_id: str, to_jid: str, content: Rich, reply_to_id: str | None) -> SendResult:
        """A location or contact card from :func:`neonize_mapping.rich_message`; a poll from neonize's own
        builder (whatsmeow adds the secret voters encrypt their votes with)."""
        from neonize.proto.Neonize_pb2 import JID
        from neonize.utils.enum import VoteType

        session = self._online(session_id)
        to = JID(**nm.parse_jid(to_jid))
        ctx = self._context(session, to, reply_to_id, False)
        if isinstance(content, Poll):
            vote = VoteType.SINGLE if content.selectable_count == 1 else VoteType.MULTIPLE
            message = await self._guarded(
                session, session.client.build_poll_vote_creation(content.name, list(content.options), vote),
                "build_poll")
            if ctx is not None:
                message.pollCreationMessage.contextInfo.CopyFrom(ctx)
        else:
            message = nm.rich_message(content, ctx)
        return await self._send(session, to, message)

    async def create_group(self, session_id: str, subject: str, participants: list[str]) -> GroupInfo:
        from neonize.proto.Neonize_pb2 import JID

        session = self._online(session_id)
        members = [JID(**nm.parse_jid(x)) for x in participants]
        info = await self._guarded(session, session.client.create_group(subject, members), "create_group",
                                   unknown=True)
        return nm.map_group_info(info)

    async def update_group_participants(self, session_id: str, group_jid: str, action: str,
                                        participants: list[str]) -> list[str]:
        from neonize.proto.Neonize_pb2 import JID
        from neonize.utils.enum import ParticipantChange

        session = self._online(session_id)
        change = {"add": ParticipantChange.ADD, "remove": ParticipantChange.REMOVE,
                  "promote": ParticipantChange.PROMOTE, "demote": ParticipantChange.DEMOTE}[action]
        results = await self._guarded(session, session.client.update_group_participants(
            JID(**nm.parse_jid(group_jid)), [JID(**nm.parse_jid(x)) for x in participants], change),
            "update_group_participants", unknown=True)
        return nm.changed_participants(results)

    async def leave_group(self, session_id: str, group_jid: str) -> None:
        from neonize.proto.Neonize_pb2 import JID

        session = self._online(session_id)
        await self._guarded(session, session.client.leave_group(JID(**nm.parse_jid(group_jid))), "leave_group",
                            unknown=True)

    async def group_invite_link(self, session_id: str, group_jid: str, reset: bool) -> str:
        from neonize.proto.Neonize_pb2 import JID

        session = self._online(session_id)
        link = await self._guarded(session, session.client.get_group_invite_link(
            JID(**nm.parse_jid(group_jid)), reset), "group_invite_link", unknown=reset)
        return str(link)

    async def joined_groups(self, session_id: str) -> list[GroupInfo]:
        session = self._online(session_id)
        groups = await self._guarded(session, session.client.get_joined_groups(), "joined_groups")
        return [nm.map_group_info(g) for g in groups]

    async def send_media(
        self,
        session_id: str,
        to_jid: str,
        media: OutgoingMedia,
        reply_to_id: str | None,
        forwarded: bool,
    ) -> SendResult:
        """Read ``media.path``, upload it, send it as one message (quoted/forwarded like a text)."""
        from neonize.proto.Neonize_pb2 import JID
        from neonize.utils.enum import MediaType

        session = self._online(session_id)
        if media.kind not in _UPLOAD_TYPE:
            raise DriverError(f"session {session_id!r}: unknown media kind {media.kind!r}")
        to = JID(**nm.parse_jid(to_jid))
        try:
            data = await asyncio.to_thread(Path(media.path).read_bytes)
        except OSError as exc:
            raise DriverError(
                f"session {session_id!r}: cannot read media file {media.path!r}: {exc}"
            ) from exc
        if not data:
            raise DriverError(f"session {session_id!r}: media file {media.path!r} is empty")
        preview = await media_preview(media)
        # The awaits above let a disconnect() in: a native call for a stopped client panics Go.
        session = self._still_online(session)
        upload = await self._guarded(
            session,
            session.client.upload(data, MediaType[_UPLOAD_TYPE[media.kind]]),
            "media upload",
            limit=self._media_timeout(len(data)),
        )
        del data  # up to 100 MB: not kept alive during the send
        session = self._still_online(session)  # the upload took a while too
        message = build_media_message(
            media, upload, context=self._context(session, to, reply_to_id, forwarded), preview=preview
        )
        return await self._send(session, to, message)

    async def edit_message(self, session_id: str, chat_jid: str, message_id: str, text: str) -> int:
        from neonize.proto.Neonize_pb2 import JID
        from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

        session = self._online(session_id)
        chat = JID(**nm.parse_jid(chat_jid))
        resp = await self._guarded(
            session,
            session.client.edit_message(chat, message_id, Message(conversation=text)),
            "edit",
            unknown=True,
        )
        return nm.to_seconds(resp.Timestamp) or int(time.time())

    async def revoke_message(self, session_id: str, chat_jid: str, message_id: str) -> int:
        from neonize.proto.Neonize_pb2 import JID

        session = self._online(session_id)
        chat = JID(**nm.parse_jid(chat_jid))
        known = session.messages.get(message_id)
        sender = known[0] if known is not None else session.me.JID  # unknown: assume it is ours
        resp = await self._guarded(
            session, session.client.revoke_message(chat, sender, message_id), "revoke", unknown=True
        )
        return nm.to_seconds(resp.Timestamp) or int(time.time())

    def _on_call(self, session: _Session, ev: Any) -> IncomingCall:
        session.calls[ev.basicCallMeta.callID] = getattr(ev.basicCallMeta, "from")
        while len(session.calls) > _QUOTE_CACHE:
            session.calls.popitem(last=False)
        return nm.map_call_offer(ev, 0)

    async def profile_photo(self, session_id: str, jid: str) -> bytes | None:
        """WhatsApp answers a CDN URL (or nothing, for no photo or a hidden one); the bytes are fetched here."""
        import httpx
        from neonize.proto.Neonize_pb2 import JID

        session = self._online(session_id)
        try:
            info = await self._guarded(session, session.client.get_profile_picture(JID(**nm.parse_jid(jid))),
                                       "profile_photo")
        except DriverError as exc:
            if "not-authorized" in str(exc) or "item-not-found" in str(exc):
                return None  # hidden by the contact's privacy settings, or no photo
            raise
        url = nm.profile_photo_url(info)
        if url is None:
            return None
        try:
            async with httpx.AsyncClient(timeout=self._request_timeout) as http:
                r = await http.get(url)
                r.raise_for_status()
                return r.content
        except httpx.HTTPError as exc:
            raise DriverError(f"session {session_id!r}: cannot download the profile photo: {exc}") from exc

    async def reject_call(self, session_id: str, caller_jid: str, call_id: str) -> None:
        from neonize.proto.Neonize_pb2 import JID

        session = self._online(session_id)
        caller = session.calls.get(call_id) or JID(**nm.parse_jid(caller_jid))
        await self._guarded(session, session.client.reject_call(caller, call_id), "reject_call")

    async def react(self, session_id: str, chat_jid: str, message_id: str, emoji: str) -> int:
        from neonize.proto.Neonize_pb2 import JID

        session = self._online(session_id)
        chat = JID(**nm.parse_jid(chat_jid))
        known = session.messages.get(message_id)
        sender = known[0] if known is not None else chat  # unknown: assume the contact wrote it
        message = await self._guarded(
            session, session.client.build_reaction(chat, sender, message_id, emoji), "react"
        )
        resp = await self._guarded(session, session.client.send_message(chat, message), "react", unknown=True)
        return nm.to_seconds(resp.Timestamp) or int(time.time())

    async def subscribe_presence(self, session_id: str, jid: str) -> None:
        from neonize.proto.Neonize_pb2 import JID

        session = self._online(session_id)
        await self._guarded(session, session.client.subscribe_presence(JID(**nm.parse_jid(jid))), "subscribe")

    async def send_chat_presence(self, session_id: str, chat_jid: str, presence: Presence) -> None:
        from neonize.proto.Neonize_pb2 import JID
        from neonize.utils.enum import ChatPresence, ChatPresenceMedia
        from neonize.utils.enum import Presence as GlobalPresence

        session = self._online(session_id)
        client = session.client
        if presence in ("available", "unavailable"):
            value = GlobalPresence.AVAILABLE if presence == "available" else GlobalPresence.UNAVAILABLE
            await self._guarded(session, client.send_presence(value), "presence")
            return
        state = (
            ChatPresence.CHAT_PRESENCE_PAUSED
            if presence == "paused"
            else ChatPresence.CHAT_PRESENCE_COMPOSING
        )
        media = (
            ChatPresenceMedia.CHAT_PRESENCE_MEDIA_AUDIO
            if presence == "recording"
            else ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT
        )
        chat = JID(**nm.parse_jid(chat_jid))
        await self._guarded(session, client.send_chat_presence(chat, state, media), "chat presence")

    async def mark_read(self, session_id: str, chat_jid: str, message_ids: list[str]) -> None:
        from neonize.proto.Neonize_pb2 import JID
        from neonize.utils.enum import ReceiptType

        session = self._online(session_id)
        if not message_ids:
            return
        chat = JID(**nm.parse_jid(chat_jid))
        # whatsmeow wants the author of the messages (it matters in groups): group them by sender.
        by_sender: dict[str, tuple[Any, list[str]]] = {}
        for mid in message_ids:
            known = session.messages.get(mid)
            sender = known[0] if known is not None else chat
            by_sender.setdefault(nm.full_jid_str(sender), (sender, []))[1].append(mid)
        for sender, ids in by_sender.values():
            await self._guarded(
                session,
                session.client.mark_read(*ids, chat=chat, sender=sender, receipt=ReceiptType.READ),
                "mark_read",
            )

    async def download_media(self, session_id: str, handle: str, dest_path: str) -> int:
        """Fetch and decrypt the media of ``handle`` (an ``IncomingMedia.handle``) into ``dest_path``."""
        from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

        session = self._online(session_id)
        try:
            message = Message.FromString(nm.media_handle_bytes(handle))
        except Exception as exc:
            raise DriverError(f"session {session_id!r}: cannot download: {exc}") from None
        described = nm.message_media(message)
        if described is None:
            raise DriverError(f"session {session_id!r}: cannot download: the handle holds no media")
        data = await self._guarded(
            session,
            session.client.download_any(message),
            "media download",
            limit=self._media_timeout(described.size or 0),
        )
        try:
            await asyncio.to_thread(_write_file, dest_path, bytes(data))
        except OSError as exc:
            raise DriverError(f"session {session_id!r}: cannot write {dest_path!r}: {exc}") from exc
        return len(data)

    # ----------------------------------------------------------------- internals

    def _online(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None or session.closing or session.state == "ended":
            raise DriverError(f"session {session_id!r} is not connected; call connect() first")
        if session.state != "online" or session.me is None:
            raise DriverError(f"session {session_id!r} is not logged in (state: {session.state})")
        return session

    def _still_online(self, session: _Session) -> _Session:
        """:meth:`_online` again after an await, and still the same client."""
        current = self._online(session.session_id)
        if current is not session:
            raise DriverError(f"session {session.session_id!r} reconnected during the call; retry")
        return current

    def _media_timeout(self, size: int) -> float:
        return self._request_timeout + size / _MEDIA_MIN_BYTES_PER_S

    def _context(self, session: _Session, to: Any, reply_to_id: str | None, forwarded: bool) -> Any:
        """The ``ContextInfo`` quoting ``reply_to_id`` and/or marking a forward; ``None`` for neither."""
        from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ContextInfo

        if reply_to_id is None and not forwarded:
            return None
        ctx = ContextInfo()
        if reply_to_id is not None:
            ctx.stanzaID = reply_to_id
            known = session.messages.get(reply_to_id)
            if known is not None:
                sender, _chat, quoted = known
                ctx.participant = nm.jid_str(sender)
                if quoted is not None:
                    ctx.quotedMessage.CopyFrom(quoted)
            elif to.Server == "s.whatsapp.net":
                ctx.participant = nm.jid_str(to)  # best guess in a 1:1 chat: the contact wrote it
        if forwarded:
            ctx.isForwarded = True
            ctx.forwardingScore = 1
        return ctx

    async def _send(self, session: _Session, to: Any, message: Any) -> SendResult:
        resp = await self._guarded(session, session.client.send_message(to, message), "send", unknown=True)
        session.remember(resp.ID, session.me.JID if session.me else to, to, message)
        return SendResult(message_id=resp.ID, timestamp=nm.to_seconds(resp.Timestamp) or int(time.time()))

    async def _guarded(
        self, session: _Session, call: Any, what: str, *, unknown: bool = False, limit: float | None = None
    ) -> Any:
        """Await a neonize call within ``limit`` seconds (``request_timeout``), errors as DriverError."""
        timeout = self._request_timeout if limit is None else limit
        try:
            async with asyncio.timeout(timeout):
                return await call
        except TimeoutError:
            exc_type = OutcomeUnknown if unknown else DriverError
            raise exc_type(
                f"session {session.session_id!r}: no answer to {what} within {timeout:g}s"
            ) from None
        except DriverError:
            raise
        except Exception as exc:
            text = str(exc)
            timed_out = any(s in text.lower() for s in ("timed out", "deadline", "timeout"))
            exc_type = OutcomeUnknown if unknown and timed_out else DriverError
            raise exc_type(
                f"session {session.session_id!r}: {what} failed: {type(exc).__name__}: {text}"
            ) from exc

    async def _stop(self, session: _Session) -> None:
        session.closing = True
        session.state = "ended"
        try:
            await asyncio.wait_for(session.client.stop(), 5)  # Stop() is safe for unknown clients
        except Exception:
            log.warning("session %s: stopping the neonize client failed or hung", session.session_id)
        if session.pump is not None:
            session.queue.put_nowait(None)
            try:
                await asyncio.wait_for(asyncio.shield(session.pump), 2)
            except (TimeoutError, asyncio.CancelledError):
                session.pump.cancel()
        connect_task = getattr(session.client, "connect_task", None)
        if connect_task is not None and not connect_task.done():
            try:
                await asyncio.wait_for(asyncio.shield(connect_task), 2)
            except BaseException:
                pass

    async def _drop(self, session: _Session) -> None:
        if self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]
        await self._stop(session)

    def _open(self, session: _Session, state: str) -> None:
        session.state = state
        if session.opened is not None and not session.opened.done():
            session.opened.set_result(state)

    def _login_status(self, session_id: str, status: str) -> None:
        session = self._sessions.get(session_id)
        if session is None or session.closing:
            return
        if status in (
            "timeout",
            "err-unexpected-state",
            "err-client-outdated",
            "err-scanned-without-multidevice",
        ):
            session.queue.put_nowait((self._on_pairing_ended, status))

    async def _pump(self, session: _Session) -> None:
        while True:
            item = await session.queue.get()
            if item is None:
                return
            fn, arg = item
            try:
                result = fn(session, arg)
                if asyncio.iscoroutine(result):
                    result = await result
            except Exception:
                log.exception("session %s: mapping a neonize event failed", session.session_id)
                continue
            if session.closing and not isinstance(result, LoggedOut):
                continue
            for event in result if isinstance(result, list) else (result,):
                if event is not None:
                    self._emit(session.session_id, event)

    # ------------------------------------------------------------ event handlers

    def _on_qr(self, session: _Session, code: str) -> DriverEvent:
        event = nm.map_qr(code, 0, session.qr_index, int(time.time() * 1000))
        session.qr_index += 1
        self._open(session, "pairing")
        return event

    def _on_pairing_ended(self, session: _Session, status: str) -> DriverEvent | None:
        if session.state != "pairing":
            return None
        session.state = "ended"
        reason = "QR codes expired without a scan" if status == "timeout" else f"pairing failed: {status}"
        return Disconnected(seq=0, reason=f"pairing ended: {reason}; connect again for new codes")

    async def _on_connected(self, session: _Session, ev: Any) -> list[DriverEvent]:
        session.me = await session.client.get_me()
        session.qr_index = 0
        first = session.state in ("connecting", "pairing")
        self._open(session, "online")
        out: list[Any] = [nm.map_connected(session.me, 0)]
        if first:
            self._emit(session.session_id, ("device", nm.full_jid_str(session.me.JID)))
        return out

    async def _on_message(self, session: _Session, ev: Any) -> list[DriverEvent]:
        src = ev.Info.MessageSource
        session.remember(ev.Info.ID, src.Sender, src.Chat, ev.Message)
        out: list[DriverEvent] = []
        if nm.poll_update(ev) is not None:
            try:  # whatsmeow decrypts with the poll's secret; a vote it cannot read is skipped
                out.append(nm.map_poll_vote(ev, await session.client.decrypt_poll_vote(ev), 0))
            except Exception as exc:
                log.warning("session %s: cannot decrypt a poll vote: %s", session.session_id, exc)
        mapped = nm.map_message(ev, 0)
        if mapped is not None:
            out.append(mapped)
        if not src.IsFromMe:
            update = session.push_names.seen(nm.jid_str(src.Sender), ev.Info.Pushname or None, 0)
            if update is not None:
                out.append(update)
        return out

    def _on_history(self, session: _Session, ev: Any) -> DriverEvent:
        own = nm.jid_str(session.me.JID) if session.me is not None else None
        return nm.map_history_sync(ev, 0, own)

    def _on_logged_out(self, session: _Session, ev: Any) -> DriverEvent:
        session.state = "ended"
        return nm.map_logged_out(ev, 0)

    def _on_replaced(self, session: _Session, ev: Any) -> DriverEvent:
        session.state = "ended"  # whatsmeow does not reconnect after a stream replacement
        return nm.map_stream_replaced(ev)

    def _on_disconnected(self, session: _Session, ev: Any) -> DriverEvent | None:
        if session.state != "online":
            return None
        session.state = "offline"  # whatsmeow auto-reconnects; Connected follows
        return nm.map_disconnected(ev)

    def _on_failure(self, mapper: Callable[[Any], Disconnected]) -> Callable[[_Session, Any], DriverEvent]:
        def handle(session: _Session, ev: Any) -> DriverEvent:
            if session.state == "online":
                session.state = "offline"
            return mapper(ev)

        return handle

    async def _on_offline_sync(self, session: _Session, ev: Any) -> ContactsUpdate | None:
        if session.contacts_sent or session.state != "online":
            return None
        session.contacts_sent = True
        try:
            contacts = await session.client.contact.get_all_contacts()
        except Exception:
            log.warning("session %s: reading the contact store failed", session.session_id, exc_info=True)
            return None
        return nm.map_contacts(contacts, 0)


# ---------------------------------------------------------------------- worker process


_CALLS = frozenset(
    {
        "connect",
        "disconnect",
        "logout",
        "pair_code",
        "send_text",
        "send_rich",
        "send_media",
        "create_group",
        "update_group_participants",
        "leave_group",
        "group_invite_link",
        "joined_groups",
        "reject_call",
        "profile_photo",
        "edit_message",
        "revoke_message",
        "react",
        "subscribe_presence",
        "send_chat_presence",
        "mark_read",
        "download_media",
    }
)


def make_host(emit: Emit, options: dict[str, Any]) -> Any:
    """The SessionHost, or the ``options["host_factory"]`` (``"module:Name"``) used by tests."""
    factory: Any = SessionHost
    if options.get("host_factory"):
        module, _, name = str(options["host_factory"]).partition(":")
        factory = getattr(importlib.import_module(module), name)
    return factory(
        emit,
        connect_timeout=float(options.get("connect_timeout", 20.0)),
        request_timeout=float(options.get("request_timeout", 30.0)),
        proxy=options.get("proxy"),
    )


def worker_main(conn: Any, options: dict[str, Any]) -> None:
    """Entry point of a worker process (``multiprocessing`` *spawn* context).

    Protocol over ``conn`` (pickled tuples):

    * driver → worker: ``("call", rid, method, kwargs)`` and ``("exit",)``;
    * worker → driver: ``("ready",)``, ``("result", rid, ok, value_or_error)``,
      ``("event", session_id, event)``, ``("device", session_id, jid)``.

    ``value_or_error`` is ``(kind, message)`` on failure, kind ``"unknown"`` for
    :class:`OutcomeUnknown`, else ``"error"``.
    """
    os.environ["NEONIZE_BOT_TAG"] = "off"  # before the native library loads, so Go sees it
    logging.basicConfig(level=options.get("log_level", "WARNING"), format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(_serve(conn, options))
    finally:
        try:
            conn.close()
        finally:
            os._exit(0)  # lingering blocking FFI threads must not keep the process alive


async def _serve(conn: Any, options: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    per_worker = int(options.get("sessions_per_worker", 4))
    # One thread per connected client for its lifetime, plus headroom for concurrent calls.
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=per_worker * 2 + 16))
    send_lock = threading.Lock()

    def send(msg: tuple[Any, ...]) -> None:
        with send_lock:
            conn.send(msg)

    def emit(session_id: str, item: Any) -> None:
        if isinstance(item, tuple) and item[0] == "device":
            send(("device", session_id, item[1]))
        else:
            send(("event", session_id, item))

    try:
        host = make_host(emit, options)
    except Exception as exc:
        send(("fatal", f"{type(exc).__name__}: {exc}"))
        return
    send(("ready",))
    inbox: asyncio.Queue[Any] = asyncio.Queue()

    def reader() -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                msg = ("exit",)
            loop.call_soon_threadsafe(inbox.put_nowait, msg)
            if msg[0] == "exit":
                return

    threading.Thread(target=reader, name="neonize-worker-reader", daemon=True).start()
    tasks: set[asyncio.Task[None]] = set()

    async def run(rid: int, method: str, kwargs: dict[str, Any]) -> None:
        try:
            if method not in _CALLS:
                raise DriverError(f"unknown call {method!r}")
            value = await getattr(host, method)(**kwargs)
            send(("result", rid, True, value))
        except OutcomeUnknown as exc:
            send(("result", rid, False, ("unknown", str(exc))))
        except DriverError as exc:
            send(("result", rid, False, ("error", str(exc))))
        except Exception as exc:
            log.error("call %s failed: %s", method, traceback.format_exc())
            send(("result", rid, False, ("error", f"{method} failed: {type(exc).__name__}: {exc}")))

    while True:
        msg = await inbox.get()
        if msg[0] == "exit":
            break
        if msg[0] == "call":
            _, rid, method, kwargs = msg
            task = asyncio.create_task(run(rid, method, kwargs))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    try:
        await asyncio.wait_for(host.aclose(), 8)
    except Exception:
        log.warning("closing the neonize clients failed", exc_info=True)
    # Leave now: asyncio.run() would join the executor, where a hung dial may block forever.
    logging.shutdown()
    conn.close()
    os._exit(0)
