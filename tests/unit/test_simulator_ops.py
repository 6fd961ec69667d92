"""Device frames as the WebSocket endpoint hands them to the simulator, and the media CDN (no sockets)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from wa_simulator.app import _handle_frame, create_app
from wa_simulator.config import Settings
from wa_simulator.core import CLOSE_LOGGED_OUT, CLOSE_NORMAL, Simulator
from wa_simulator.scheduling import ManualScheduler

ALICE, CAROL = "15550000001", "15550000003"


class FakeLink:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None

    def push(self, frame: bytes) -> None:
        self.frames.append(orjson.loads(frame))

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def results(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["op"] == "result"]


def setup() -> tuple[Simulator, FakeLink]:
    sim = Simulator(Settings.model_construct(contact_auto_reply=False), ManualScheduler())
    link = FakeLink()
    sim.attach("s1", link)
    sim.scan(ALICE, session_id="s1")
    return sim, link


def frame(**fields: Any) -> bytes:
    return orjson.dumps(fields)


def test_send_then_duplicate_send() -> None:
    sim, link = setup()
    send = frame(op="send", rid="r1", id="M1", to=f"{CAROL}@s.whatsapp.net", text="hi")
    _handle_frame(sim, "s1", link, send)
    _handle_frame(sim, "s1", link, send.replace(b'"r1"', b'"r2"'))
    first, second = link.results()
    assert first == {
        "op": "result",
        "rid": "r1",
        "ok": True,
        "id": "M1",
        "timestamp": first["timestamp"],
        "duplicate": False,
    }
    assert (second["rid"], second["duplicate"], second["timestamp"]) == ("r2", True, first["timestamp"])


def test_errors_are_answered_not_raised() -> None:
    sim, link = setup()
    _handle_frame(sim, "s1", link, frame(op="send", rid="r1", id="M1", to="12345@g.us", text="x"))
    _handle_frame(sim, "s1", link, frame(op="nope", rid="r2"))
    _handle_frame(sim, "s1", link, b"{not json")
    results = link.results()
    assert [r["ok"] for r in results] == [False, False, False]
    assert "unsupported JID" in results[0]["error"]
    assert results[1]["rid"] == "r2"


def test_ack_frame_drops_retained_events() -> None:
    sim, link = setup()
    last = sim.devices["s1"].last_seq
    _handle_frame(sim, "s1", link, frame(op="ack", seq=last))
    assert len(sim.devices["s1"].retained) == 0
    assert link.results() == []  # acks are not answered


def test_logout_answers_then_sends_logged_out_then_closes() -> None:
    sim, link = setup()
    _handle_frame(sim, "s1", link, frame(op="logout", rid="r9"))
    tail = link.frames[-2:]
    assert tail[0] == {"op": "result", "rid": "r9", "ok": True}
    assert tail[1]["type"] == "logged_out"
    assert link.closed is not None and link.closed[0] == CLOSE_LOGGED_OUT


def test_disconnect_closes_normally_and_keeps_the_link() -> None:
    sim, link = setup()
    _handle_frame(sim, "s1", link, frame(op="disconnect", rid="r1"))
    assert link.results()[-1]["ok"] is True
    assert link.closed is not None and link.closed[0] == CLOSE_NORMAL
    assert sim.devices["s1"].phone == ALICE


def test_frames_from_a_replaced_connection_are_refused() -> None:
    sim, old = setup()
    sim.attach("s1", FakeLink())
    _handle_frame(sim, "s1", old, frame(op="send", rid="r1", id="M1", to=f"{CAROL}@s.whatsapp.net", text="x"))
    assert old.results()[-1]["ok"] is False
    assert sim.inbox(CAROL) == []


# ------------------------------------------------------------------ media


def test_send_frame_with_media() -> None:
    sim, link = setup()
    stored = sim.add_media("ab" * 16, 4, hashlib.sha256(b"data").hexdigest(), "image/jpeg")
    media = {"url": stored.url, "kind": "image", "mime": "image/jpeg", "size": 4, "sha256": stored.sha256}
    to = f"{CAROL}@s.whatsapp.net"
    _handle_frame(sim, "s1", link, frame(op="send", rid="r1", id="M1", to=to, text="cap", media=media))
    _handle_frame(sim, "s1", link, frame(op="send", rid="r2", id="M1", to=to, text="cap", media=media))
    bad = {**media, "size": 5}
    _handle_frame(sim, "s1", link, frame(op="send", rid="r3", id="M2", to=to, text=None, media=bad))

    first, second, refused = link.results()
    assert (first["ok"], first["duplicate"], second["duplicate"]) == (True, False, True)
    assert refused["ok"] is False and "media.size" in refused["error"]
    [entry] = sim.inbox(CAROL)
    assert (entry["text"], entry["media"]["sha256"], entry["media"]["kind"]) == (
        "cap",
        stored.sha256,
        "image",
    )


@pytest.fixture
async def media_app(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = Settings.model_construct(
        contact_auto_reply=False, media_dir=str(tmp_path / "media"), max_media_bytes=4096
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        yield app, client


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_upload_is_streamed_to_disk_and_served_back(
    media_app: tuple[FastAPI, httpx.AsyncClient], tmp_path: Path
) -> None:
    _app, client = media_app
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 12

    up = await client.post("/v1/media", content=_chunks(data, 500), headers={"content-type": "image/png"})

    assert up.status_code == 200, up.text
    answer = up.json()
    assert answer == {"url": answer["url"], "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert answer["url"].startswith("/v1/media/")
    [stored] = (tmp_path / "media").iterdir()
    assert stored.read_bytes() == data and stored.name == answer["url"].rsplit("/", 1)[1]
    down = await client.get(answer["url"])
    assert (down.status_code, down.content, down.headers["content-type"]) == (200, data, "image/png")
    assert (await client.get("/v1/media/" + "0" * 32)).status_code == 404


async def test_oversized_and_empty_uploads_are_refused_and_leave_nothing(
    media_app: tuple[FastAPI, httpx.AsyncClient], tmp_path: Path
) -> None:
    app, client = media_app
    declared = await client.post("/v1/media", content=bytes(4097))  # Content-Length says too much
    streamed = await client.post("/v1/media", content=_chunks(bytes(5000), 1000))  # chunked: counted
    empty = await client.post("/v1/media", content=b"")

    assert (declared.status_code, streamed.status_code, empty.status_code) == (413, 413, 400)
    assert "cap of 4096" in streamed.json()["error"]
    assert list((tmp_path / "media").iterdir()) == []
    assert app.state.sim.media == {}
    assert (await client.post("/v1/media", content=bytes(4096))).status_code == 200  # the cap itself is fine


async def test_inject_with_media_stores_it_and_reset_forgets_it(
    media_app: tuple[FastAPI, httpx.AsyncClient], tmp_path: Path
) -> None:
    app, client = media_app
    data = b"%PDF-1.4 a contract"
    body = {
        "from": CAROL,
        "to": ALICE,
        "text": "sign here",
        "media": {
            "dataBase64": base64.b64encode(data).decode(),
            "kind": "document",
            "mime": "application/pdf",
            "fileName": "contract.pdf",
        },
    }

    injected = (await client.post("/control/inject", content=orjson.dumps(body))).json()

    media = injected["media"]
    assert injected["text"] == "sign here"
    assert (media["kind"], media["mime"], media["fileName"], media["ptt"]) == (
        "document",
        "application/pdf",
        "contract.pdf",
        False,
    )
    assert (media["size"], media["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert (await client.get(media["url"])).content == data
    [entry] = (await client.get(f"/control/accounts/{ALICE}/inbox")).json()["messages"]
    assert entry["media"] == media
    await client.post("/control/reset")
    assert (await client.get(media["url"])).status_code == 404
    assert list((tmp_path / "media").iterdir()) == []
    assert app.state.sim.media == {}


async def test_refused_or_duplicate_injected_media_leaves_no_upload(
    media_app: tuple[FastAPI, httpx.AsyncClient], tmp_path: Path
) -> None:
    app, client = media_app
    voice = {"dataBase64": base64.b64encode(b"OggS").decode(), "kind": "audio", "mime": "audio/ogg"}

    async def inject(**fields: Any) -> httpx.Response:
        return await client.post(
            "/control/inject", content=orjson.dumps({"from": CAROL, "to": ALICE, **fields})
        )

    bad_b64 = await inject(media={**voice, "dataBase64": "not base64!"})
    ptt_image = await inject(media={**voice, "kind": "image", "ptt": True})
    bad_phone = await inject(media=voice, to="nope")
    too_big = await inject(media={**voice, "dataBase64": base64.b64encode(bytes(5000)).decode()})
    no_text = await inject()
    first = await inject(id="C1", media={**voice, "ptt": True})
    again = await inject(id="C1", media={**voice, "ptt": True})

    assert [r.status_code for r in (bad_b64, ptt_image, bad_phone, too_big, no_text)] == [
        400,
        400,
        400,
        413,
        400,
    ]
    assert "base64" in bad_b64.json()["error"] and "audio" in ptt_image.json()["error"]
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    assert again.json()["media"]["url"] == first.json()["media"]["url"]
    assert [m.url for m in app.state.sim.media.values()] == [first.json()["media"]["url"]]
    assert len(list((tmp_path / "media").iterdir())) == 1
