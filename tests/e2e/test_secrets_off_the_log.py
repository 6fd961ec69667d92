"""QR and pairing codes never reach the event log kept forever, while clients get them exactly as before.

A session is linked by QR (the simulator shows one, the test scans it) and another by pairing code; then
every record of the session event topic is read: none contains a QR or a pairing code, though the
WebSocket delivered the QR (with ``qrImage``) and the API answered the pairing code. The codes are on the
short-retention secrets topic, as the whole copies of their (redacted) events.
"""

from __future__ import annotations

import httpx
import orjson

from tests.conftest import Stack, Tenant
from tests.e2e.conftest import link_session, new_phone
from tests.support.clients import WsCollector, eventually
from zapstream_contracts import secrets
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics, read_all


async def test_codes_reach_clients_but_not_the_event_log(stack: Stack, tenant: Tenant, kafka: KafkaSettings,
                                                         ws_url) -> None:  # type: ignore[no-untyped-def]
    topics = Topics.from_settings(kafka)
    async with WsCollector(ws_url(tenant)) as ws, httpx.AsyncClient(base_url=stack.sim_url, timeout=10) as sim:
        sid, _ = await link_session(stack, tenant, ws)
        qr_frames = [e for e in ws.of_type("session.qr.updated") if e["sessionId"] == sid]
        # Seed 001's frame, with the gateway's qrImage, as before.
        assert qr_frames and all(set(e["payload"]) == {"tenantId", "qr", "expiresAt", "qrImage"} for e in qr_frames)
        codes = {e["payload"]["qr"] for e in qr_frames}

        # A second session linked by pairing code: the API answers the code, the socket shows the success
        # with it (as before); the event log keeps the success without it.
        other = (await tenant.http.post("/sessions", json={})).json()["sessionId"]
        await ws.wait_for(lambda e: e["type"] == "session.qr.updated" and e["sessionId"] == other)
        paired = await tenant.http.post(f"/sessions/{other}/pair-code", json={"phone": new_phone()})
        assert paired.status_code == 200, paired.text
        pair_code = paired.json()["code"]
        success = await ws.wait_for(lambda e: e["type"] == "session.command.succeeded" and e["sessionId"] == other
                                    and e["payload"]["commandType"] == "session.request_pair_code")
        assert success["payload"]["result"]["code"] == pair_code
        assert (await sim.post("/control/pair", json={"code": pair_code})).status_code == 200
        await ws.wait_for(lambda e: e["type"] == "session.status.connected" and e["sessionId"] == other)
        codes |= {e["payload"]["qr"] for e in ws.of_type("session.qr.updated") if e["sessionId"] == other}

    # Nowhere on the event log: not in a value, not in a header.
    log = await read_all(kafka.bootstrap_servers, topics.session_events)
    mine = [r for r in log if r.key in (sid.encode(), other.encode())]
    qr_events = [r for r in mine if dict(r.headers).get("ce_type") == b"session.qr.updated"]
    assert qr_events and all(dict(r.headers).get(secrets.REDACTED_HEADER) == b"true" for r in qr_events)
    for record in mine:
        raw = record.value + b"".join(v for _, v in record.headers)
        for code in (*codes, pair_code):
            assert code.encode() not in raw, (record.offset, code)
    assert all("qr" not in orjson.loads(r.value)["payload"] for r in qr_events)

    # The secrets topic has the whole copies: same eventId as the redacted events, with the codes.
    async def secret_copies() -> list[dict[str, object]] | None:
        found = [orjson.loads(r.value) for r in await read_all(kafka.bootstrap_servers, topics.session_secrets)
                 if r.key in (sid.encode(), other.encode())]
        return found or None

    copies = await eventually(secret_copies)
    assert {c["eventId"] for c in copies if c["type"] == "session.qr.updated"} == \
        {orjson.loads(r.value)["eventId"] for r in qr_events}
    assert codes <= {c["payload"]["qr"] for c in copies if c["type"] == "session.qr.updated"}  # type: ignore[index]
    assert any(c["type"] == "session.command.succeeded" and c["payload"]["result"]["code"] == pair_code  # type: ignore[index]
               for c in copies)

    # GET /commands/{id} still shows the code (the projector takes it from the secrets topic).
    outcome = (await tenant.http.get(f"/commands/{paired.json()['commandId']}")).json()
    assert outcome["result"] == {"code": pair_code, "phone": outcome["result"]["phone"]}


async def test_the_api_shows_the_current_qr_from_the_secrets_topic(stack: Stack, tenant: Tenant,
                                                                   ws_url) -> None:  # type: ignore[no-untyped-def]
    async with WsCollector(ws_url(tenant)) as ws:
        sid = (await tenant.http.post("/sessions", json={})).json()["sessionId"]
        await ws.wait_for(lambda e: e["type"] == "session.qr.updated" and e["sessionId"] == sid)
        shown = {e["payload"]["qr"] for e in ws.of_type("session.qr.updated") if e["sessionId"] == sid}

        async def has_qr() -> dict[str, object] | None:
            got = await tenant.http.get(f"/sessions/{sid}")
            view: dict[str, object] = got.json()
            return view if got.status_code == 200 and view["qr"] else None

        view = await eventually(has_qr)
        assert view["status"] == "qr_pending" and str(view["qrImage"]).startswith("data:image/png;base64,")
        # One the socket showed (it may have rotated since the first).
        assert view["qr"] in shown | {e["payload"]["qr"] for e in ws.of_type("session.qr.updated")}
