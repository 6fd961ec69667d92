"""SIGKILL the runner in the middle of 200 sends: every message reaches WhatsApp once, every event is in Kafka once."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections import Counter

import httpx

from tests.conftest import Stack, Tenant
from tests.e2e.conftest import link_session, new_phone
from tests.support import media_samples as samples
from tests.support.clients import WsCollector, eventually, read_topic
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics

TOTAL = 200


async def test_runner_killed_mid_load_sends_everything_exactly_once(
    stack: Stack, tenant: Tenant, ws_url, kafka: KafkaSettings, topics: Topics  # type: ignore[no-untyped-def]
) -> None:
    async with WsCollector(ws_url(tenant)) as ws:
        sid, _ = await link_session(stack, tenant, ws)
    contact = new_phone()
    async with httpx.AsyncClient(base_url=stack.sim_url, timeout=10) as sim:
        await sim.post(f"/control/contacts/{contact}", json={"autoReply": False, "autoRead": False})

        accepted: list[dict[str, str]] = []

        async def post(i: int) -> None:
            r = await tenant.http.post(f"/sessions/{sid}/messages", json={"to": contact, "content": f"load {i}"})
            assert r.status_code == 202, r.text
            accepted.append(r.json())

        runner = stack.runner()
        for start in range(0, TOTAL, 20):
            await asyncio.gather(*(post(i) for i in range(start, start + 20)))
            if start == 60:
                runner.kill()  # mid-load, with commands in flight and intents possibly uncommitted
                runner.start()
        assert len(accepted) == TOTAL
        message_ids = {a["messageId"] for a in accepted}

        async def all_delivered() -> dict:  # type: ignore[type-arg]
            inbox = (await sim.get(f"/control/accounts/{contact}/inbox")).json()
            got = {m["id"] for m in inbox["messages"]}
            return inbox if message_ids <= got else {}

        inbox = await eventually(all_delivered, timeout=90, interval=0.5)

    # WhatsApp side: each message accepted exactly once.
    accepted_counts = Counter(m["id"] for m in inbox["messages"])
    assert set(accepted_counts) == message_ids
    assert max(accepted_counts.values()) == 1
    assert all(m.get("count", 1) == 1 for m in inbox["messages"])

    # Kafka side: each event exactly once.
    async def settled() -> list:  # type: ignore[type-arg]
        events = [e for e in await read_topic(kafka.bootstrap_servers, topics.session_events) if e.session_id == sid]
        done = [e for e in events if e.type == "session.command.succeeded"
                and e.payload["commandType"] == "session.send_message"]
        return events if len(done) >= TOTAL else []

    events = await eventually(settled, timeout=60, interval=1)
    assert len({e.event_id for e in events}) == len(events)
    versions = [e.version for e in events if e.version > 0]
    assert versions == list(range(1, len(versions) + 1)), "aggregate versions must be gapless and unique"
    intents = Counter(e.payload["messageId"] for e in events if e.type == "session.messages.send_requested")
    upserts = Counter(
        m["id"] for e in events if e.type == "session.messages.upsert" for m in e.payload["messages"] if m["fromMe"]
    )
    succeeded = Counter(
        e.payload["commandId"]
        for e in events
        if e.type == "session.command.succeeded" and e.payload["commandType"] == "session.send_message"
    )
    assert set(intents) == message_ids and max(intents.values()) == 1
    assert set(upserts) == message_ids and max(upserts.values()) == 1
    assert len(succeeded) == TOTAL and max(succeeded.values()) == 1


MEDIA_TOTAL = 30


async def test_runner_killed_mid_media_sends_and_receives_each_once(
    stack: Stack, tenant: Tenant, ws_url, kafka: KafkaSettings, topics: Topics  # type: ignore[no-untyped-def]
) -> None:
    """Media sends (lanes outside the lock) and media downloads (held acks) survive a SIGKILL."""
    async with WsCollector(ws_url(tenant)) as ws:
        sid, phone = await link_session(stack, tenant, ws)
    contact = new_phone()
    images = [samples.png(30 + i, 20) for i in range(MEDIA_TOTAL)]
    async with httpx.AsyncClient(base_url=stack.sim_url, timeout=10) as sim:
        await sim.post(f"/control/contacts/{contact}", json={"autoReply": False, "autoRead": False})
        uploads = []
        for i, data in enumerate(images):
            r = await tenant.http.post("/media", data={"kind": "image"}, files={"file": (f"i{i}.png", data)})
            assert r.status_code == 201, r.text
            uploads.append(r.json())
        sent: list[str] = []
        received: list[str] = []
        runner = stack.runner()
        for i, up in enumerate(uploads):
            r = await tenant.http.post(f"/sessions/{sid}/messages", json={
                "to": contact, "caption": f"pic {i}", "media": {"mediaId": up["mediaId"]}})
            assert r.status_code == 202, r.text
            sent.append(r.json()["messageId"])
            media = {"dataBase64": base64.b64encode(images[i]).decode(), "kind": "image", "mime": "image/png"}
            r = await sim.post("/control/inject", json={"from": contact, "to": phone, "text": f"back {i}",
                                                         "media": media})
            assert r.status_code == 200, r.text
            received.append(r.json()["id"])
            if i == 10:
                runner.kill()  # media sends and downloads in flight
                runner.start()

        async def all_delivered() -> dict:  # type: ignore[type-arg]
            inbox = (await sim.get(f"/control/accounts/{contact}/inbox")).json()
            return inbox if set(sent) <= {m["id"] for m in inbox["messages"]} else {}

        inbox = await eventually(all_delivered, timeout=120, interval=0.5)
    ours = [m for m in inbox["messages"] if m["id"] in set(sent)]
    assert len(ours) == MEDIA_TOTAL and all(m["count"] == 1 for m in ours)
    assert {m["id"]: m["media"]["sha256"] for m in ours} == {
        mid: hashlib.sha256(data).hexdigest() for mid, data in zip(sent, images, strict=True)}

    async def settled() -> list:  # type: ignore[type-arg]
        events = [e for e in await read_topic(kafka.bootstrap_servers, topics.session_events) if e.session_id == sid]
        media = {m["messageId"] for e in events if e.type == "session.messages.media" for m in e.payload["media"]}
        return events if set(sent) | set(received) <= media else []

    events = await eventually(settled, timeout=120, interval=1)
    media_counts = Counter(m["messageId"] for e in events if e.type == "session.messages.media"
                           for m in e.payload["media"])
    assert max(media_counts.values()) == 1, "each message's media is recorded once"
    entries = {m["messageId"]: m for e in events if e.type == "session.messages.media" for m in e.payload["media"]}
    assert all(entries[mid]["url"] and entries[mid]["size"] == len(images[i]) for i, mid in enumerate(received))
    upserts = Counter(m["id"] for e in events if e.type == "session.messages.upsert" for m in e.payload["messages"])
    assert all(upserts[mid] == 1 for mid in sent + received)
