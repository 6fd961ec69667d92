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

"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from python_multipart.multipart import MultipartParser, parse_options_header

from command_api.media.schemas import UPLOAD_FORM, UploadView
from command_api.media.service import MediaLibrary
from command_api.shared.access import Access
from command_api.shared.bodies import IdPath
from command_api.shared.problems import AUTHED, Problem, responses
from command_api.shared.responses import ApiJson as JsonResponse
from command_api.shared.security import Who
from zapstream_platform.storage import SNIFF_BYTES, StorageError, StoredObject
from zapstream_platform.tokens import Principal

KB = 1024
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


router = APIRouter(tags=["media"], responses=responses(*AUTHED))


async def library_of(request: Request) -> MediaLibrary:
    library: MediaLibrary = request.app.state.services.media
    return library


async def access_of(request: Request) -> Access:
    access: Access = request.app.state.services.access
    return access


Library = Annotated[MediaLibrary, Depends(library_of)]
Perms = Annotated[Access, Depends(access_of)]


@router.post("/media", status_code=201, response_model=UploadView, responses=responses(400, 404, 413, 415),
             openapi_extra={"requestBody": UPLOAD_FORM})
async def upload(request: Request, who: Who, library: Library, access: Perms) -> JsonResponse:
    """Stream an upload to object storage: real MIME from the bytes, WhatsApp's size limits."""
    store = library.store
    ctype, opts = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not opts.get(b"boundary"):
        raise Problem(415, "expected multipart/form-data with fields file, kind and optional sessionId")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > library.largest + OVERHEAD:
        raise Problem(413, f"file exceeds the largest media limit ({library.largest} bytes)",
                      limit=library.largest)

    fields: dict[str, str] = {}
    stored: StoredObject | None = None
    file_name = ""
    media_id = str(uuid.uuid4())
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
                if name == "kind":
                    library.check_kind(fields["kind"])
                if name == "sessionId" and fields["sessionId"]:
                    fields["sessionId"] = await access.owned(who, fields["sessionId"])
                continue
            if stored is not None:
                raise Problem(422, "exactly one file per request")
            stored, file_name = await _store(library, events, who, media_id, filename, declared, fields.get("kind"))
    except BaseException:
        if stored is not None:
            await store.delete(stored.key)
        raise

    if stored is None:
        raise Problem(422, "field 'file' is required")
    kind = fields.get("kind")
    if kind is None:
        await store.delete(stored.key)
        raise Problem(422, "field 'kind' is required (image, video, audio, document, sticker)")
    # Re-checks what could not be checked while streaming (fields after the file), then probes.
    saved = await library.finish(who.tenant_id, media_id, stored, file_name, kind, fields.get("sessionId") or None)
    return JsonResponse(saved.view(store.url(saved.key)), status_code=201)


@router.get("/media/{media_id}", response_model=UploadView, responses=responses(404))
async def describe(media_id: IdPath, who: Who, library: Library, access: Perms) -> JsonResponse:
    """An upload's metadata with a freshly signed URL."""
    saved = await library.get(who.tenant_id, media_id)
    if saved.session_id is not None and not access.in_scope(who, saved.session_id):
        raise Problem(404, "media not found")
    return JsonResponse(saved.view(library.store.url(saved.key)))


async def _store(library: MediaLibrary, events: AsyncIterator[tuple[str, Any]], who: Principal, media_id: str,
                 filename: str | None, declared: str | None, kind: str | None) -> tuple[StoredObject, str]:
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
    mime = library.sniff(head, declared, kind)

    async def body() -> AsyncIterator[bytes]:
        yield head
        if ended:
            return
        async for ev, data in events:
            if ev == "end":
                return
            yield data

    return await library.put(who.tenant_id, media_id, body(), kind=kind, mime=mime, file_name=filename)
