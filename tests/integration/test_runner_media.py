"""The runner's media pipeline against the real S3 server and real ffmpeg (the driver is a recording fake).

Covers what the e2e tests cannot provoke through the API (which refuses undecodable audio up
front): a failed conversion is a ``conversion_failed`` with ffmpeg's reason, and scratch files
never outlive a send or a receive, whether it worked or not.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from session_runner.drivers import port as d
from session_runner.media import MediaFailed, MediaPipeline
from tests.support import media_samples as samples
from zapstream_contracts import payloads as p
from zapstream_platform.settings import S3Settings
from zapstream_platform.storage import MediaStore


class RecordingDriver:
    """Just enough of the port: remembers what it was asked to send and serves fixed bytes."""

    supports_client_message_ids = True

    def __init__(self, serve: bytes = b"") -> None:
        self.sent: list[tuple[d.OutgoingMedia, bytes]] = []
        self.serve = serve

    async def send_media(self, session_id: str, to_jid: str, media: d.OutgoingMedia, *, message_id: str,
                         reply_to_id: str | None = None, forwarded: bool = False) -> d.SendResult:
        self.sent.append((media, await asyncio.to_thread(Path(media.path).read_bytes)))
        return d.SendResult(message_id=message_id, timestamp=1)

    async def download_media(self, session_id: str, media: d.IncomingMedia, dest_path: str) -> int:
        if not self.serve:
            raise d.DriverError("gone from the media servers")
        await asyncio.to_thread(Path(dest_path).write_bytes, self.serve)
        return len(self.serve)


@pytest.fixture
async def store() -> AsyncIterator[MediaStore]:
    s = MediaStore(S3Settings())
    await s.ensure_bucket()
    yield s
    s.close()


@pytest.fixture
def pipeline(store: MediaStore, tmp_path: Path) -> MediaPipeline:
    return MediaPipeline(store, scratch_root=str(tmp_path))


async def put(store: MediaStore, tenant: str, name: str, data: bytes, mime: str) -> str:
    key = f"tenants/{tenant}/uploads/{uuid.uuid4()}/{name}"

    async def one() -> AsyncIterator[bytes]:
        yield data

    await store.put_stream(key, one(), mime)
    return key


def intent(tenant: str, key: str, kind: str, mime: str, size: int, ptt: bool = False) -> p.SendRequested:
    return p.SendRequested(
        tenant_id=tenant, command_id=str(uuid.uuid4()), message_id="3EB0" + uuid.uuid4().hex[:16].upper(),
        to="51911111111@s.whatsapp.net", text="", media=p.MediaRef(kind=kind, key=key, mime=mime, size=size,
                                                                    file_name="f", ptt=ptt),  # type: ignore[arg-type]
    )


async def test_voice_note_is_converted_stored_and_cleaned(pipeline: MediaPipeline, store: MediaStore,
                                                          tmp_path: Path) -> None:
    tenant, sid = f"t{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    mp3 = samples.mp3(2)
    key = await put(store, tenant, "memo.mp3", mp3, "audio/mpeg")
    driver = RecordingDriver()
    send = intent(tenant, key, "audio", "audio/mpeg", len(mp3), ptt=True)
    async with pipeline.outgoing(tenant, sid, send) as prepared:
        result = await driver.send_media(sid, send.to, prepared.outgoing, message_id=send.message_id)
        entry = await pipeline.keep_sent(prepared, result.message_id, send.to)
    media, sent = driver.sent[0]
    assert media.ptt and media.mime == "audio/ogg; codecs=opus" and sent[:4] == b"OggS"
    assert entry.key and entry.key.endswith(".ogg") and f"/sessions/{sid}/messages/{send.message_id}/" in entry.key
    head = await store.head(entry.key)
    assert head is not None and head.size == len(sent)
    assert os.listdir(tmp_path) == []  # scratch removed


async def test_failed_conversion_is_a_reasoned_failure_and_leaves_nothing(pipeline: MediaPipeline,
                                                                          store: MediaStore, tmp_path: Path) -> None:
    tenant, sid = f"t{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    junk = b"ID3" + os.urandom(4000)  # looks like an mp3 to a sniffer, decodes as nothing
    key = await put(store, tenant, "bad.mp3", junk, "audio/mpeg")
    send = intent(tenant, key, "audio", "audio/mpeg", len(junk), ptt=True)
    with pytest.raises(MediaFailed) as failed:
        async with pipeline.outgoing(tenant, sid, send):
            pytest.fail("must not get this far")
    assert failed.value.code == "conversion_failed" and "voice note" in str(failed.value)
    assert os.listdir(tmp_path) == []
    assert await store.keys(f"tenants/{tenant}/sessions/") == []


async def test_missing_upload_is_media_unavailable(pipeline: MediaPipeline, tmp_path: Path) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    send = intent(tenant, f"tenants/{tenant}/uploads/{uuid.uuid4()}/gone.png", "image", "image/png", 10)
    with pytest.raises(MediaFailed) as failed:
        async with pipeline.outgoing(tenant, str(uuid.uuid4()), send):
            pytest.fail("must not get this far")
    assert failed.value.code == "media_unavailable"
    assert os.listdir(tmp_path) == []


async def test_incoming_media_is_sniffed_probed_and_stored(pipeline: MediaPipeline, store: MediaStore,
                                                           tmp_path: Path) -> None:
    tenant, sid = f"t{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    video = samples.mp4(2, 160, 120)
    msg = d.IncomingMessage(
        seq=1, id="MSG1", chat_jid="51922222222@s.whatsapp.net", sender_jid="51922222222@s.whatsapp.net",
        from_me=False, timestamp=1, text="look",
        media=d.IncomingMedia(kind="video", mime="application/octet-stream", handle="x", size=len(video)),
    )
    entry = await pipeline.store_incoming(RecordingDriver(video), tenant, sid, msg)
    assert entry.mime == "video/mp4" and entry.size == len(video)
    assert (entry.width, entry.height, entry.duration) == (160, 120, 2)
    assert entry.key == f"tenants/{tenant}/sessions/{sid}/messages/MSG1/MSG1.mp4"
    assert os.listdir(tmp_path) == []
    with pytest.raises(MediaFailed) as failed:
        await pipeline.store_incoming(RecordingDriver(b""), tenant, sid, msg)
    assert failed.value.code == "media_unavailable" and "gone" in str(failed.value)
    assert os.listdir(tmp_path) == []
