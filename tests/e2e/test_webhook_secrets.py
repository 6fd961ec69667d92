"""Webhook receivers get the QR code and the pairing code, though the event log no longer keeps them.

A session is linked by QR and another by pairing code, through the whole stack (simulator, runner, API,
projector, gateway) plus the webhooks service as a process and a real local HTTP receiver. The receiver
gets every ``session.qr.updated`` with its ``qr`` and the pairing success with ``result.code``: once per
event id (the event log's redacted copy is never sent as well), signed, in the session's order. Once
delivered, the rows keep no code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from command_api.webhooks.repository import WebhooksRepository
from command_api.webhooks.schemas import EndpointCreate
from command_api.webhooks.service import WebhooksConfig, WebhooksService
from tests.conftest import Stack, Tenant, service_env
from tests.e2e.conftest import link_session, new_phone
from tests.integration.test_webhooks import Hit, Receiver, serving, verified
from tests.support.clients import WsCollector, eventually
from tests.support.stack import Proc, free_port
from zapstream_contracts import secrets
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics, read_all

PAIR_CODE = "session.request_pair_code"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with serving() as rec:
        yield rec


@pytest.fixture(scope="module")
def webhooks_proc(stack: Stack, infra: str, kafka: KafkaSettings, run_id: str) -> Iterator[Proc]:
    env = service_env("WEBHOOKS_", kafka, infra) | {
        "WEBHOOKS_GROUP_ID": f"zt-{run_id}-webhooks-secrets",
        "WEBHOOKS_POLL_INTERVAL_S": "0.1",
        "WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true", "WEBHOOKS_ALLOW_HTTP": "true",
        "WEBHOOKS_METRICS_PORT": str(free_port()),
    }
    proc = Proc("webhooks", "webhooks", env)
    proc.start()
    yield proc
    proc.stop()


async def ready(proc: Proc) -> None:
    port = proc.env["WEBHOOKS_METRICS_PORT"]

    async def assigned() -> bool:
        async with httpx.AsyncClient() as client:
            try:
                return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

    await eventually(assigned, timeout=60, interval=0.3)


def of_session(hits: list[Hit], sid: str) -> list[dict[str, Any]]:
    return [body for body in (orjson.loads(h.body) for h in hits) if body["sessionId"] == sid]


async def test_receivers_get_qr_and_pairing_codes_once_per_event(
    stack: Stack, tenant: Tenant, kafka: KafkaSettings, pg: asyncpg.Pool, receiver: Receiver, webhooks_proc: Proc,
    ws_url: Callable[[Tenant], str],
) -> None:
    # The slice itself (the stack's API refuses loopback receivers, as it should in production).
    service = WebhooksService(WebhooksRepository(pg), WebhooksConfig(allow_private_networks=True, allow_http=True))
    endpoint = await service.create(tenant.id, EndpointCreate(url=receiver.url("/secrets"), event_types=[
        "session.qr.updated", "session.status.*", "session.command.succeeded"]))
    await ready(webhooks_proc)
    topics = Topics.from_settings(kafka)

    async with WsCollector(ws_url(tenant)) as ws, httpx.AsyncClient(base_url=stack.sim_url, timeout=10) as sim:
        sid, _ = await link_session(stack, tenant, ws)
        shown = {e["payload"]["qr"] for e in ws.of_type("session.qr.updated") if e["sessionId"] == sid}

        other = (await tenant.http.post("/sessions", json={})).json()["sessionId"]
        await ws.wait_for(lambda e: e["type"] == "session.qr.updated" and e["sessionId"] == other)
        paired = await tenant.http.post(f"/sessions/{other}/pair-code", json={"phone": new_phone()})
        assert paired.status_code == 200, paired.text
        pair_code = paired.json()["code"]
        assert (await sim.post("/control/pair", json={"code": pair_code})).status_code == 200
        await ws.wait_for(lambda e: e["type"] == "session.status.connected" and e["sessionId"] == other)

    async def both_connected() -> bool:
        bodies = of_session(receiver.accepted("/secrets"), sid) + of_session(receiver.accepted("/secrets"), other)
        return bool(sum(b["type"] == "session.status.connected" for b in bodies) == 2)

    await eventually(both_connected, timeout=90, interval=0.3)

    # What the event log says happened: the redacted QR events (and the pairing success) of both sessions.
    log = [r for r in await read_all(kafka.bootstrap_servers, topics.session_events)
           if r.key in (sid.encode(), other.encode())]
    redacted = {dict(r.headers)["ce_id"].decode(): dict(r.headers)["ce_type"].decode()
                for r in log if secrets.REDACTED_HEADER in dict(r.headers)}
    qr_ids = {eid for eid, type_ in redacted.items() if type_ == "session.qr.updated"}
    assert qr_ids and any(type_ == "session.command.succeeded" for type_ in redacted.values())

    hits = receiver.all_hits("/secrets")
    for hit in hits:
        verified(hit, endpoint["secret"])
    # Once per event id: no retry was needed, and no redacted duplicate was sent (same id or another).
    per_id = Counter(h.headers["webhook-id"] for h in hits)
    assert all(n == 1 for n in per_id.values()), per_id
    bodies = of_session(hits, sid) + of_session(hits, other)
    qr_bodies = [b for b in bodies if b["type"] == "session.qr.updated"]
    assert {b["eventId"] for b in qr_bodies} == qr_ids
    # Each with its code, in the shape clients have always had (seed 001's frame, without the gateway's image).
    assert all(set(b["payload"]) == {"tenantId", "qr", "expiresAt"} for b in qr_bodies), qr_bodies
    assert shown <= {b["payload"]["qr"] for b in qr_bodies if b["sessionId"] == sid}
    pairing = [b for b in bodies if b["type"] == "session.command.succeeded" and b["payload"]["commandType"] == PAIR_CODE]
    assert [b["payload"]["result"]["code"] for b in pairing] == [pair_code]

    # In the session's order: the QR codes the linked session showed came before its connection.
    order = [b["type"] for b in of_session(receiver.accepted("/secrets"), sid)]
    assert order.index("session.status.connected") > max(i for i, t in enumerate(order) if t == "session.qr.updated")

    # Delivered rows keep the events, not their codes.
    async def cleared() -> list[bytes] | None:
        rows = await pg.fetch("SELECT status, body FROM webhook_deliveries WHERE tenant_id = $1 AND event_id = ANY($2)",
                              tenant.id, list(redacted))
        done = all(r["status"] == "delivered" for r in rows) and len(rows) == len(redacted)
        return [bytes(r["body"]) for r in rows] if done else None

    kept = await eventually(cleared, timeout=30, interval=0.3)
    codes = {b["payload"]["qr"] for b in qr_bodies} | {pair_code}
    for body in kept:
        assert not any(code.encode() in body for code in codes), body
        assert orjson.loads(body)["eventId"] in redacted
