"""Webhooks end to end: the registration API (the command API's slice, on the real database), the
webhooks service as a process on the real Kafka topic, and a real local HTTP receiver.

The receiver de-duplicates on ``webhook-id`` like a real integrator would, verifies every signature
with the independent ``standardwebhooks`` library, and can fail on purpose.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Header
from standardwebhooks.webhooks import Webhook

from command_api.webhooks.repository import WebhooksRepository
from command_api.webhooks.router import bind
from command_api.webhooks.router import router as webhooks_router
from command_api.webhooks.service import WebhooksConfig, WebhooksService
from tests.conftest import service_env
from tests.support.clients import eventually, produce_envelopes
from tests.support.stack import Proc, free_port
from zapstream_contracts import payloads as p
from zapstream_contracts import secrets
from zapstream_contracts.envelope import Envelope
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics

MAX_ATTEMPTS = 4


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """A real HTTP server. ``fail_first[path]``: answer 500 to the first N attempts of each webhook-id;
    ``down``: paths that answer 503 to everything."""

    port: int = 0
    hits: list[Hit] = field(default_factory=list)
    fail_first: dict[str, int] = field(default_factory=dict)
    slow: set[str] = field(default_factory=set)
    hang: set[str] = field(default_factory=set)
    down: set[str] = field(default_factory=set)
    seen: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            key = (path, headers.get("webhook-id", ""))
            self.seen[key] += 1
            if path in self.down:
                status = 503
            elif self.seen[key] <= self.fail_first.get(path, 0):
                status = 500
            else:
                status = 200
            self.hits.append(Hit(path, headers, body, status))
            return status

    def accepted(self, path: str) -> list[Hit]:
        """What an integrator keeps: the 2xx-answered deliveries, de-duplicated on webhook-id, in arrival order."""
        with self.lock:
            out, ids = [], set()
            for h in self.hits:
                if h.path == path and h.status == 200 and h.headers["webhook-id"] not in ids:
                    ids.add(h.headers["webhook-id"])
                    out.append(h)
            return out

    def all_hits(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]


@contextmanager
def serving() -> Iterator[Receiver]:
    """A receiver listening on a free loopback port (tests/e2e/test_webhook_secrets.py has one too)."""
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path in rec.slow:
                time.sleep(0.1)  # keeps deliveries in flight when the sender is killed
            while self.path in rec.hang:
                time.sleep(0.05)  # longer than the sender's timeout: every attempt times out
            status = rec.answer(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with serving() as rec:
        yield rec


@pytest.fixture(scope="module")
def webhooks_proc(infra: str, kafka: KafkaSettings, run_id: str) -> Iterator[Proc]:
    env = service_env("WEBHOOKS_", kafka, infra) | {
        "WEBHOOKS_GROUP_ID": f"zt-{run_id}-webhooks",
        "WEBHOOKS_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        # A fast schedule for the test; the defaults span a day.
        "WEBHOOKS_BACKOFF_BASE_S": "0.05", "WEBHOOKS_BACKOFF_CAP_S": "0.4",
        "WEBHOOKS_DISABLE_AFTER_DEAD": "3",
        "WEBHOOKS_POLL_INTERVAL_S": "0.1",
        # A SIGKILLed sender's claims come back after timeout + margin: 2 s here.
        "WEBHOOKS_TIMEOUT_S": "1", "WEBHOOKS_CLAIM_LEASE_MARGIN_S": "1",
        "WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true", "WEBHOOKS_ALLOW_HTTP": "true",
        "WEBHOOKS_METRICS_PORT": str(free_port()),
    }
    proc = Proc("webhooks", "webhooks", env)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
async def api(pg: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    """The slice's router on its own app, the tenant taken from a test header instead of real auth."""
    app = FastAPI()
    app.include_router(webhooks_router)

    async def tenant_header(x_test_tenant: str = Header()) -> str:
        return x_test_tenant

    bind(app, WebhooksService(WebhooksRepository(pg), WebhooksConfig(allow_private_networks=True, allow_http=True)),
         tenant_header)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield client


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def msg_event(tenant: str, session: str, version: int, text: str) -> Envelope:
    # A complete payload (schemas/): the topic reader e2e validates every record this run wrote.
    payload = {"tenantId": tenant, "upsertType": "notify", "messagesCount": 1,
               "messages": [{"id": f"m-{uuid.uuid4().hex[:8]}", "remoteJid": "51988887777@s.whatsapp.net",
                             "fromMe": False, "timestamp": 1767225600, "text": text}]}
    return Envelope("session.messages.upsert", session, str(uuid.uuid4()), now_iso(),
                    payload, version=version)


def status_event(tenant: str, session: str, version: int) -> Envelope:
    return Envelope("session.status.connected", session, str(uuid.uuid4()), now_iso(),
                    {"tenantId": tenant, "phone": "51999999999", "connectedAt": now_iso()}, version=version)


async def register(api: httpx.AsyncClient, tenant: str, url: str, **extra: Any) -> dict[str, Any]:
    r = await api.post("/webhooks", json={"url": url, **extra}, headers={"X-Test-Tenant": tenant})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def verified(hit: Hit, secret: str) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(hit.body, hit.headers)
    return payload


async def test_flaky_receiver_gets_every_event_once_in_order_signed_and_only_its_own(
    api: httpx.AsyncClient, receiver: Receiver, webhooks_proc: Proc, kafka: KafkaSettings,
) -> None:
    ta, tb = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    receiver.fail_first["/a"] = 2  # every event fails twice, then succeeds
    a = await register(api, ta, receiver.url("/a"), eventTypes=["session.messages.*"])
    b = await register(api, tb, receiver.url("/b"))

    sessions_a = [str(uuid.uuid4()) for _ in range(3)]
    events_a = [e for s in sessions_a for v in range(1, 9)
                for e in ([msg_event(ta, s, v, f"a{v}")] if v % 4 else [status_event(ta, s, v)])]
    events_b = [msg_event(tb, sb, v, f"b{v}") for sb in [str(uuid.uuid4())] for v in range(1, 6)]
    # An event from before the endpoint existed (a lagging consumer, a first deploy): not sent (replay is).
    old = dataclasses.replace(msg_event(ta, str(uuid.uuid4()), 1, "old"), occurred_on="2020-01-01T00:00:00.000Z")
    await produce_envelopes(kafka.bootstrap_servers, Topics.from_settings(kafka).session_events,
                            [old, *events_a, *events_b])

    want_a = {e.event_id for e in events_a if e.type.startswith("session.messages.")}
    want_b = {e.event_id for e in events_b}

    async def all_accepted() -> bool:
        return ({h.headers["webhook-id"] for h in receiver.accepted("/a")} >= want_a
                and {h.headers["webhook-id"] for h in receiver.accepted("/b")} >= want_b)

    await eventually(all_accepted, timeout=90, interval=0.3)

    hits_a, hits_b = receiver.all_hits("/a"), receiver.all_hits("/b")
    # Every event arrived, and only the ones the filters and tenants allow.
    assert {h.headers["webhook-id"] for h in hits_a} == want_a
    assert {h.headers["webhook-id"] for h in hits_b} == want_b
    # Every attempt is signed with the endpoint's secret; the signed body is the event itself.
    for hit in hits_a:
        assert verified(hit, a["secret"])["payload"]["tenantId"] == ta
    for hit in hits_b:
        assert verified(hit, b["secret"])["payload"]["tenantId"] == tb
    # Exactly one accepted delivery per event id; retries reuse the same webhook-id (3 attempts each at /a).
    per_id = defaultdict(list)
    for hit in hits_a:
        per_id[hit.headers["webhook-id"]].append(hit.status)
    assert all(statuses == [500, 500, 200] for statuses in per_id.values()), per_id
    assert all(h.status == 200 for h in hits_b) and len(hits_b) == len(want_b)
    # In order per session: a session's events were accepted in version order.
    order: dict[str, list[int]] = defaultdict(list)
    versions = {e.event_id: (e.session_id, e.version) for e in events_a}
    for hit in receiver.accepted("/a"):
        sid, version = versions[hit.headers["webhook-id"]]
        order[sid].append(version)
    assert all(vs == sorted(vs) for vs in order.values()), order

    # The delivery log shows each attempt; another tenant sees none of it.
    r = await api.get(f"/webhooks/{a['id']}/attempts", params={"limit": 500}, headers={"X-Test-Tenant": ta})
    assert r.status_code == 200
    codes = sorted(x["statusCode"] for x in r.json()["attempts"])
    assert codes.count(500) == 2 * len(want_a) and codes.count(200) == len(want_a)
    assert (await api.get(f"/webhooks/{a['id']}/attempts", headers={"X-Test-Tenant": tb})).status_code == 404
    assert (await api.get(f"/webhooks/{a['id']}", headers={"X-Test-Tenant": tb})).status_code == 404
    listed = (await api.get("/webhooks", headers={"X-Test-Tenant": tb})).json()["webhooks"]
    assert [w["id"] for w in listed] == [b["id"]]
    assert "secret" not in listed[0]

    # The service's metrics port counts deliveries by outcome (no tenant or endpoint labels).
    port = webhooks_proc.env["WEBHOOKS_METRICS_PORT"]
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        assert (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        ready = await client.get(f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"postgres": True, "kafka": True, "assigned": True}
    assert 'zapstream_webhook_deliveries_total{outcome="delivered"}' in text
    assert 'zapstream_webhook_deliveries_total{outcome="failed"}' in text
    assert ta not in text and tb not in text


async def test_a_hanging_endpoint_holds_up_no_other_tenant(
    api: httpx.AsyncClient, receiver: Receiver, webhooks_proc: Proc, kafka: KafkaSettings,
) -> None:
    th, tf = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    receiver.hang.add("/hang")
    await register(api, th, receiver.url("/hang"))
    await register(api, tf, receiver.url("/fast"))
    hanging = [msg_event(th, s, v, "h") for s in [str(uuid.uuid4()) for _ in range(6)] for v in range(1, 4)]
    fast = [msg_event(tf, s, v, "f") for s in [str(uuid.uuid4()) for _ in range(3)] for v in range(1, 6)]
    # The hanging tenant's events come first in the topic, so they are claimed first.
    await produce_envelopes(kafka.bootstrap_servers, Topics.from_settings(kafka).session_events, hanging + fast)

    async def fast_done() -> bool:
        return {h.headers["webhook-id"] for h in receiver.accepted("/fast")} == {e.event_id for e in fast}

    try:
        await eventually(fast_done, timeout=60, interval=0.2)
        # Every event of the other tenant arrived while this endpoint has accepted nothing at all.
        assert receiver.accepted("/hang") == []
        assert receiver.all_hits("/hang") == []  # still hanging: no answer was ever given
    finally:
        receiver.hang.discard("/hang")

    async def hang_done() -> bool:
        return {h.headers["webhook-id"] for h in receiver.accepted("/hang")} == {e.event_id for e in hanging}

    await eventually(hang_done, timeout=60, interval=0.2)  # and it recovers by itself


async def test_dead_letters_disable_then_redrive_and_rotation(
    api: httpx.AsyncClient, receiver: Receiver, webhooks_proc: Proc, kafka: KafkaSettings, pg: asyncpg.Pool,
) -> None:
    tc = f"t-{uuid.uuid4().hex[:8]}"
    receiver.down.add("/c")
    c = await register(api, tc, receiver.url("/c"))
    hdr = {"X-Test-Tenant": tc}
    session = str(uuid.uuid4())
    events = [msg_event(tc, session, v, f"c{v}") for v in range(1, 4)]
    await produce_envelopes(kafka.bootstrap_servers, Topics.from_settings(kafka).session_events, events)

    async def three_dead() -> list[dict[str, Any]] | None:
        dead = (await api.get(f"/webhooks/{c['id']}/dead-letters", headers=hdr)).json()["deliveries"]
        return dead if len(dead) == 3 else None

    dead = await eventually(three_dead, timeout=60, interval=0.3)
    assert all(d["attempts"] == MAX_ATTEMPTS and d["lastStatusCode"] == 503 for d in dead)
    # Each event was tried exactly MAX_ATTEMPTS times, always with the same webhook-id.
    tries = defaultdict(int)
    for hit in receiver.all_hits("/c"):
        tries[hit.headers["webhook-id"]] += 1
    assert dict(tries) == {e.event_id: MAX_ATTEMPTS for e in events}

    # Three dead letters in a row disabled the endpoint, with an event saying so (through the outbox).
    endpoint = (await api.get(f"/webhooks/{c['id']}", headers=hdr)).json()
    assert endpoint["status"] == "disabled" and endpoint["disabledReason"]
    notices = await pg.fetch("SELECT payload FROM outbox WHERE tenant_id = $1 AND event_type = $2",
                             tc, "webhook.endpoint.disabled")
    assert [orjson.loads(n["payload"])["endpointId"] for n in notices] == [c["id"]]

    # The receiver recovers; the tenant rotates the secret, resumes and re-drives: every event arrives once.
    receiver.down.discard("/c")
    rotated = (await api.post(f"/webhooks/{c['id']}/rotate-secret", json={"graceSeconds": 600}, headers=hdr)).json()
    assert rotated["secret"] != c["secret"]
    assert (await api.post(f"/webhooks/{c['id']}/resume", headers=hdr)).json()["status"] == "active"
    assert (await api.post(f"/webhooks/{c['id']}/dead-letters/redrive", headers=hdr)).json() == {"redriven": 3}

    async def redelivered() -> bool:
        return {h.headers["webhook-id"] for h in receiver.accepted("/c")} == {e.event_id for e in events}

    await eventually(redelivered, timeout=60, interval=0.3)
    for hit in receiver.accepted("/c"):
        # Signed with both: receivers on the old secret and those already on the new one accept it.
        assert len(hit.headers["webhook-signature"].split()) == 2
        verified(hit, rotated["secret"])
        verified(hit, c["secret"])
    assert [orjson.loads(h.body)["payload"]["messages"][0]["text"] for h in receiver.accepted("/c")] == \
        ["c1", "c2", "c3"]

    # Replay from a time before the events: all three are sent again, with the same webhook-ids.
    before = len(receiver.all_hits("/c"))
    r = await api.post(f"/webhooks/{c['id']}/replay", json={"from": datetime(2020, 1, 1, tzinfo=UTC).isoformat()},
                       headers=hdr)
    assert r.status_code == 202, r.text

    async def replayed() -> bool:
        return len(receiver.all_hits("/c")) >= before + 3

    await eventually(replayed, timeout=60, interval=0.3)
    assert sorted(h.headers["webhook-id"] for h in receiver.all_hits("/c")[before:]) == \
        sorted(e.event_id for e in events)


async def test_api_refuses_bad_input_and_other_tenants(api: httpx.AsyncClient, receiver: Receiver) -> None:
    t1, t2 = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    h1, h2 = {"X-Test-Tenant": t1}, {"X-Test-Tenant": t2}
    assert (await api.post("/webhooks", json={"url": receiver.url("/x"), "eventTypes": ["nope"]},
                           headers=h1)).status_code == 422
    assert (await api.post("/webhooks", json={"url": "ftp://example.com/x"}, headers=h1)).status_code == 422
    assert (await api.post("/webhooks", json={"url": receiver.url("/x"), "extra": 1}, headers=h1)).status_code == 422
    e = await register(api, t1, receiver.url("/x"), eventTypes=["session.qr.updated"])
    for method, path in [("PATCH", ""), ("DELETE", ""), ("POST", "/pause"), ("POST", "/resume"),
                         ("POST", "/rotate-secret"), ("GET", "/deliveries"), ("POST", "/dead-letters/redrive")]:
        r = await api.request(method, f"/webhooks/{e['id']}{path}", headers=h2, json={} if method != "GET" else None)
        assert r.status_code == 404, (method, path, r.status_code)
    r = await api.patch(f"/webhooks/{e['id']}", json={"eventTypes": ["session.messages.*"]}, headers=h1)
    assert r.json()["eventTypes"] == ["session.messages.*"]
    assert (await api.post(f"/webhooks/{e['id']}/pause", headers=h1)).json()["status"] == "paused"
    assert (await api.delete(f"/webhooks/{e['id']}", headers=h1)).status_code == 204
    assert (await api.get(f"/webhooks/{e['id']}", headers=h1)).status_code == 404
    assert (await api.get("/webhooks/not-a-uuid", headers=h1)).status_code == 422


async def test_private_receivers_are_refused_unless_allowed(pg: asyncpg.Pool) -> None:
    app = FastAPI()
    app.include_router(webhooks_router)

    async def tenant() -> str:
        return "t-ssrf"

    bind(app, WebhooksService(WebhooksRepository(pg), WebhooksConfig()), tenant)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        for url in ["https://127.0.0.1/x", "https://169.254.169.254/latest", "http://8.8.8.8/x"]:
            assert (await client.post("/webhooks", json={"url": url})).status_code == 422, url


async def test_sigkilled_sender_loses_nothing_and_repeats_only_with_the_same_id(
    api: httpx.AsyncClient, receiver: Receiver, webhooks_proc: Proc, kafka: KafkaSettings,
) -> None:
    td = f"t-{uuid.uuid4().hex[:8]}"
    receiver.slow.add("/d")
    d = await register(api, td, receiver.url("/d"))
    events = [msg_event(td, s, v, f"d{v}") for s in [str(uuid.uuid4()) for _ in range(4)] for v in range(1, 16)]
    await produce_envelopes(kafka.bootstrap_servers, Topics.from_settings(kafka).session_events, events)

    async def some_arrived() -> bool:
        return len(receiver.accepted("/d")) >= 10

    await eventually(some_arrived, timeout=60, interval=0.05)
    webhooks_proc.kill()  # mid-delivery: requests in flight, outcomes unrecorded
    at_kill = len(receiver.accepted("/d"))
    webhooks_proc.start()

    want = {e.event_id for e in events}

    async def all_arrived() -> bool:
        return {h.headers["webhook-id"] for h in receiver.accepted("/d")} >= want

    await eventually(all_arrived, timeout=90, interval=0.3)
    hits = receiver.all_hits("/d")
    assert {h.headers["webhook-id"] for h in hits} == want  # nothing that was not an event
    for hit in hits:
        verified(hit, d["secret"])
    # Repeats exist only as the same webhook-id with the same body, so a receiver de-duplicates them.
    bodies: dict[str, bytes] = {}
    for hit in hits:
        assert bodies.setdefault(hit.headers["webhook-id"], hit.body) == hit.body
    # After de-duplication each session's events are in order.
    order: dict[str, list[int]] = defaultdict(list)
    versions = {e.event_id: (e.session_id, e.version) for e in events}
    for hit in receiver.accepted("/d"):
        sid, version = versions[hit.headers["webhook-id"]]
        order[sid].append(version)
    assert all(vs == list(range(1, 16)) for vs in order.values()), order
    assert at_kill < len(want), "the kill came too late to be mid-delivery"


async def produce_with_secrets(kafka: KafkaSettings, events: list[Envelope], codes: dict[str, str]) -> None:
    """As the session runner writes them: events whose eventId is in ``codes`` go to the event log redacted,
    with their whole copy (that QR code) on the secrets topic, in the same transaction and partition."""
    topics = Topics.from_settings(kafka)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, transactional_id=f"t-{uuid.uuid4()}")
    await producer.start()
    try:
        async with producer.transaction():
            for env in events:
                key = env.session_id.encode()  # same key, same partition count: the same partition number
                if env.event_id not in codes:
                    await producer.send(topics.session_events, env.value(), key=key, headers=env.headers("/test"))
                    continue
                whole = secrets.with_qr(env, codes[env.event_id])
                await producer.send(topics.session_events, env.value(), key=key,
                                    headers=secrets.redacted_headers(env, "/test"))
                await producer.send(topics.session_secrets, whole.value(), key=key,
                                    headers=secrets.headers(whole, "/test"))
    finally:
        await producer.stop()


def qr_event(tenant: str, session: str, version: int) -> Envelope:
    redacted = p.QrUpdated(tenant_id=tenant, expires_at=now_iso())
    return Envelope("session.qr.updated", session, str(uuid.uuid4()), now_iso(),
                    redacted.model_dump(by_alias=True, mode="json"), version=version)


async def test_qr_codes_come_from_the_secrets_topic_in_place_and_again_on_replay(
    api: httpx.AsyncClient, receiver: Receiver, webhooks_proc: Proc, kafka: KafkaSettings, pg: asyncpg.Pool,
) -> None:
    tq = f"t-{uuid.uuid4().hex[:8]}"
    q = await register(api, tq, receiver.url("/q"))
    session = str(uuid.uuid4())
    qr1, qr2 = qr_event(tq, session, 2), qr_event(tq, session, 3)
    events = [msg_event(tq, session, 1, "before"), qr1, qr2, status_event(tq, session, 4)]
    codes = {qr1.event_id: "2@first,code", qr2.event_id: "2@second,code"}
    await produce_with_secrets(kafka, events, codes)

    async def all_accepted() -> bool:
        return len(receiver.accepted("/q")) == len(events)

    await eventually(all_accepted, timeout=60, interval=0.2)
    hits = receiver.all_hits("/q")
    # Once per event id, in the session's order, the QR events with their codes (no redacted copy as well).
    assert [h.headers["webhook-id"] for h in hits] == [e.event_id for e in events]
    sent = [verified(h, q["secret"]) for h in hits]
    assert [s["payload"].get("qr") for s in sent] == [None, "2@first,code", "2@second,code", None]
    assert sent[1] == {**qr1.to_wire(), "payload": {"tenantId": tq, "qr": "2@first,code",
                                                    "expiresAt": qr1.to_wire()["payload"]["expiresAt"]}}
    # The secrets topic's offsets are stored beside the event topic's.
    stored = await pg.fetch("SELECT topic FROM webhook_offsets")
    assert Topics.from_settings(kafka).session_secrets in {r["topic"] for r in stored}

    # Delivered rows keep the QR events without their codes.
    async def cleared() -> bool:
        rows = await pg.fetch("SELECT body FROM webhook_deliveries WHERE endpoint_id = $1", uuid.UUID(q["id"]))
        return len(rows) == len(events) and not any(c.encode() in bytes(r["body"]) for r in rows for c in codes.values())

    await eventually(cleared, timeout=20, interval=0.2)

    # A replay re-sends them with their codes while the secrets topic still has them (it keeps an hour).
    r = await api.post(f"/webhooks/{q['id']}/replay", json={"from": datetime(2020, 1, 1, tzinfo=UTC).isoformat()},
                       headers={"X-Test-Tenant": tq})
    assert r.status_code == 202, r.text

    async def replayed() -> bool:
        return len(receiver.all_hits("/q")) >= 2 * len(events)

    await eventually(replayed, timeout=60, interval=0.2)
    again = receiver.all_hits("/q")[len(events):]
    assert [h.headers["webhook-id"] for h in again] == [e.event_id for e in events]
    assert [orjson.loads(h.body)["payload"].get("qr") for h in again] == [None, "2@first,code", "2@second,code", None]


async def test_after_a_restart_qr_codes_still_come_once_from_the_stored_secrets_offsets(
    api: httpx.AsyncClient, receiver: Receiver, webhooks_proc: Proc, kafka: KafkaSettings, pg: asyncpg.Pool,
) -> None:
    tr = f"t-{uuid.uuid4().hex[:8]}"
    r = await register(api, tr, receiver.url("/r"), eventTypes=["session.qr.updated", "session.status.*"])
    sessions = [str(uuid.uuid4()) for _ in range(4)]
    first = [qr_event(tr, s, 1) for s in sessions]
    await produce_with_secrets(kafka, first, {e.event_id: f"2@{e.event_id}" for e in first})
    secrets_topic = Topics.from_settings(kafka).session_secrets

    async def recorded() -> bool:
        n = await pg.fetchval("SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'delivered'",
                              uuid.UUID(r["id"]))
        return bool(n == len(first))

    await eventually(recorded, timeout=60, interval=0.2)
    before = dict(await pg.fetch("SELECT partition, next_offset FROM webhook_offsets WHERE topic = $1", secrets_topic))
    assert before  # the copies used are behind the stored offsets

    webhooks_proc.kill()
    second = [e for s in sessions for e in (qr_event(tr, s, 2), status_event(tr, s, 3))]
    await produce_with_secrets(kafka, second, {e.event_id: f"2@{e.event_id}" for e in second
                                               if e.type == "session.qr.updated"})
    webhooks_proc.start()

    async def all_accepted() -> bool:
        return len(receiver.accepted("/r")) == len(first) + len(second)

    await eventually(all_accepted, timeout=90, interval=0.2)
    hits = receiver.all_hits("/r")
    assert sorted(h.headers["webhook-id"] for h in hits) == sorted(e.event_id for e in first + second)
    for body in (verified(h, r["secret"]) for h in hits):
        assert body["payload"].get("qr") == (f"2@{body['eventId']}" if body["type"] == "session.qr.updated" else None)
    after = dict(await pg.fetch("SELECT partition, next_offset FROM webhook_offsets WHERE topic = $1", secrets_topic))
    assert sum(after.values()) - sum(before.values()) >= len(sessions)  # each new copy was used once
