"""The gateway adds ``qrImage`` to ``session.qr.updated`` frames on their way out (never to the stored event);
seed 002's socket and seed 003's Socket.IO bridge rename them into their own frames."""

from __future__ import annotations

import base64

import orjson

from command_api.seed003 import realtime
from ws_gateway.hub import decode, with_qr_image
from ws_gateway.seed002 import translate
from zapstream_contracts.envelope import Envelope


def test_qr_frames_gain_a_png_data_url_and_other_frames_pass_unchanged() -> None:
    frame = orjson.dumps({"type": "session.qr.updated", "sessionId": "s", "eventId": "e", "occurredOn": "t",
                          "payload": {"tenantId": "a", "qr": "2@abc,def", "expiresAt": "t"}})
    sent = with_qr_image(frame)
    out = orjson.loads(sent)
    image = out["payload"].pop("qrImage")
    assert sent == orjson.dumps(orjson.loads(frame) | {"payload": out["payload"] | {"qrImage": image}})
    assert out == orjson.loads(frame)
    assert image.startswith("data:image/png;base64,")
    assert base64.b64decode(image.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for odd in (b"not json", orjson.dumps({"type": "session.qr.updated", "payload": {"qr": None}}),
                orjson.dumps({"type": "session.qr.updated"})):
        assert with_qr_image(odd) == odd


def test_seed_002_frames_are_read_through_the_contract() -> None:
    def env(type_: str, payload: dict[str, object]) -> Envelope:
        decoded = decode(orjson.dumps({"type": type_, "sessionId": "s", "eventId": "e", "occurredOn": "t",
                                       "payload": {"tenantId": "a", **payload}}))
        assert decoded is not None
        return decoded

    assert translate(env("session.qr.updated", {"qr": "2@abc", "expiresAt": "t"}), set()) == (
        '{"event":"qr","data":"2@abc"}', False)
    assert translate(env("session.status.connected", {"phone": "1", "connectedAt": "t"}), set()) == (
        '{"event":"status","data":"connected"}', True)
    failed = {"commandId": "c1", "commandType": "session.start", "code": "already_connected", "reason": "r",
              "retryable": False}
    assert translate(env("session.command.failed", failed), {"c1"}) == (
        '{"event":"status","data":"already_connected"}', True)
    assert translate(env("session.command.failed", failed | {"code": "boom"}), {"c1"}) == (
        '{"event":"error","data":"r"}', False)
    assert translate(env("session.command.failed", failed), {"other"}) == (None, False)
    assert translate(env("session.qr.updated", {"qr": None}), set()) == (None, False)


def test_seed_003_bridge_reads_the_gateway_frames_through_the_contract() -> None:
    def frame(type_: str, payload: dict[str, object]) -> str:
        return orjson.dumps({"type": type_, "sessionId": "s", "eventId": "e", "occurredOn": "t",
                             "payload": {"tenantId": "a", **payload}}).decode()

    shown = with_qr_image(frame("session.qr.updated", {"qr": "2@abc", "expiresAt": "t"}).encode()).decode()
    [(qr, image), status] = realtime.translate(shown)
    assert qr == "qr" and image.startswith("data:image/png;base64,")
    assert status == ("session_status", {"status": "qr_pending", "sessionId": "s"})
    assert realtime.translate(frame("session.qr.updated", {"qr": "2@abc", "expiresAt": "t"})) == []
    assert realtime.translate(frame("session.status.connected", {"phone": "595981", "connectedAt": "t"})) == [
        ("session_status", {"status": "connected", "sessionId": "s", "phone": "595981"})]
    assert realtime.translate(frame("session.status.logged_out", {"reason": "x", "loggedOutAt": "t"})) == [
        ("session_status", {"status": "logged_out", "sessionId": "s", "reason": "x"})]
    session = {"id": "s", "tenantId": "a", "name": "n", "status": "qr_pending", "phone": None, "qr": "2@abc",
               "qrExpiresAt": "t", "connectedAt": None, "disconnectedAt": None, "disconnectedReason": None,
               "createdAt": "t", "updatedAt": "t", "qrImage": "data:image/png;base64,AA"}
    assert realtime.translate(frame("session.snapshot", {"session": session})) == [
        ("session_status", {"status": "qr_pending", "sessionId": "s", "phone": None}),
        ("qr", "data:image/png;base64,AA")]
    assert realtime.translate(frame("session.snapshot", {"session": None})) == []
    assert realtime.translate("not json") == []
    assert realtime.translate(frame("session.status.connected", {})) == []
