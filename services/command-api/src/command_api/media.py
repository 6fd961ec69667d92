"""``POST /media``: stream an upload to object storage and answer a media reference.

The multipart body is parsed as it arrives (``request.stream()`` fed to python-multipart's push
parser) and the file part goes straight to S3 in parts (:meth:`MediaStore.put_stream`); the API
never holds the whole file, in memory or on disk. The real type is sniffed from the first bytes:
a declaration that contradicts them, or a type the kind does not allow, is a 415; more bytes than
the kind allows is a 413; in both cases nothing stays stored.

Fields: ``file`` (required), ``kind`` (image|video|audio|document|sticker), ``sessionId`` (optional).
Put ``kind`` before ``file`` in the form (curl ``-F`` order) to have the kind's limit enforced while
streaming; when it comes after, the largest limit applies while streaming and the object is deleted
if it turns out to break the kind's rules.

(No ``from __future__ import annotations``: FastAPI resolves the dependency aliases at runtime.)
"""

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from python_multipart.multipart import MultipartParser, parse_options_header

from command_api.application import CommandBus
from command_api.permissions import Permissions
from command_api.problems import Problem
from zapstream_platform.http import JsonResponse
from zapstream_platform.storage import (
    SNIFF_BYTES,
    MediaStore,
    ObjectTooLarge,
    StorageError,
    refine,
    safe_file_name,
    sniff_mime,
    upload_key,
)
from zapstream_platform.tokens import Principal

Kind = Literal["image", "video", "audio", "document", "sticker"]
KB, MB = 1024, 1024 * 1024

# In line with WhatsApp's limits (Cloud API media reference).
LIMITS: dict[str, int] = {"image": 5 * MB, "video": 16 * MB, "audio": 16 * MB, "document": 100 * MB,
                          "sticker": 500 * KB}
ALLOWED: dict[str, frozenset[str] | None] = {
    "image": frozenset({"image/jpeg", "image/png", "image/webp"}),
    "video": frozenset({"video/mp4", "video/3gpp", "video/quicktime"}),
    # wav/flac are accepted for voice notes, which are converted to Opus before sending.
    "audio": frozenset({"audio/ogg", "audio/mpeg", "audio/mp4", "audio/aac", "audio/amr", "audio/wav",
                        "audio/flac", "audio/webm"}),
    "sticker": frozenset({"image/webp"}),
    "document": None,  # any recognised type (a PDF, an office file, text, even a photo sent as a file)
}
EXTENSIONS = {
    "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif", "video/mp4": "mp4",
    "video/3gpp": "3gp", "video/quicktime": "mov", "audio/ogg": "ogg", "audio/mpeg": "mp3", "audio/mp4": "m4a",
    "audio/aac": "aac", "audio/amr": "amr", "audio/wav": "wav", "audio/flac": "flac", "application/pdf": "pdf",
    "text/plain": "txt",
}
MAX_FIELD = 256  # bytes of a non-file form field
OVERHEAD = 64 * KB  # multipart boundaries and part headers on top of the file


class _Parts:
    """python-multipart's push parser as an async stream of ``(event, value)``.

    Events: ``("begin", (name, filename, content_type))``, ``("data", bytes)``, ``("end", None)``.
    """

    def __init__(self, request: Request, boundary: bytes) -> None:
        self.request = request
        self.pending: list[tuple[str, Any]] = []
        self._field, self._value = b"", b""
        self._headers: dict[bytes, bytes] = {}

        def on_header_field(data: bytes, start: int, end: int) -> None:
            self._field += data[start:end]

        def on_header_value(data: bytes, start: int, end: int) -> None:
            self._value += data[start:end]

        def on_header_end() -> None:
            self._headers[self._field.lower()] = self._value
            self._field, self._value = b"", b""

        def on_headers_finished() -> None:
            _, opts = parse_options_header(self._headers.get(b"content-disposition", b""))
            name = opts.get(b"name", b"").decode("utf-8", "replace")
            filename = opts[b"filename"].decode("utf-8", "replace") if b"filename" in opts else None
            ctype = self._headers.get(b"content-type", b"").decode("latin-1") or None
            self.pending.append(("begin", (name, filename, ctype)))
            self._headers = {}

        def on_part_data(data: bytes, start: int, end: int) -> None:
            self.pending.append(("data", bytes(data[start:end])))

        def on_part_end() -> None:
            self.pending.append(("end", None))

        self.parser = MultipartParser(boundary, {
            "on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished, "on_part_data": on_part_data, "on_part_end": on_part_end,
        })

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        try:
            async for chunk in self.request.stream():
                self.parser.write(chunk)
                while self.pending:
                    yield self.pending.pop(0)
            self.parser.finalize()
        except Exception as exc:  # python-multipart raises its own errors on malformed bodies
            if isinstance(exc, (Problem, StorageError)):
                raise
            raise Problem(400, "malformed multipart body") from exc
        while self.pending:
            yield self.pending.pop(0)


def build_router(principal: Any, perms: Permissions, bus: CommandBus, store: MediaStore,
                 *, limits: dict[str, int] | None = None,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> APIRouter:
    """``principal`` is the same authentication dependency :func:`command_api.routes.build_router` gets."""
    router = APIRouter(tags=["media"])
    Who = Annotated[Principal, Depends(principal)]
    max_of = dict(LIMITS | (limits or {}))
    largest = max(max_of.values())

    async def check_session(who: Principal, session_id: str) -> str:
        return await perms.owned_session(who, bus, session_id)

    def check_type(kind: str, mime: str) -> None:
        allowed = ALLOWED[kind]
        if allowed is not None and mime not in allowed:
            raise Problem(415, f"{mime} is not accepted as {kind}", accepted=sorted(allowed))

    @router.post("/media", status_code=201)
    async def upload(request: Request, who: Who) -> JsonResponse:
        ctype, opts = parse_options_header(request.headers.get("content-type", ""))
        if ctype != b"multipart/form-data" or not opts.get(b"boundary"):
            raise Problem(415, "expected multipart/form-data with fields file, kind and optional sessionId")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > largest + OVERHEAD:
            raise Problem(413, f"file exceeds the largest media limit ({largest} bytes)", limit=largest)

        fields: dict[str, str] = {}
        stored = None
        media_id = new_id()
        events = _Parts(request, opts[b"boundary"]).events()
        try:
            async for event, value in events:
                if event != "begin":
                    continue
                name, filename, declared = value
                if name != "file":
                    raw = b""
                    async for ev, data in events:
                        if ev == "end":
                            break
                        raw += data
                        if len(raw) > MAX_FIELD:
                            raise Problem(422, f"field {name!r} is too long")
                    fields[name] = raw.decode("utf-8", "replace").strip()
                    if name == "kind" and fields["kind"] not in LIMITS:
                        raise Problem(422, "kind must be one of image, video, audio, document, sticker")
                    if name == "sessionId" and fields["sessionId"]:
                        fields["sessionId"] = await check_session(who, fields["sessionId"])
                    continue
                if stored is not None:
                    raise Problem(422, "exactly one file per request")
                stored, file_name = await _store(events, who, media_id, filename, declared, fields.get("kind"))
        except BaseException:
            if stored is not None:
                await store.delete(stored.key)
            raise

        try:
            if stored is None:
                raise Problem(422, "field 'file' is required")
            kind = fields.get("kind")
            if kind is None:
                raise Problem(422, "field 'kind' is required (image, video, audio, document, sticker)")
            # Re-checked here for fields that came after the file.
            if stored.size > max_of[kind]:
                raise Problem(413, f"{kind} exceeds {max_of[kind]} bytes", limit=max_of[kind])
            check_type(kind, stored.content_type)
            if stored.size == 0:
                raise Problem(422, "file is empty")
        except BaseException:
            if stored is not None:
                await store.delete(stored.key)
            raise

        return JsonResponse({
            "mediaId": media_id, "kind": kind, "mime": stored.content_type, "size": stored.size,
            "fileName": file_name, "sessionId": fields.get("sessionId") or None, "key": stored.key,
            "url": store.url(stored.key),
        }, status_code=201)

    async def _store(events: AsyncIterator[tuple[str, Any]], who: Principal, media_id: str, filename: str | None,
                     declared: str | None, kind: str | None) -> tuple[Any, str]:
        """Consume the file part: sniff its head, check it, stream the rest to S3."""
        head = b""
        ended = False
        async for ev, data in events:
            if ev == "end":
                ended = True
                break
            head += data
            if len(head) >= SNIFF_BYTES:
                break
        sniffed = sniff_mime(head[:SNIFF_BYTES])
        if sniffed is None:
            raise Problem(415, "unrecognised file type")
        mime = refine(sniffed, declared)
        if mime is None:
            raise Problem(415, f"declared type {declared!r} does not match the file's content ({sniffed})",
                          detected=sniffed)
        if kind is not None:
            check_type(kind, mime)
        limit = max_of[kind] if kind is not None else largest

        async def body() -> AsyncIterator[bytes]:
            yield head
            if ended:
                return
            async for ev, data in events:
                if ev == "end":
                    return
                yield data

        ext = EXTENSIONS.get(mime)
        file_name = safe_file_name(filename, fallback=f"{media_id}.{ext}" if ext else media_id)
        key = upload_key(who.tenant_id, media_id, file_name)
        disposition = f'inline; filename="{file_name}"'
        try:
            stored = await store.put_stream(key, body(), mime, max_bytes=limit, content_disposition=disposition)
        except ObjectTooLarge as exc:
            raise Problem(413, f"{kind or 'file'} exceeds {exc.limit} bytes", limit=exc.limit) from exc
        return stored, file_name

    return router
