"""Media on the runner's side: files moving between object storage, ffmpeg and the WhatsApp driver.

Sending: the upload named by a send intent is fetched from storage into a scratch
directory, turned into a voice note by ffmpeg when ``ptt`` asks for one and it is
not Opus/OGG already, stored under the message's key (what was actually sent),
and handed to the driver as a local file.

Receiving: the driver fetches the bytes of an incoming message's media into a
scratch file; their real type is sniffed, missing dimensions/durations are probed,
and the file goes to storage under the message's key.

Scratch directories are removed whatever happens. Failures surface as
:class:`MediaFailed` with a code and a reason a client can act on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import zapstream_platform.mediaproc as mediaproc
from session_runner.drivers import port as d
from zapstream_contracts import payloads as p
from zapstream_platform.storage import (
    SNIFF_BYTES,
    MediaStore,
    StorageError,
    file_name_for,
    inert_type,
    message_key,
    normalize_mime,
    refine,
    sniff_mime,
)

log = logging.getLogger(__name__)

VOICE_MIME = "audio/ogg; codecs=opus"  # what WhatsApp's own clients declare for voice notes
_PROBED_KINDS = frozenset({"image", "video", "audio", "sticker"})


class MediaFailed(Exception):
    """A media step failed; ``code`` goes into ``session.command.failed``."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True, slots=True)
class Prepared:
    """A file ready for the driver, and where its bytes are kept for readers."""

    outgoing: d.OutgoingMedia
    key: str
    source_key: str | None = None  # unchanged upload: a server-side copy is enough


class MediaPipeline:
    """Moves media between storage and the driver; one per runner process."""

    def __init__(self, store: MediaStore, scratch_root: str | None = None) -> None:
        self.store = store
        self.scratch_root = scratch_root

    @asynccontextmanager
    async def scratch(self) -> AsyncIterator[str]:
        path = await asyncio.to_thread(tempfile.mkdtemp, prefix="zs-media-", dir=self.scratch_root)
        try:
            yield path
        finally:
            await asyncio.to_thread(shutil.rmtree, path, True)

    @asynccontextmanager
    async def outgoing(self, tenant_id: str, session_id: str, intent: p.SendRequested) -> AsyncIterator[Prepared]:
        """Yield the intent's media as a local file in its final form; cleaned up on exit."""
        media = intent.media
        assert media is not None
        async with self.scratch() as tmp:
            src = os.path.join(tmp, "source")
            try:
                await self.store.download_file(media.key, src)
            except StorageError as exc:
                raise MediaFailed("media_unavailable", f"cannot read the media from storage: {exc}") from exc
            path, mime, duration = src, media.mime, media.duration
            name_hint = media.file_name
            if media.ptt:
                path, duration = await self._voice_note(src, os.path.join(tmp, "voice.ogg"))
                if path != src:
                    stem = (name_hint or intent.message_id).rsplit(".", 1)[0]
                    name_hint = f"{stem}.ogg"
                mime = VOICE_MIME
            file_name = file_name_for(name_hint, mime, intent.message_id)
            try:
                key = message_key(tenant_id, session_id, intent.message_id, file_name)
            except ValueError as exc:
                raise MediaFailed("media_failed", f"cannot name the media: {exc}") from exc
            size = await asyncio.to_thread(os.path.getsize, path)
            yield Prepared(
                outgoing=d.OutgoingMedia(
                    path=path, kind=media.kind, mime=mime, size=size, file_name=file_name,
                    caption=intent.text or None, ptt=media.ptt, width=media.width, height=media.height,
                    duration=duration,
                ),
                key=key,
                source_key=media.key if path == src else None,
            )

    async def _voice_note(self, src: str, dst: str) -> tuple[str, int | None]:
        """(path, seconds) of ``src`` as Opus in OGG, converting only when it is not that already."""
        try:
            found = await mediaproc.probe(src)
            if mediaproc.is_voice_note_ready(found):
                return src, found.duration
            converted = await mediaproc.to_voice_note(src, dst)
        except mediaproc.MediaProcessingError as exc:
            raise MediaFailed("conversion_failed", f"cannot convert the audio to a voice note: {exc}") from exc
        return dst, converted.duration

    async def keep_sent(self, prepared: Prepared, message_id: str, chat_jid: str) -> p.MediaEntry:
        """Keep what WhatsApp accepted under the message's key (only after it did: a failed send leaves nothing).

        The message is out by now, so a storage failure is recorded on the entry, not raised.
        """
        m = prepared.outgoing
        mime = normalize_mime(m.mime)
        url: str | None = None
        error: str | None = None
        try:
            if prepared.source_key is not None:
                await self.store.copy(prepared.source_key, prepared.key)
            else:
                await self.store.upload_file(prepared.key, m.path, mime)
            url = self.store.url(prepared.key)
        except StorageError as exc:
            error = f"sent, but not kept in storage: {exc}"[:500]
        return p.MediaEntry(
            message_id=message_id, chat_jid=chat_jid, kind=m.kind, url=url, mime=mime,
            size=m.size, width=m.width, height=m.height, duration=m.duration, file_name=m.file_name, ptt=m.ptt,
            key=prepared.key if url else None, error=error,
        )

    async def store_incoming(
        self, driver: d.WhatsAppDriver, tenant_id: str, session_id: str, msg: d.IncomingMessage
    ) -> p.MediaEntry:
        """Fetch an incoming message's media from WhatsApp and keep it under the message's key."""
        media = msg.media
        assert media is not None
        async with self.scratch() as tmp:
            path = os.path.join(tmp, "media")
            try:
                size = await driver.download_media(session_id, media, path)
            except d.DriverError as exc:
                raise MediaFailed("media_unavailable", f"cannot download the media: {exc}") from exc
            head = await asyncio.to_thread(_head, path)
            sniffed = sniff_mime(head)
            # The bytes say what they are; unrecognised bytes keep the sender's type, made inert.
            mime = (refine(sniffed, media.mime) or sniffed) if sniffed else inert_type(normalize_mime(media.mime))
            width, height, duration = media.width, media.height, media.duration
            if media.kind in _PROBED_KINDS and (width is None or duration is None):
                try:
                    found = await mediaproc.probe(path)
                    width, height = width or found.width, height or found.height
                    duration = duration or found.duration
                except mediaproc.MediaProcessingError as exc:
                    log.info("probe failed", extra={"fields": {"message": msg.id, "error": str(exc)[:200]}})
            file_name = file_name_for(media.file_name, mime, msg.id)
            key = message_key(tenant_id, session_id, msg.id, file_name)
            try:
                await self.store.upload_file(key, path, mime,
                                             content_disposition=f'inline; filename="{file_name}"')
            except StorageError as exc:
                raise MediaFailed("media_unavailable", f"cannot store the media: {exc}") from exc
        return p.MediaEntry(
            message_id=msg.id, chat_jid=msg.chat_jid, kind=media.kind, url=self.store.url(key), mime=mime,
            size=size, width=width, height=height, duration=duration if media.kind != "image" else None,
            file_name=file_name, ptt=media.ptt, key=key,
        )


def failed_entry(msg: d.IncomingMessage, reason: str) -> p.MediaEntry:
    """What is recorded when an incoming message's media cannot be fetched after retries."""
    media = msg.media
    assert media is not None
    return p.MediaEntry(
        message_id=msg.id, chat_jid=msg.chat_jid, kind=media.kind, url=None, mime=normalize_mime(media.mime),
        size=media.size, width=media.width, height=media.height, duration=media.duration,
        file_name=media.file_name, ptt=media.ptt, error=reason[:500],
    )


def _head(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(SNIFF_BYTES)
