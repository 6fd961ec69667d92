"""Device frames as the WebSocket endpoint hands them to the simulator (no sockets)."""

from __future__ import annotations

from typing import Any

import orjson

from wa_simulator.app import _handle_frame
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
