"""Object storage for media on any S3-compatible service (AWS S3, Cloudflare R2, MinIO, S3Proxy in dev).

boto3 is synchronous: every call runs in a worker thread (``asyncio.to_thread``) so the event loop
never blocks. Uploads are streamed: :meth:`MediaStore.put_stream` consumes an async iterator of
chunks and sends S3 multipart parts of ``part_size`` bytes, so an upload holds at most about two
parts in memory whatever its size. The bucket is private; readers get presigned GET URLs (or
``public_base_url``/key when one is configured).

Keys:

* ``tenants/{tenantId}/sessions/{sessionId}/messages/{messageId}/{file}`` (:func:`message_key`)
* ``tenants/{tenantId}/uploads/{uploadId}/{file}`` before a message exists (:func:`upload_key`)

:func:`sniff_mime` detects a file's real type from its first bytes (magic numbers).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import unicodedata
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any

import boto3
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from zapstream_platform.settings import S3Settings

# ---------------------------------------------------------------------------------------------- keys

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:+=-]{0,199}$")


def _segment(value: str, what: str) -> str:
    if not _SEGMENT.match(value) or ".." in value:
        raise ValueError(f"invalid {what} for a storage key: {value!r}")
    return value


def safe_file_name(name: str | None, fallback: str = "file") -> str:
    """A file name safe as the last key segment: ASCII letters, digits, ``._-``; at most 120 chars."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._-")
    if not base:
        return fallback
    if len(base) > 120:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 119 - len(ext)] + dot + ext) if dot and len(ext) <= 16 else base[:120]
    return base


EXTENSIONS = {
    "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif", "video/mp4": "mp4",
    "video/3gpp": "3gp", "video/quicktime": "mov", "audio/ogg": "ogg", "audio/mpeg": "mp3", "audio/mp4": "m4a",
    "audio/aac": "aac", "audio/amr": "amr", "audio/wav": "wav", "audio/flac": "flac", "application/pdf": "pdf",
    "text/plain": "txt",
}
"""The usual file extension of each MIME type, for naming files that came without a name."""


def file_name_for(name: str | None, mime: str, stem: str) -> str:
    """``name`` made safe, or ``stem`` plus the extension of ``mime`` when there is no usable name."""
    ext = EXTENSIONS.get(normalize_mime(mime))
    return safe_file_name(name, fallback=f"{stem}.{ext}" if ext else stem)


def message_key(tenant_id: str, session_id: str, message_id: str, file: str) -> str:
    return (f"tenants/{_segment(tenant_id, 'tenant id')}/sessions/{_segment(session_id, 'session id')}"
            f"/messages/{_segment(message_id, 'message id')}/{_segment(file, 'file name')}")


def upload_key(tenant_id: str, upload_id: str, file: str) -> str:
    return f"tenants/{_segment(tenant_id, 'tenant id')}/uploads/{_segment(upload_id, 'upload id')}/{_segment(file, 'file name')}"


# ------------------------------------------------------------------------------------------- sniffing

SNIFF_BYTES = 512  # enough for every signature below


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        if exc.start < len(head) - 3:
            return False
    return True


def sniff_mime(head: bytes) -> str | None:
    """The MIME type the bytes really are (from the first :data:`SNIFF_BYTES`), or None if unknown.

    Containers stay generic (``application/zip`` for docx/xlsx/…, ``application/x-ole-storage`` for
    doc/xls/ppt, ``text/plain`` for any UTF-8 text); callers may refine them with a compatible
    declared type (see :func:`refine`).
    """
    h = head
    if h.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if h.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if h[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if h.startswith(b"RIFF") and len(h) >= 12:
        return {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}.get(h[8:12])
    if len(h) >= 12 and h[4:8] == b"ftyp":
        brand = h[8:12]
        if brand in (b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "):
            return "audio/mp4"
        if brand.startswith((b"3gp", b"3g2")):
            return "video/3gpp"
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in (b"heic", b"heix", b"mif1", b"msf1"):
            return "image/heic"
        if brand in (b"avif", b"avis"):
            return "image/avif"
        return "video/mp4"
    if h.startswith(b"OggS"):
        return "video/ogg" if b"\x80theora" in h else "audio/ogg"
    if h.startswith(b"ID3"):
        return "audio/mpeg"
    if h.startswith(b"#!AMR"):
        return "audio/amr"
    if h.startswith(b"fLaC"):
        return "audio/flac"
    if h.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if len(h) >= 2 and h[0] == 0xFF:
        if h[1] & 0xF6 == 0xF0:  # ADTS sync word, layer 00
            return "audio/aac"
        if h[1] & 0xE0 == 0xE0 and (h[1] >> 1) & 0x03:  # MPEG audio frame sync, layer I-III
            return "audio/mpeg"
    if h.startswith(b"%PDF-"):
        return "application/pdf"
    if h.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "application/zip"
    if h.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "application/x-ole-storage"
    if h.startswith(b"{\\rtf"):
        return "application/rtf"
    if _looks_like_text(h):
        return "text/plain"
    return None


_ALIASES = {
    "image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "audio/mp3": "audio/mpeg", "audio/x-mp3": "audio/mpeg",
    "audio/x-mpeg": "audio/mpeg", "audio/x-wav": "audio/wav", "audio/wave": "audio/wav", "audio/vnd.wave": "audio/wav",
    "audio/x-m4a": "audio/mp4", "audio/m4a": "audio/mp4", "audio/opus": "audio/ogg", "application/ogg": "audio/ogg",
    "audio/x-aac": "audio/aac", "audio/aacp": "audio/aac", "audio/x-flac": "audio/flac", "video/3gp": "video/3gpp",
    "application/x-pdf": "application/pdf", "application/x-zip-compressed": "application/zip",
    "text/rtf": "application/rtf",
}
# Declared types a generic container may be refined into.
_FAMILIES: dict[str, tuple[str, ...]] = {
    "application/zip": ("application/vnd.openxmlformats-officedocument.", "application/vnd.oasis.opendocument.",
                        "application/epub+zip", "application/java-archive", "application/vnd.android.package-archive"),
    "application/x-ole-storage": ("application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
                                  "application/vnd.ms-outlook"),
    "text/plain": ("text/", "application/json", "application/xml", "application/csv", "application/x-ndjson"),
    "video/mp4": ("audio/mp4",),  # an m4a with a generic brand (isom, mp42)
    "audio/mp4": ("video/mp4",),
    "audio/ogg": ("video/ogg",),
    "video/webm": ("audio/webm", "video/x-matroska", "audio/x-matroska"),
}
GENERIC_DECLARED = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/unknown"})


def normalize_mime(declared: str | None) -> str:
    """``Content-Type`` without parameters, lower case, aliases resolved; '' when absent."""
    value = (declared or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(value, value)


# Types a browser would run or render as a page: never served from our media URLs as such.
_ACTIVE_TYPES = frozenset({"text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml",
                           "text/javascript", "application/javascript", "text/css"})


def inert_type(mime: str) -> str:
    """``mime``, unless a browser would execute or render it as a page: then ``text/plain``."""
    base = normalize_mime(mime)
    return "text/plain" if base in _ACTIVE_TYPES or base.endswith("+xml") else mime


def refine(sniffed: str, declared: str | None) -> str | None:
    """The type to store, given what the bytes are and what the client declared.

    The sniffed type, or a compatible more specific declared type (a docx declared for a zip), made
    inert (a declared ``text/html`` for text bytes is stored as ``text/plain``: our URLs never serve
    pages); None when the declaration contradicts the bytes (a PDF declared as ``image/png``).
    """
    d = normalize_mime(declared)
    if d in GENERIC_DECLARED or d == sniffed:
        return sniffed
    if any(d.startswith(prefix) for prefix in _FAMILIES.get(sniffed, ())):
        return inert_type(d)
    return None


# -------------------------------------------------------------------------------------------- storage


class StorageError(Exception):
    """The object store failed or refused the operation."""


class ObjectTooLarge(StorageError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"object exceeds {limit} bytes")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    content_type: str
    etag: str


class MediaStore:
    """The media port's S3 adapter. One per process; thread-safe (boto3 clients are)."""

    def __init__(self, settings: S3Settings, client: Any | None = None) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self._client = client or boto3.session.Session().client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key.get_secret_value(),
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": settings.addressing_style},
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                max_pool_connections=32,
                # boto3 >= 1.36 adds CRC checksums to every upload by default; many S3-compatible
                # servers (S3Proxy, older MinIO, R2 on multipart) reject or ignore them. MD5/ETag
                # integrity still applies.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    async def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(getattr(self._client, method), **kwargs)
        except (ClientError, BotoCoreError) as exc:  # BotoCoreError: endpoint unreachable, connection lost
            raise StorageError(f"{method}: {exc}") from exc

    @staticmethod
    def _code(exc: BaseException) -> str:
        cause = exc.__cause__ if isinstance(exc, StorageError) else exc
        if isinstance(cause, ClientError):
            return str(cause.response.get("Error", {}).get("Code", ""))
        return ""

    async def ensure_bucket(self) -> None:
        """Create the (private) bucket unless it exists; safe to call concurrently and repeatedly."""
        try:
            await self._call("head_bucket", Bucket=self.bucket)
            return
        except StorageError as exc:
            if self._code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.settings.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.settings.region}
        try:
            await self._call("create_bucket", **kwargs)
        except StorageError as exc:
            if self._code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str, *, max_bytes: int | None = None,
        content_disposition: str | None = None,
    ) -> StoredObject:
        """Stream ``chunks`` to ``key``. Bodies smaller than one part are a single PUT, larger ones multipart.

        Raises :class:`ObjectTooLarge` as soon as more than ``max_bytes`` arrived; on that or any other
        error (cancellation included) a started multipart upload is aborted, so nothing is left behind.
        Memory: the part being filled plus at most one part in flight.
        """
        part_size = self.settings.part_size
        extra: dict[str, Any] = {"ContentType": content_type}
        if content_disposition:
            extra["ContentDisposition"] = content_disposition
        upload = _Multipart(self, key, extra)
        buf = bytearray()
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise ObjectTooLarge(max_bytes)
                buf += chunk
                while len(buf) >= part_size:
                    body = bytes(buf[:part_size])
                    del buf[:part_size]
                    await upload.send(body)
            if upload.upload_id is None:
                r = await self._call("put_object", Bucket=self.bucket, Key=key, Body=bytes(buf), **extra)
                etag = str(r.get("ETag", ""))
            else:
                if buf or not upload.started_parts:
                    await upload.send(bytes(buf))
                etag = await upload.complete()
        except BaseException:
            await upload.abort()
            raise
        return StoredObject(key=key, size=size, content_type=content_type, etag=etag.strip('"'))

    def url(self, key: str, ttl_s: int | None = None, file_name: str | None = None) -> str:
        """A URL to GET ``key``: ``public_base_url``/key when configured, otherwise presigned (local, no I/O)."""
        if self.settings.public_base_url:
            return f"{self.settings.public_base_url.rstrip('/')}/{key}"
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if file_name:
            params["ResponseContentDisposition"] = f'attachment; filename="{safe_file_name(file_name)}"'
        return str(self._client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=ttl_s or self.settings.presign_ttl_s))

    async def head(self, key: str) -> StoredObject | None:
        try:
            r = await self._call("head_object", Bucket=self.bucket, Key=key)
        except StorageError as exc:
            if self._code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return StoredObject(key=key, size=int(r["ContentLength"]), content_type=str(r.get("ContentType", "")),
                            etag=str(r.get("ETag", "")).strip('"'))

    async def download_file(self, key: str, path: str) -> int:
        """Stream ``key`` into the local file ``path`` (ranged parts, bounded memory); returns its size."""
        def run() -> int:
            self._client.download_file(self.bucket, key, path)
            return os.path.getsize(path)

        try:
            return await asyncio.to_thread(run)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"download {key}: {exc}") from exc

    async def upload_file(self, key: str, path: str, content_type: str, *,
                          content_disposition: str | None = None) -> StoredObject:
        """Upload the local file ``path`` to ``key`` (multipart above one part, bounded memory)."""
        extra: dict[str, Any] = {"ContentType": content_type}
        if content_disposition:
            extra["ContentDisposition"] = content_disposition
        def run() -> int:
            self._client.upload_file(path, self.bucket, key, ExtraArgs=extra)
            return os.path.getsize(path)

        try:
            size = await asyncio.to_thread(run)
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            raise StorageError(f"upload {key}: {exc}") from exc
        return StoredObject(key=key, size=size, content_type=content_type, etag="")

    async def copy(self, source_key: str, key: str) -> None:
        """Server-side copy (no bytes through this process)."""
        await self._call("copy_object", Bucket=self.bucket, Key=key,
                         CopySource={"Bucket": self.bucket, "Key": source_key})

    async def delete(self, key: str) -> None:
        """Idempotent: deleting a missing key succeeds."""
        await self._call("delete_object", Bucket=self.bucket, Key=key)

    async def delete_prefix(self, prefix: str, concurrency: int = 8) -> int:
        """Delete every object under ``prefix`` (a deleted tenant's files); how many. One DeleteObject per key,
        ``concurrency`` at a time: DeleteObjects would be fewer calls, but S3-compatible servers differ on
        its checksum headers (S3Proxy answers NotImplemented to boto3's default CRC32). Idempotent: a repeat
        after a partial failure deletes what is left."""
        deleted = 0
        while True:
            page = await self._call("list_objects_v2", Bucket=self.bucket, Prefix=prefix)
            keys = [str(o["Key"]) for o in page.get("Contents", [])]
            if not keys:
                return deleted
            for i in range(0, len(keys), concurrency):
                await asyncio.gather(*(self.delete(k) for k in keys[i:i + concurrency]))
            deleted += len(keys)

    async def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (operators and tests; paginates)."""
        out: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            r = await self._call("list_objects_v2", **kwargs)
            out.extend(o["Key"] for o in r.get("Contents", []))
            if not r.get("IsTruncated"):
                return out
            token = r.get("NextContinuationToken")

    def close(self) -> None:
        self._client.close()


class _Multipart:
    """One multipart upload, started lazily at the first full part; one part in flight at a time."""

    def __init__(self, store: MediaStore, key: str, extra: dict[str, Any]) -> None:
        self.store, self.key, self.extra = store, key, extra
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.started_parts = 0
        self.inflight: asyncio.Task[None] | None = None

    async def _upload(self, number: int, body: bytes) -> None:
        r = await self.store._call("upload_part", Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id,
                                   PartNumber=number, Body=body)
        self.parts.append({"PartNumber": number, "ETag": r["ETag"]})

    async def send(self, body: bytes) -> None:
        if self.upload_id is None:
            r = await self.store._call("create_multipart_upload", Bucket=self.store.bucket, Key=self.key, **self.extra)
            self.upload_id = str(r["UploadId"])
        if self.inflight is not None:
            await self.inflight
        self.started_parts += 1
        self.inflight = asyncio.create_task(self._upload(self.started_parts, body))

    async def complete(self) -> str:
        if self.inflight is not None:
            await self.inflight
            self.inflight = None
        parts = sorted(self.parts, key=lambda p: p["PartNumber"])
        r = await self.store._call("complete_multipart_upload", Bucket=self.store.bucket, Key=self.key,
                                   UploadId=self.upload_id, MultipartUpload={"Parts": parts})
        self.upload_id = None  # done: nothing to abort any more
        return str(r.get("ETag", ""))

    async def abort(self) -> None:
        # Let an in-flight part finish first (a thread cannot be cancelled), so it cannot land after the abort.
        if self.inflight is not None:
            with contextlib.suppress(BaseException):
                await self.inflight
        if self.upload_id is not None:
            upload_id, self.upload_id = self.upload_id, None
            with contextlib.suppress(Exception):
                await self.store._call("abort_multipart_upload", Bucket=self.store.bucket, Key=self.key,
                                       UploadId=upload_id)
