"""Media end to end: every kind sent and received, voice notes from mp3, PDFs by base64, albums.

Real services, the real S3 server and the simulator (which keeps real bytes on its media
endpoint). What a contact receives is checked byte for byte (sha256) against what was
uploaded; what a contact sends is checked byte for byte at the URL the API hands out.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import httpx
import orjson

from tests.e2e.conftest import Linked, new_phone
from tests.support import media_samples as samples
from tests.support.clients import eventually

SEND_CASES: list[tuple[str, str, bytes, str, str | None]] = [
    # kind, file name, bytes, expected mime, caption
    ("image", "photo.jpg", samples.jpeg(320, 240), "image/jpeg", "Foto"),
    ("video", "clip.mp4", samples.mp4(2, 160, 120), "video/mp4", "a clip"),
    ("audio", "song.mp3", samples.mp3(2), "audio/mpeg", None),
    ("document", "invoice.pdf", samples.pdf(), "application/pdf", "your invoice"),
    ("sticker", "sticker.webp", samples.webp(512, 512), "image/webp", None),
]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload(linked: Linked, kind: str, name: str, data: bytes) -> dict[str, Any]:
    r = await linked.tenant.http.post("/media", data={"kind": kind, "sessionId": linked.sid},
                                      files={"file": (name, data, "application/octet-stream")})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def fetch(url: str) -> bytes:
    async with httpx.AsyncClient(timeout=30) as plain:
        r = await plain.get(url)
    assert r.status_code == 200, r.text
    return r.content


async def inbox_message(linked: Linked, phone: str, message_id: str) -> dict[str, Any]:
    async def landed() -> dict[str, Any] | None:
        r = await linked.sim.get(f"/control/accounts/{phone}/inbox")
        found = [m for m in r.json()["messages"] if m["id"] == message_id]
        return found[0] if found else None

    found: dict[str, Any] = await eventually(landed)
    return found


async def sim_bytes(linked: Linked, url: str) -> bytes:
    r = await linked.sim.get(url)
    assert r.status_code == 200, r.text
    return r.content


async def media_event(linked: Linked, message_id: str) -> dict[str, Any]:
    event = await linked.ws.wait_for(
        lambda e: e["type"] == "session.messages.media"
        and any(m["messageId"] == message_id for m in e["payload"]["media"])
    )
    assert set(event["payload"]) == {"tenantId", "mediaCount", "media", "source"}
    entry: dict[str, Any] = next(m for m in event["payload"]["media"] if m["messageId"] == message_id)
    assert {"messageId", "chatJid", "kind", "url", "mime", "size", "width", "height", "duration"} <= set(entry)
    return entry


async def read_model_media(linked: Linked, jid: str, message_id: str) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        m = await linked.message(jid, message_id)
        return m if m.get("media") else None

    found: dict[str, Any] = await eventually(ready)
    return found


async def test_send_each_kind(linked: Linked) -> None:
    contact = new_phone()
    await linked.quiet_contact(contact)
    jid = f"{contact}@s.whatsapp.net"
    for kind, name, data, mime, caption in SEND_CASES:
        up = await upload(linked, kind, name, data)
        body: dict[str, Any] = {"media": {"mediaId": up["mediaId"]}}
        if caption:
            body["caption"] = caption
        accepted, upsert = await linked.send(contact, **body)
        summary = upsert["payload"]["messages"][0]
        assert summary["type"] == f"{'sticker' if kind == 'sticker' else kind}Message"
        assert summary.get("text") == caption
        got = await inbox_message(linked, contact, accepted["messageId"])
        assert got["media"]["kind"] == kind and got["media"]["sha256"] == sha(data), got
        assert got["text"] in (caption, None, "")
        assert sha(await sim_bytes(linked, got["media"]["url"])) == sha(data)
        entry = await media_event(linked, accepted["messageId"])
        assert entry["kind"] == kind and entry["mime"] == mime and entry["size"] == len(data)
        assert entry["chatJid"] == jid
        assert sha(await fetch(entry["url"])) == sha(data)
        row = await read_model_media(linked, jid, accepted["messageId"])
        assert row["media"]["kind"] == kind and row["media"]["mime"] == mime
        assert sha(await fetch(row["media"]["url"])) == sha(data)
        if kind in ("image", "video", "sticker"):
            assert row["media"]["width"] and row["media"]["height"], row
        if kind in ("video", "audio"):
            assert row["media"]["duration"] and row["media"]["duration"] >= 2, row
        outcome = await linked.outcome(accepted["commandId"])
        assert outcome["status"] == "succeeded", outcome


async def test_receive_each_kind(linked: Linked) -> None:
    contact = new_phone()
    jid = f"{contact}@s.whatsapp.net"
    for kind, name, data, mime, caption in SEND_CASES:
        media = {"dataBase64": base64.b64encode(data).decode(), "kind": kind, "mime": mime, "fileName": name}
        r = await linked.sim.post("/control/inject", json={"from": contact, "to": linked.phone, "text": caption,
                                                            "media": media})
        assert r.status_code == 200, r.text
        message_id = r.json()["id"]
        upsert = await linked.ws.wait_for(
            lambda e, mid=message_id: e["type"] == "session.messages.upsert"
            and any(m["id"] == mid for m in e["payload"]["messages"])
        )
        summary = next(m for m in upsert["payload"]["messages"] if m["id"] == message_id)
        assert summary["type"] == f"{kind}Message" and summary.get("text") == caption
        entry = await media_event(linked, message_id)
        assert entry["kind"] == kind and entry["mime"] == mime and entry["size"] == len(data), entry
        assert entry["url"] and f"/sessions/{linked.sid}/messages/{message_id}/" in entry["key"]
        assert sha(await fetch(entry["url"])) == sha(data)
        row = await read_model_media(linked, jid, message_id)
        assert sha(await fetch(row["media"]["url"])) == sha(data)
        assert row["type"] == f"{kind}Message" and row["text"] == caption
        if kind in ("image", "video", "sticker"):
            assert row["media"]["width"] and row["media"]["height"], row
        if kind in ("video", "audio"):
            assert row["media"]["duration"], row


async def test_voice_note_from_mp3(linked: Linked) -> None:
    contact = new_phone()
    await linked.quiet_contact(contact)
    up = await upload(linked, "audio", "memo.mp3", samples.mp3(3))
    accepted, upsert = await linked.send(contact, media={"mediaId": up["mediaId"]}, ptt=True)
    assert upsert["payload"]["messages"][0]["type"] == "audioMessage"
    got = await inbox_message(linked, contact, accepted["messageId"])
    assert got["media"]["ptt"] is True and got["media"]["mime"].startswith("audio/ogg"), got
    voice = await sim_bytes(linked, got["media"]["url"])
    assert voice[:4] == b"OggS" and b"OpusHead" in voice[:200]
    ffprobe = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    out, _ = await ffprobe.communicate(voice)
    stream = orjson.loads(out)["streams"][0]
    assert stream["codec_name"] == "opus" and stream["channels"] == 1
    entry = await media_event(linked, accepted["messageId"])
    assert entry["ptt"] is True and entry["mime"] == "audio/ogg" and entry["duration"] in (3, 4)
    assert sha(await fetch(entry["url"])) == sha(voice)


async def test_pdf_by_base64_on_seed_002_route(linked: Linked) -> None:
    contact = new_phone()
    await linked.quiet_contact(contact)
    pdf = samples.pdf()
    r = await linked.tenant.http.post(
        "/api/send-pdf",
        headers={"Authorization": f"Bearer {linked.tenant.key}"},
        json={"sessionId": linked.sid, "to": contact, "pdfBase64": base64.b64encode(pdf).decode()},
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["success"] is True and body["commandId"] and body["messageId"]
    got = await inbox_message(linked, contact, body["messageId"])
    assert got["media"]["kind"] == "document" and got["media"]["fileName"] == "Comprobante.pdf"
    assert got["media"]["sha256"] == sha(pdf)
    assert (await linked.outcome(body["commandId"]))["status"] == "succeeded"

    for bad in ({"sessionId": linked.sid, "to": contact}, {"to": contact, "pdfBase64": "JVBERi0="},
                {"sessionId": linked.sid, "to": contact, "pdfBase64": "not base64!"}):
        r = await linked.tenant.http.post("/api/send-pdf", json=bad)
        assert r.status_code in (400, 422) and r.headers["content-type"].startswith("application/problem+json")
    # Bytes that are not a PDF are refused, not sent as one.
    r = await linked.tenant.http.post("/api/send-pdf", json={
        "sessionId": linked.sid, "to": contact, "pdfBase64": base64.b64encode(samples.png()).decode()})
    assert r.status_code == 415, r.text
    async with httpx.AsyncClient(base_url=str(linked.tenant.http.base_url), timeout=10) as anon:
        r = await anon.post("/api/send-pdf", json={"sessionId": linked.sid, "to": contact, "pdfBase64": "JVBERi0="})
    assert r.status_code == 401


async def test_base64_media_and_album_on_the_regular_route(linked: Linked) -> None:
    contact = new_phone()
    await linked.quiet_contact(contact)
    image = samples.png(80, 60)
    accepted, _ = await linked.send(contact, caption="inline", media={
        "base64": "data:image/png;base64," + base64.b64encode(image).decode(), "kind": "image"})
    got = await inbox_message(linked, contact, accepted["messageId"])
    assert got["media"]["sha256"] == sha(image) and got["text"] == "inline"

    pics = [samples.png(40 + i, 30) for i in range(3)]
    ups = [await upload(linked, "image", f"p{i}.png", pic) for i, pic in enumerate(pics)]
    r = await linked.tenant.http.post(f"/chats/{contact}/messages", json={
        "sessionId": linked.sid, "caption": "three", "media": [{"mediaId": u["mediaId"]} for u in ups]})
    assert r.status_code == 202, r.text
    album = r.json()
    assert len(album["messageIds"]) == 3 and album["messageId"] == album["messageIds"][0]
    landed = [await inbox_message(linked, contact, mid) for mid in album["messageIds"]]
    assert [m["media"]["sha256"] for m in landed] == [sha(p) for p in pics]
    assert landed[0]["text"] == "three" and not landed[1]["text"]
    # Order holds: the album arrives as sent.
    assert [m["timestamp"] for m in landed] == sorted(m["timestamp"] for m in landed)


async def test_media_refusals(linked: Linked) -> None:
    contact = new_phone()
    http = linked.tenant.http
    pdf_up = await upload(linked, "document", "a.pdf", samples.pdf())
    mp3_up = await upload(linked, "audio", "a.mp3", samples.mp3(1))
    wav_up = await upload(linked, "audio", "a.wav", samples.wav(1))
    cases: list[tuple[dict[str, Any], int]] = [
        ({"media": {"mediaId": pdf_up["mediaId"]}, "ptt": True}, 422),  # a voice note must be audio
        ({"media": {"mediaId": mp3_up["mediaId"]}, "caption": "x"}, 422),  # audio has no caption
        ({"media": {"mediaId": wav_up["mediaId"]}}, 415),  # wav only plays as a voice note
        ({"media": [{"mediaId": pdf_up["mediaId"]}, {"mediaId": pdf_up["mediaId"]}]}, 422),  # albums: images
        ({"media": {"mediaId": "00000000-0000-0000-0000-000000000000"}}, 404),
        ({"media": {"url": "https://example.com/cat.jpg"}}, 422),  # not one of ours
        ({"media": {"base64": "aGVsbG8="}}, 422),  # base64 needs a kind
        ({"media": {"base64": base64.b64encode(samples.pdf()).decode(), "kind": "image"}}, 415),
        ({"media": {"mediaId": pdf_up["mediaId"], "url": pdf_up["url"]}}, 422),  # one source only
        ({"caption": "no media"}, 422),
    ]
    for body, status in cases:
        r = await http.post(f"/chats/{contact}/messages", json={"sessionId": linked.sid, **body})
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    # A URL handed out by POST /media works as a reference (seed 000's two steps).
    accepted, _ = await linked.send(contact, media={"url": pdf_up["url"], "kind": "document"})
    assert (await linked.outcome(accepted["commandId"]))["status"] == "succeeded"
    # Another tenant's upload does not exist for this one.
    # (tenant isolation of media ids is covered by test_media_upload and the auth walk)


async def test_media_missing_from_storage_fails_the_command_with_a_reason(linked: Linked) -> None:
    from zapstream_platform.settings import S3Settings
    from zapstream_platform.storage import MediaStore

    contact = new_phone()
    await linked.quiet_contact(contact)
    up = await upload(linked, "image", "gone.png", samples.png())
    store = MediaStore(S3Settings())
    try:
        await store.delete(up["key"])
    finally:
        store.close()
    accepted = (await linked.tenant.http.post(f"/chats/{contact}/messages", json={
        "sessionId": linked.sid, "media": {"mediaId": up["mediaId"]}})).json()
    outcome = await linked.outcome(accepted["commandId"])
    assert outcome["status"] == "failed" and outcome["code"] == "media_unavailable", outcome
    assert "storage" in outcome["reason"]
    failed = await linked.ws.wait_for(
        lambda e: e["type"] == "session.command.failed" and e["payload"]["commandId"] == accepted["commandId"])
    assert failed["payload"]["retryable"] is True
    # The session keeps sending afterwards.
    await asyncio.sleep(0)
    ok, _ = await linked.send(contact, content="still here")
    assert (await linked.outcome(ok["commandId"]))["status"] == "succeeded"


async def test_tenants_never_reach_each_others_media(linked: Linked, tenant_factory: Any) -> None:
    up = await upload(linked, "image", "private.png", samples.png())
    other = await tenant_factory()
    other_sid = (await other.http.post("/sessions", json={})).json()["sessionId"]
    contact = new_phone()
    attempts = [
        ("GET", f"/media/{up['mediaId']}", None, (404,)),
        ("POST", f"/chats/{contact}/messages", {"sessionId": other_sid, "media": {"mediaId": up["mediaId"]}}, (404,)),
        ("POST", f"/chats/{contact}/messages", {"sessionId": other_sid, "media": {"url": up["url"]}}, (422,)),
        ("POST", "/api/send-pdf", {"sessionId": linked.sid, "to": contact,
                                   "pdfBase64": base64.b64encode(samples.pdf()).decode()}, (404,)),
    ]
    for method, path, body, statuses in attempts:
        r = await other.http.request(method, path, json=body)
        assert r.status_code in statuses, (path, r.text)
        assert up["key"] not in r.text and linked.sid not in r.text
