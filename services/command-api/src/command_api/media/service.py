"""The tenant's media library: what may be uploaded, what an upload is, and how a send names one.

Every stored upload has a ``media_uploads`` row (tenant, key, type, size, dimensions,
duration). A send refers to media by ``mediaId``, by a URL this API handed out, or
by base64 bytes (stored here first, so commands on Kafka stay small). Whatever the
form, the runner gets a :class:`~zapstream_contracts.payloads.MediaRef` that points
into the tenant's own prefix.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from command_api.settings import MediaSettings
from command_api.shared.problems import Problem
from zapstream_contracts import payloads as p
from zapstream_platform import mediaproc
from zapstream_platform.storage import (
    SNIFF_BYTES,
    MediaStore,
    ObjectTooLarge,
    StoredObject,
    file_name_for,
    refine,
    sniff_mime,
    upload_key,
)

log = logging.getLogger(__name__)

_MIME = re.compile(r"^[A-Za-z0-9][\w.+-]*/[\w.+-]+(\s*;\s*[\w.+-]+=[\w.+\-\"]*)*$")

KINDS = ("image", "video", "audio", "document", "sticker")
ALLOWED: dict[str, frozenset[str] | None] = {
    "image": frozenset({"image/jpeg", "image/png", "image/webp"}),
    "video": frozenset({"video/mp4", "video/3gpp", "video/quicktime"}),
    # wav/flac/webm are accepted for voice notes, which are converted to Opus before sending.
    "audio": frozenset({"audio/ogg", "audio/mpeg", "audio/mp4", "audio/aac", "audio/amr", "audio/wav",
                        "audio/flac", "audio/webm"}),
    "sticker": frozenset({"image/webp"}),
    "document": None,  # any recognised type (a PDF, an office file, text, even a photo sent as a file)
}
# What WhatsApp plays as a plain audio message; anything else must go as a voice note (converted).
PLAYABLE_AUDIO = frozenset({"audio/ogg", "audio/mpeg", "audio/mp4", "audio/aac", "audio/amr"})
# Kinds whose bytes must decode (ffprobe), so a renamed or truncated file is refused up front.
DECODED_KINDS = frozenset({"video", "audio"})
PROBED_KINDS = frozenset({"image", "video", "audio", "sticker"})


@dataclass(frozen=True, slots=True)
class Upload:
    """One stored upload of a tenant (a ``media_uploads`` row)."""

    id: str
    tenant_id: str
    session_id: str | None
    kind: str
    mime: str
    size: int
    file_name: str
    key: str
    width: int | None
    height: int | None
    duration: int | None

    def view(self, url: str) -> dict[str, Any]:
        return {"mediaId": self.id, "kind": self.kind, "mime": self.mime, "size": self.size,
                "fileName": self.file_name, "sessionId": self.session_id, "key": self.key, "url": url,
                "width": self.width, "height": self.height, "duration": self.duration}

    def ref(self, ptt: bool = False) -> p.MediaRef:
        return p.MediaRef(kind=self.kind, key=self.key, mime=self.mime, size=self.size,  # type: ignore[arg-type]
                          file_name=self.file_name, ptt=ptt, width=self.width, height=self.height,
                          duration=self.duration, media_id=self.id)


class UploadsStore(Protocol):
    """The ``media_uploads`` rows (media/repository.py)."""

    async def insert(self, upload: Upload) -> None: ...
    async def delete(self, tenant_id: str, media_id: uuid.UUID) -> str | None: ...
    async def by_id(self, tenant_id: str, media_id: uuid.UUID) -> Upload | None: ...
    async def by_key(self, tenant_id: str, key: str) -> Upload | None: ...


class MediaLibrary:
    """Checks, stores, describes and finds a tenant's uploads."""

    def __init__(self, uploads: UploadsStore, store: MediaStore, settings: MediaSettings) -> None:
        self.uploads = uploads
        self.store = store
        self.settings = settings
        self.limits = {k: getattr(settings, f"{k}_max_bytes") for k in KINDS}
        self.largest = max(self.limits.values())

    # ----- rules -----------------------------------------------------------------------------------

    def check_kind(self, kind: str | None) -> str:
        if kind not in self.limits:
            raise Problem(422, "kind must be one of image, video, audio, document, sticker")
        return kind

    def check_type(self, kind: str, mime: str) -> None:
        allowed = ALLOWED[kind]
        if allowed is not None and mime not in allowed:
            raise Problem(415, f"{mime} is not accepted as {kind}", accepted=sorted(allowed))

    def sniff(self, head: bytes, declared: str | None, kind: str | None) -> str:
        """The real type of a file from its first bytes; 415 when unknown or contradicting the declaration."""
        sniffed = sniff_mime(head[:SNIFF_BYTES])
        if sniffed is None:
            raise Problem(415, "unrecognised file type")
        if declared is not None and not _MIME.match(declared.strip()):
            raise Problem(422, "mime must be a media type such as image/png")
        mime = refine(sniffed, declared)
        if mime is None:
            raise Problem(415, f"declared type {declared!r} does not match the file's content ({sniffed})",
                          detected=sniffed)
        if kind is not None:
            self.check_type(kind, mime)
        return mime

    # ----- storing -----------------------------------------------------------------------------------

    async def put(self, tenant_id: str, media_id: str, chunks: AsyncIterator[bytes], *, kind: str | None,
                  mime: str, file_name: str | None) -> tuple[StoredObject, str]:
        """Stream an already sniffed file to the tenant's upload prefix; 413 past the kind's limit."""
        name = file_name_for(file_name, mime, media_id)
        key = upload_key(tenant_id, media_id, name)
        limit = self.limits[kind] if kind is not None else self.largest
        # Documents download; pictures, video and audio may show inline.
        disposition = "attachment" if kind in (None, "document") else "inline"
        try:
            stored = await self.store.put_stream(key, chunks, mime, max_bytes=limit,
                                                 content_disposition=f'{disposition}; filename="{name}"')
        except ObjectTooLarge as exc:
            raise Problem(413, f"{kind or 'file'} exceeds {exc.limit} bytes", limit=exc.limit) from exc
        return stored, name

    async def finish(self, tenant_id: str, media_id: str, stored: StoredObject, file_name: str, kind: str,
                     session_id: str | None) -> Upload:
        """Check a stored file against its kind, probe it, and record it; on any refusal, delete it."""
        try:
            if stored.size > self.limits[kind]:
                raise Problem(413, f"{kind} exceeds {self.limits[kind]} bytes", limit=self.limits[kind])
            self.check_type(kind, stored.content_type)
            if stored.size == 0:
                raise Problem(422, "file is empty")
            width = height = duration = None
            if kind in PROBED_KINDS:
                try:
                    found = await mediaproc.probe(self.store.url(stored.key, ttl_s=600),
                                                  timeout_s=self.settings.probe_timeout_s)
                    width, height, duration = found.width, found.height, found.duration
                except mediaproc.MediaProcessingError as exc:
                    if exc.transient:  # storage or ffprobe trouble is not the client's file's fault
                        raise Problem(503, "cannot inspect the upload right now; try again") from exc
                    if kind in DECODED_KINDS:
                        raise Problem(415, f"the file cannot be decoded as {kind}: {exc}") from exc
                    log.info("probe failed", extra={"fields": {"kind": kind, "error": str(exc)[:200]}})
            if kind == "image":
                duration = None
            upload = Upload(id=media_id, tenant_id=tenant_id, session_id=session_id, kind=kind,
                            mime=stored.content_type, size=stored.size, file_name=file_name, key=stored.key,
                            width=width, height=height, duration=duration)
            await self.uploads.insert(upload)
        except BaseException:
            await self.store.delete(stored.key)
            raise
        return upload

    async def store_base64(self, tenant_id: str, data: str, *, kind: str, declared: str | None,
                           file_name: str | None, session_id: str | None) -> Upload:
        """Decode base64 (plain or a ``data:`` URI), then store it like an upload."""
        if data.startswith("data:"):
            header, sep, data = data.partition(",")
            if not sep or not header.endswith(";base64"):
                raise Problem(422, "a data URI must be base64: data:<type>;base64,<bytes>")
            declared = declared or header[5:-7] or None
        try:
            raw = base64.b64decode("".join(data.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Problem(422, "media is not valid base64") from exc
        if not raw:
            raise Problem(422, "file is empty")
        if len(raw) > self.limits[kind]:
            raise Problem(413, f"{kind} exceeds {self.limits[kind]} bytes", limit=self.limits[kind])
        mime = self.sniff(raw, declared, kind)
        media_id = str(uuid.uuid4())

        async def one() -> AsyncIterator[bytes]:
            yield raw

        stored, name = await self.put(tenant_id, media_id, one(), kind=kind, mime=mime, file_name=file_name)
        return await self.finish(tenant_id, media_id, stored, name, kind, session_id)

    async def discard(self, tenant_id: str, media_id: str) -> None:
        """Forget an upload made for a request that was then refused (object and row)."""
        key = await self.uploads.delete(tenant_id, uuid.UUID(media_id))
        if key is not None:
            await self.store.delete(key)

    # ----- finding -----------------------------------------------------------------------------------

    async def get(self, tenant_id: str, media_id: str) -> Upload:
        try:
            uid = uuid.UUID(media_id)
        except ValueError as exc:
            raise Problem(404, "media not found") from exc
        upload = await self.uploads.by_id(tenant_id, uid)
        if upload is None:
            raise Problem(404, "media not found")
        return upload

    async def by_url(self, tenant_id: str, url: str) -> Upload:
        """An upload named by a URL this API handed out (presigned or public); other URLs are refused."""
        key = self._key_of(url)
        upload = await self.uploads.by_key(tenant_id, key) if key else None
        if upload is None:
            raise Problem(422, "url must be one returned by POST /media; upload other files first or send base64")
        return upload

    def _key_of(self, url: str) -> str | None:
        base = self.store.settings.public_base_url
        if base and url.startswith(base.rstrip("/") + "/"):
            return unquote(url[len(base.rstrip("/")) + 1:].split("?", 1)[0])
        try:
            path = unquote(urlsplit(url).path).lstrip("/")
        except ValueError:
            return None
        bucket = self.store.bucket + "/"
        if path.startswith(bucket):  # path-style
            return path[len(bucket):]
        return path or None  # virtual-hosted style: the whole path is the key
