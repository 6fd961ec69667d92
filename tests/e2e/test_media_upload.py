"""POST /media against the running stack and the real S3 server (S3Proxy, ``infra/bin/s3.sh``).

Needs ``command_api.media`` wired into the command API (see docs/media.md) and the S3 server up;
fails, never skips, otherwise.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import Tenant
from tests.support import media_samples as samples
from zapstream_platform.settings import S3Settings
from zapstream_platform.storage import MediaStore

PNG = samples.png(64, 48)
PDF = b"%PDF-1.7\n" + os.urandom(4096)
BIG_PDF = b"%PDF-1.7\n" + os.urandom(9 * 1024 * 1024)  # over one S3 part: multipart
MP4 = samples.mp4(2, 160, 120)
FAKE_MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + os.urandom(64 * 1024)


@pytest.fixture
async def media_http(tenant: Tenant) -> httpx.AsyncClient:
    return tenant.http


@pytest.fixture
async def media_store() -> AsyncIterator[MediaStore]:
    settings = S3Settings()  # the command API's defaults: S3Proxy on 127.0.0.1:19000, bucket zapstream-media
    try:
        socket.create_connection(("127.0.0.1", 19000), timeout=2).close()
    except OSError as exc:
        pytest.fail(f"S3 server not reachable ({exc}); run: bash infra/bin/s3.sh up && bash infra/bin/s3.sh wait",
                    pytrace=False)
    store = MediaStore(settings)
    await store.ensure_bucket()
    yield store
    store.close()


async def test_upload_each_kind_and_fetch_by_url(media_http: httpx.AsyncClient, tenant: Tenant,
                                                 media_store: MediaStore) -> None:
    for kind, name, data, declared, mime in [
        ("image", "photo.png", PNG, "image/png", "image/png"),
        ("document", "invoice.pdf", BIG_PDF, "application/pdf", "application/pdf"),
        ("video", "clip.mp4", MP4, "video/mp4", "video/mp4"),
        ("audio", "voice.ogg", samples.ogg_opus(2), None, "audio/ogg"),
        ("sticker", "s.webp", samples.webp(512, 512), "image/webp", "image/webp"),
    ]:
        files = {"file": (name, data, declared or "application/octet-stream")}
        r = await media_http.post("/media", data={"kind": kind}, files=files)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["kind"] == kind and body["mime"] == mime and body["size"] == len(data)
        assert body["key"] == f"tenants/{tenant.id}/uploads/{body['mediaId']}/{name}"
        if kind in ("image", "video", "sticker"):
            assert body["width"] and body["height"], body
        if kind in ("video", "audio"):
            assert body["duration"] == 2, body
        described = (await media_http.get(f"/media/{body['mediaId']}")).json()
        assert described["key"] == body["key"] and described["size"] == len(data)
        async with httpx.AsyncClient(timeout=30) as plain:
            got = await plain.get(body["url"])
        assert got.status_code == 200
        assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()


async def test_rejections_store_nothing(media_http: httpx.AsyncClient, tenant: Tenant,
                                        media_store: MediaStore) -> None:
    big_image = b"\xff\xd8\xff\xe0" + os.urandom(5 * 1024 * 1024)
    cases = [
        # oversized for its kind
        ({"kind": "image"}, ("big.jpg", big_image, "image/jpeg"), 413),
        ({"kind": "sticker"}, ("s.webp", b"RIFF\x00\x00\x00\x00WEBPVP8 " + os.urandom(600 * 1024), "image/webp"), 413),
        # a lying declared type: a PDF declared as a PNG
        ({"kind": "image"}, ("fake.png", PDF, "image/png"), 415),
        # the bytes are fine but not allowed for the kind
        ({"kind": "image"}, ("doc.pdf", PDF, "application/pdf"), 415),
        ({"kind": "sticker"}, ("p.png", PNG, "image/png"), 415),
        # unrecognisable bytes
        ({"kind": "document"}, ("x.bin", b"\x00\x01\x02\x03" * 100, "application/octet-stream"), 415),
        ({"kind": "gif"}, ("p.png", PNG, "image/png"), 422),
        # the right magic number but not a playable video (a renamed or truncated file)
        ({"kind": "video"}, ("fake.mp4", FAKE_MP4, "video/mp4"), 415),
    ]
    for data, file, status in cases:
        r = await media_http.post("/media", data=data, files={"file": file})
        assert r.status_code == status, (data, file[0], r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    # kind after the file: the kind's limit is applied at the end and the object deleted
    r = await media_http.post("/media", files=[("file", ("big.jpg", big_image, "image/jpeg")),
                                               ("kind", (None, b"image"))])
    assert r.status_code == 413, r.text
    assert await media_store.keys(f"tenants/{tenant.id}/") == []


async def test_session_scope_and_auth(media_http: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await media_http.post("/media", data={"kind": "image", "sessionId": "00000000-0000-0000-0000-000000000000"},
                              files={"file": ("p.png", PNG, "image/png")})
    assert r.status_code == 404, r.text
    async with httpx.AsyncClient(base_url=str(media_http.base_url), timeout=10,
                                 transport=getattr(media_http, "_transport", None)) as anon:
        r = await anon.post("/media", data={"kind": "image"}, files={"file": ("p.png", PNG, "image/png")})
    assert r.status_code == 401
