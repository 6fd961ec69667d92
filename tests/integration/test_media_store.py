"""MediaStore against the real S3-compatible server (``infra/bin/s3.sh up``; S3Proxy on 127.0.0.1:19000).

Not skipped when the server is down: the fixture fails with the command to run.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from zapstream_platform.settings import S3Settings
from zapstream_platform.storage import (
    MediaStore,
    ObjectTooLarge,
    message_key,
    refine,
    safe_file_name,
    sniff_mime,
    upload_key,
)

PART = 5 * 1024 * 1024


def _require_server(settings: S3Settings) -> None:
    assert settings.endpoint_url is not None
    host_port = settings.endpoint_url.split("//", 1)[1].rstrip("/")
    host, port = host_port.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError as exc:
        pytest.fail(f"S3 server not reachable at {settings.endpoint_url} ({exc}); "
                    "start it with: bash infra/bin/s3.sh up && bash infra/bin/s3.sh wait", pytrace=False)


@pytest.fixture(scope="module")
def s3(run_id: str) -> S3Settings:
    settings = S3Settings(bucket=f"zt-{run_id}-media", part_size=PART, presign_ttl_s=120)
    _require_server(settings)
    return settings


@pytest.fixture
async def store(s3: S3Settings) -> AsyncIterator[MediaStore]:
    store = MediaStore(s3)
    await store.ensure_bucket()
    try:
        yield store
    finally:
        store.close()


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]
        await asyncio.sleep(0)


async def test_bucket_creation_is_idempotent(s3: S3Settings) -> None:
    store = MediaStore(s3)
    try:
        await asyncio.gather(*(store.ensure_bucket() for _ in range(3)))
        await store.ensure_bucket()
        assert await store.keys("tenants/none/") == []
    finally:
        store.close()


async def test_multipart_stream_and_presigned_get(store: MediaStore) -> None:
    data = os.urandom(2 * PART + 123_457)  # two full parts and a short last one
    key = upload_key("t1", "u-multipart", "clip.mp4")
    stored = await store.put_stream(key, _chunks(data, 64 * 1024), "video/mp4")
    assert stored.size == len(data)
    head = await store.head(key)
    assert head is not None and head.size == len(data) and head.content_type == "video/mp4"

    url = store.url(key)
    assert "X-Amz-Signature=" in url
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(url)
        assert r.status_code == 200
        assert hashlib.sha256(r.content).digest() == hashlib.sha256(data).digest()
        # Private bucket: the plain URL without a signature is refused.
        plain = url.split("?", 1)[0]
        assert (await http.get(plain)).status_code in (403, 404)


async def test_small_body_single_put(store: MediaStore) -> None:
    key = message_key("t1", "s1", "m1", "note.txt")
    stored = await store.put_stream(key, _chunks(b"hello media", 4), "text/plain")
    assert stored.size == 11
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(store.url(key, file_name="note.txt"))
    assert r.content == b"hello media"
    assert "attachment" in r.headers.get("content-disposition", "")
    await store.delete(key)
    await store.delete(key)  # idempotent
    assert await store.head(key) is None


async def test_too_large_aborts_and_stores_nothing(store: MediaStore) -> None:
    key = upload_key("t2", "u-too-large", "big.bin")
    with pytest.raises(ObjectTooLarge):
        await store.put_stream(key, _chunks(os.urandom(PART + 10), 256 * 1024), "application/octet-stream",
                               max_bytes=PART)
    assert await store.head(key) is None
    assert await store.keys("tenants/t2/") == []


async def test_failing_source_aborts_and_stores_nothing(store: MediaStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(PART + 1)  # a part is uploaded before the source fails
        raise ConnectionResetError("client went away")

    key = upload_key("t3", "u-broken", "x.bin")
    with pytest.raises(ConnectionResetError):
        await store.put_stream(key, broken(), "application/octet-stream")
    assert await store.head(key) is None


def test_keys_and_names() -> None:
    assert message_key("t", "s", "m", "a.pdf") == "tenants/t/sessions/s/messages/m/a.pdf"
    assert safe_file_name("../../etc/pässwd mine.pdf") == "passwd_mine.pdf"
    assert safe_file_name("") == "file"
    with pytest.raises(ValueError):
        upload_key("t", "..", "x")
    with pytest.raises(ValueError):
        upload_key("t/../u", "u", "x")


@pytest.mark.parametrize(("head", "mime"), [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
    (b"\x00\x00\x00\x20ftypisom\x00\x00", "video/mp4"),
    (b"\x00\x00\x00\x20ftypM4A \x00\x00", "audio/mp4"),
    (b"OggS\x00\x02" + b"\x00" * 22 + b"OpusHead", "audio/ogg"),
    (b"ID3\x04\x00", "audio/mpeg"),
    (b"\xff\xfb\x90\x00", "audio/mpeg"),
    (b"%PDF-1.7\n", "application/pdf"),
    (b"GIF89a\x01\x00", "image/gif"),
    (b"plain text, \xc3\xa1", "text/plain"),
    (b"\x00\x01\x02\x03garbage", None),
])
def test_sniff(head: bytes, mime: str | None) -> None:
    assert sniff_mime(head) == mime


def test_refine() -> None:
    assert refine("application/pdf", "application/pdf") == "application/pdf"
    assert refine("application/pdf", None) == "application/pdf"
    assert refine("application/pdf", "application/octet-stream") == "application/pdf"
    assert refine("application/pdf", "image/png") is None
    assert refine("image/jpeg", "image/jpg") == "image/jpeg"
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert refine("application/zip", docx) == docx
    assert refine("text/plain", "text/csv; charset=utf-8") == "text/csv"
