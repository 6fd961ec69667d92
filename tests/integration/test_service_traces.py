"""One send is one connected trace through the real services, in-process, against the real Kafka, PostgreSQL
and simulator: the command API's request span → the command record → the runner's handling → the driver
call → the event record → the projector's write, and → the gateway's push to the tenant's socket. The
SDK's in-memory exporter collects every service's spans (tests/support/tracing.py).

The services run in this process (their composition roots' parts: ``create_app``, ``SessionRunner``,
``Projector``, ``pump``), on topics of their own so no other test's runner or projector sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from prometheus_client import generate_latest
from pydantic import SecretStr

from command_api.bootstrap import create_app
from command_api.settings import Settings as ApiSettings
from projector.app import Projector
from projector.settings import Settings as ProjectorSettings
from session_runner.drivers.sim import SimDriver
from session_runner.runner import SessionRunner
from session_runner.settings import Settings as RunnerSettings
from tests.integration.conftest_sim import new_phone
from tests.support import tracing
from tests.support.clients import eventually
from ws_gateway.hub import Client, Hub, pump
from zapstream_platform import apikeys
from zapstream_platform.metrics import Metrics
from zapstream_platform.settings import KafkaSettings, PostgresSettings
from zapstream_platform.topics import Topics, ensure_topics

# The projector's span per written event (in the event's trace, linked to its batch's span).
PROJECTOR_HOP = ("project session.messages.upsert",)
FORBIDDEN_LABELS = {"tenant", "tenant_id", "session", "session_id", "message_id", "url", "user", "user_id"}


@dataclass
class Services:
    api: httpx.AsyncClient
    socket: Client
    metrics: dict[str, Metrics]


async def _frame(client: Client, match: Callable[[dict[str, Any]], bool], within_s: float = 30) -> dict[str, Any]:
    """The next frame pushed to the tenant's socket that ``match``es (earlier ones are dropped)."""

    async def wait() -> dict[str, Any]:
        while True:
            frame = orjson.loads(await client.queue.get())
            if match(frame):
                return frame  # type: ignore[no-any-return]

    return await asyncio.wait_for(wait(), within_s)


@pytest.fixture
async def services(infra: str, run_id: str, simulator_url: str, pg: asyncpg.Pool) -> AsyncIterator[Services]:
    tracing.global_exporter()
    kafka = KafkaSettings(topic_prefix=f"zt-{run_id}-trace", partitions=2)
    await ensure_topics(kafka)
    postgres = PostgresSettings(dsn=SecretStr(infra))
    metrics = {name: Metrics(name) for name in ("session-runner", "projector", "ws-gateway")}
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    key = await apikeys.create_key(pg, tenant, "trace test")

    runner_group = f"zt-{run_id}-trace-runner"
    api_settings = ApiSettings(kafka=kafka, postgres=postgres, dev_mode=True, runner_group_id=runner_group)
    app = create_app(api_settings, tracing.provider())
    driver = SimDriver(simulator_url)
    runner = SessionRunner(RunnerSettings(kafka=kafka, sim_url=simulator_url, group_id=runner_group,
                                          instance_id="trace-runner", metrics_interval_s=0.5),
                           driver, None, metrics["session-runner"])
    pool = await asyncpg.create_pool(infra, min_size=1, max_size=4)
    assert pool is not None
    projector = Projector(ProjectorSettings(kafka=kafka, postgres=postgres, group_id=f"zt-{run_id}-trace-projector",
                                            metrics_interval_s=0.5), pool, metrics=metrics["projector"])
    hub, stopping = Hub(metrics["ws-gateway"]), asyncio.Event()
    socket = Client(tenant, 10_000)
    hub.add(socket)
    tasks = [asyncio.create_task(runner.run()), asyncio.create_task(projector.run()),
             # As the gateway does: the event log plus the secrets topic (the QR frames come from there).
             asyncio.create_task(pump(hub, kafka.bootstrap_servers, [Topics.from_settings(kafka).session_events,
                                                                     Topics.from_settings(kafka).session_secrets],
                                      stopping, metrics["ws-gateway"]))]
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api",
                headers={"Authorization": f"Bearer {key}"}, timeout=15) as api:
            await asyncio.wait_for(hub.ready.wait(), 30)
            yield Services(api, socket, metrics | {"command-api": app.state.services.commands.metrics})
    finally:
        runner.request_stop()
        projector.request_stop()
        stopping.set()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 20)
        await driver.aclose()
        await pool.close()


async def _link(s: Services, sim_url: str) -> str:
    r = await s.api.post("/sessions", json={})
    assert r.status_code == 202, r.text
    sid: str = r.json()["sessionId"]
    await _frame(s.socket, lambda e: e["type"] == "session.qr.updated" and e["sessionId"] == sid)
    async with httpx.AsyncClient(base_url=sim_url, timeout=10, trust_env=False) as sim:
        for _ in range(40):  # the device can be briefly between owners while the group settles (409)
            scan = await sim.post("/control/scan", json={"sessionId": sid, "phone": new_phone()})
            if scan.status_code != 409:
                break
            await asyncio.sleep(0.25)
        assert scan.status_code == 200, scan.text
    await _frame(s.socket, lambda e: e["type"] == "session.status.connected" and e["sessionId"] == sid)

    async def projected() -> bool:
        r = await s.api.get(f"/sessions/{sid}")
        return r.status_code == 200 and r.json()["status"] == "connected"

    await eventually(projected, timeout=30)
    return sid


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


async def test_one_send_is_one_connected_trace(services: Services, simulator_url: str) -> None:
    exporter = tracing.global_exporter()
    sid = await _link(services, simulator_url)
    r = await services.api.post(f"/sessions/{sid}/messages", json={"to": new_phone(), "content": "hola"})
    assert r.status_code == 202, r.text
    command_id = r.json()["commandId"]
    await _frame(services.socket, lambda e: e["type"] == "session.messages.upsert"
                 and e["payload"].get("requestId") == command_id)
    server = next(s for s in exporter.get_finished_spans()
                  if s.kind is SpanKind.SERVER and s.name == "POST /sessions/{session_id}/messages")
    trace_id = server.context.trace_id

    def the_trace() -> list[ReadableSpan]:
        return tracing.trace_of(exporter.get_finished_spans(), trace_id)

    async def complete() -> bool:
        names = {s.name for s in the_trace()}
        return {"push session.messages.upsert", *PROJECTOR_HOP} <= names

    await eventually(complete, timeout=30)
    spans = the_trace()
    # Connected: every span's parent is in the trace, and there is exactly one root: the request.
    roots = [s for s in spans if s.parent is None or s.parent.span_id not in {x.context.span_id for x in spans}]
    assert [s.name for s in roots] == ["POST /sessions/{session_id}/messages"], [s.name for s in roots]
    hops = ["POST /sessions/{session_id}/messages", "send session.send_message", "handle session.send_message",
            "whatsapp send text"]
    push = _one(spans, "push session.messages.upsert")
    to_push = list(reversed(tracing.names(tracing.path_to_root(spans, push))))
    assert tracing.is_subsequence([*hops, "push session.messages.upsert"], to_push), to_push
    for hop in PROJECTOR_HOP:
        write = _one(spans, hop)
        to_write = list(reversed(tracing.names(tracing.path_to_root(spans, write))))
        assert tracing.is_subsequence([*hops, hop], to_write), to_write
    assert _one(spans, "whatsapp send text").kind is SpanKind.CLIENT
    assert _one(spans, "handle session.send_message").kind is SpanKind.CONSUMER


async def test_the_services_key_series_after_traffic_without_tenant_or_session_labels(
        services: Services, simulator_url: str) -> None:
    sid = await _link(services, simulator_url)
    r = await services.api.post(f"/sessions/{sid}/messages", json={"to": new_phone(), "content": "hola"})
    assert r.status_code == 202, r.text
    await _frame(services.socket, lambda e: e["type"] == "session.messages.upsert"
                 and e["payload"].get("requestId") == r.json()["commandId"])
    scrape = await services.api.get("/metrics")
    assert scrape.status_code == 200
    api = scrape.text
    for series in ('zapstream_http_requests_total{method="POST",route="/sessions/{session_id}/messages",'
                   'status="202"}', 'zapstream_commands_total{outcome="accepted",type="session.send_message"}',
                   "zapstream_kafka_records_produced_total"):
        assert series in api, series
    runner = services.metrics["session-runner"]

    async def sampled() -> bool:
        # At least ours (the fixture's topics outlive a test, so an earlier test's session may be back too).
        return (runner.registry.get_sample_value("zapstream_runner_sessions", {"state": "connected"}) or 0) >= 1

    await eventually(sampled, timeout=15)
    text = generate_latest(runner.registry).decode()
    for series in ('zapstream_runner_send_seconds_count{kind="text"}', "zapstream_kafka_transaction_commit_seconds",
                   'zapstream_commands_total{outcome="handled",type="session.send_message"}',
                   "zapstream_kafka_records_produced_total", "zapstream_kafka_records_consumed_total",
                   "zapstream_kafka_consumer_lag{"):
        assert series in text, series
    projector = generate_latest(services.metrics["projector"].registry).decode()
    for series in ('zapstream_projector_batch_size_count{projection="main"}',
                   'zapstream_projector_event_age_seconds_count{projection="main"}',
                   'zapstream_projector_commit_seconds_count{projection="main"}',
                   "zapstream_kafka_records_consumed_total{", "zapstream_kafka_consumer_lag{"):
        assert series in projector, series
    gateway = generate_latest(services.metrics["ws-gateway"].registry).decode()
    assert "zapstream_kafka_records_consumed_total{" in gateway
    for name, metrics in services.metrics.items():
        for family in metrics.registry.collect():
            for sample in family.samples:
                assert not FORBIDDEN_LABELS & set(sample.labels), (name, sample)
                assert sid not in sample.labels.values(), (name, sample)
    assert sid not in api and sid not in text and sid not in projector
