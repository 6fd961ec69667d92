"""The gateway adds ``qrImage`` to ``session.qr.updated`` frames on their way out (never to the stored event)."""

from __future__ import annotations

import base64

import orjson

from ws_gateway.hub import with_qr_image


def test_qr_frames_gain_a_png_data_url_and_other_frames_pass_unchanged() -> None:
    frame = orjson.dumps({"type": "session.qr.updated", "sessionId": "s", "eventId": "e", "occurredOn": "t",
                          "payload": {"tenantId": "a", "qr": "2@abc,def", "expiresAt": "t"}})
    out = orjson.loads(with_qr_image(frame))
    image = out["payload"].pop("qrImage")
    assert out == orjson.loads(frame)
    assert image.startswith("data:image/png;base64,")
    assert base64.b64decode(image.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for odd in (b"not json", orjson.dumps({"type": "session.qr.updated", "payload": {"qr": None}}),
                orjson.dumps({"type": "session.qr.updated"})):
        assert with_qr_image(odd) == odd
