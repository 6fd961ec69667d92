"""The services' telemetry wiring without servers: the command API's ``/metrics`` and request spans, the
runner's send spans and series, the gateway's connection classes. No series is labelled by tenant or
session (the library's own tests: test_telemetry.py)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from opentelemetry.trace import SpanKind
from prometheus_client import generate_latest

from command_api.app import build_app
from command_api.settings import Settings as ApiSettings
from command_api.shared.bus import KafkaCommandBus
from command_api.shared.commands import Commands
from session_runner.sends import Links, SendOutcome, SendPipeline, Sent
from tests.support import tracing
from tests.unit.command_api_fakes import FakeIdempotency, FakeSessions, machine
from ws_gateway.app import tenant_class
from ws_gateway.hub import Client, Hub
from zapstream_contracts import commands as c
from zapstream_contracts import payloads as p
from zapstream_platform import telemetry
from zapstream_platform.metrics import Metrics
from zapstream_platform.tokens import Principal

FORBIDDEN_LABELS = {"tenant", "tenant_id", "session", "session_id", "message_id", "url", "user", "user_id"}


def labels_of(metrics: Metrics) -> list[dict[str, str]]:
    return [s.labels for family in metrics.registry.collect() for s in family.samples]


def assert_bounded(metrics: Metrics, *ids: str) -> None:
    for labels in labels_of(metrics):
        assert not FORBIDDEN_LABELS & set(labels), labels
        assert not set(ids) & set(labels.values()), labels


class FakeProducer:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, list[tuple[str, bytes]]]] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.records.append((topic, value, headers))


class FakeGrants:
    async def record_issuer(self, who: Principal, command_id: str) -> None:
        return None


def api_with_probe(metrics: Metrics, bus: KafkaCommandBus, traced: bool) -> Any:
    """The real app (middleware, /metrics, telemetry) plus one route that publishes through the real bus."""
    from command_api.shared.access import Access

    app = build_app(ApiSettings(dev_mode=True), metrics=metrics,
                    tracer_provider=tracing.provider() if traced else None)
    commands = Commands(bus, FakeIdempotency(), Access(FakeSessions(), FakeGrants()), metrics)

    @app.post("/probe/{session_id}/start")
    async def probe(session_id: str) -> dict[str, Any]:
        return await commands.publish(machine("tenant-secret-1"), c.StartSession, session_id, None, None)

    return app


async def test_command_api_serves_metrics_by_route_template_and_command_type() -> None:
    metrics, producer = Metrics("command-api"), FakeProducer()
    app = api_with_probe(metrics, KafkaCommandBus(producer, "cmds", metrics), traced=False)
    sessions = [str(uuid.uuid4()) for _ in range(3)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for sid in sessions:
            assert (await client.post(f"/probe/{sid}/start")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get(f"/no/such/{sessions[0]}")).status_code == 404
        scrape = await client.get("/metrics")
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    text = scrape.text
    assert 'zapstream_http_requests_total{method="POST",route="/probe/{session_id}/start",status="200"} 3.0' in text
    assert 'route="unmatched",status="404"' in text
    assert 'zapstream_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/healthz"}' in text
    assert 'zapstream_commands_total{outcome="accepted",type="session.start"} 3.0' in text
    assert 'zapstream_kafka_records_produced_total{topic="cmds"} 3.0' in text
    assert_bounded(metrics, "tenant-secret-1", *sessions)
    assert all(sid not in text for sid in sessions) and "tenant-secret-1" not in text


async def test_metrics_route_stays_out_of_the_openapi_document() -> None:
    app = build_app(ApiSettings(dev_mode=True))
    assert "/metrics" not in app.openapi()["paths"]


async def test_a_request_span_is_the_parent_of_the_published_command() -> None:
    exporter = tracing.global_exporter()
    assert telemetry.enabled()  # hot paths skip spans when no provider is installed (telemetry.enabled)
    metrics, producer = Metrics("command-api"), FakeProducer()
    app = api_with_probe(metrics, KafkaCommandBus(producer, "cmds", metrics), traced=True)
    caller_trace = "0af7651916cd43dd8448eb211c80319c"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        answer = await client.post(f"/probe/{uuid.uuid4()}/start",
                                   headers={"traceparent": f"00-{caller_trace}-b7ad6b7169203331-01"})
        assert answer.status_code == 200
        await client.get("/metrics")  # scrapes make no spans
    _, value, headers = producer.records[0]
    command = c.parse_command(value)
    assert dict(headers)["traceparent"].decode() == command.traceparent
    spans = exporter.get_finished_spans()
    server = next(s for s in spans if s.kind is SpanKind.SERVER)
    produce = next(s for s in spans if s.kind is SpanKind.PRODUCER)
    assert server.name == "POST /probe/{session_id}/start"
    assert format(server.context.trace_id, "032x") == caller_trace  # the caller's trace goes on
    assert produce.parent is not None and produce.parent.span_id == server.context.span_id
    # The command record names the producer span: the runner's span will be its child.
    assert command.traceparent == f"00-{caller_trace}-{produce.context.span_id:016x}-01"
    assert not [s for s in spans if "/metrics" in s.name]


async def test_without_tracing_the_command_still_carries_a_traceparent() -> None:
    metrics, producer = Metrics("command-api"), FakeProducer()
    bus = KafkaCommandBus(producer, "cmds", metrics)
    await bus.send(c.StartSession, "t1", str(uuid.uuid4()), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    command = c.parse_command(producer.records[0][1])
    assert command.traceparent is not None and command.traceparent.startswith("00-0af7651916cd43dd8448eb211c80319c-")


class FakeDriver:
    supports_client_message_ids = True

    async def send_text(self, sid: str, to: str, text: str, **kw: Any) -> Any:
        from session_runner.drivers import port as d

        return d.SendResult(message_id=kw["message_id"], timestamp=1)


async def test_a_send_is_a_client_span_in_the_command_trace_and_is_timed() -> None:
    exporter = tracing.global_exporter()
    metrics, links = Metrics("session-runner"), Links()
    outcomes: asyncio.Queue[SendOutcome] = asyncio.Queue()
    pipeline = SendPipeline(driver=FakeDriver(), media=None, links=links,
                            standing=lambda sid, intent: "pending", report=outcomes.put_nowait, metrics=metrics)
    links.up("s1")
    handling = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    intent = p.SendRequested(tenant_id="t1", command_id=str(uuid.uuid4()), message_id=uuid.uuid4().hex,
                             to="51911111111@s.whatsapp.net", text="hola")
    pipeline.submit("s1", intent, handling)
    outcome = await outcomes.get()
    await pipeline.close()
    assert isinstance(outcome.result, Sent)
    call = next(s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT)
    assert call.name == "whatsapp send text"
    assert format(call.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert call.parent is not None and format(call.parent.span_id, "016x") == "00f067aa0ba902b7"
    # The outcome's events (messages.upsert, command.succeeded) continue from the driver call.
    assert outcome.trace == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{call.context.span_id:016x}-01"
    text = generate_latest(metrics.registry).decode()
    assert 'zapstream_runner_send_seconds_count{kind="text"} 1.0' in text


def test_gateway_counts_connections_by_tenant_class_only() -> None:
    assert tenant_class(Principal("t1", "machine", key_id="k")) == "apikey"
    assert tenant_class(Principal("t1", "agent", user_id="u")) == "agent"
    assert tenant_class(Principal("t1", "owner", user_id="u")) == "user"
    assert tenant_class(Principal("t1", "admin", user_id="u")) == "user"


async def test_gateway_serves_metrics() -> None:
    from ws_gateway.app import create_app
    from ws_gateway.settings import Settings as WsSettings

    metrics = Metrics("ws-gateway")
    metrics.ws_connections.labels("apikey").inc()
    app = create_app(WsSettings(dev_mode=True), metrics)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    assert 'zapstream_ws_connections{tenant_class="apikey"} 1.0' in scrape.text


def test_a_push_continues_the_record_trace() -> None:
    exporter = tracing.global_exporter()
    hub = Hub(Metrics("ws-gateway"))
    client = Client("t1", 10)
    hub.add(client)
    tracer = telemetry.tracer("ws-gateway")
    headers = [("ce_type", b"session.messages.upsert"),
               ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    with telemetry.consume_span(tracer, "push session.messages.upsert", headers=headers):
        hub.publish("t1", b"{}")
    push = exporter.get_finished_spans()[-1]
    assert push.kind is SpanKind.CONSUMER and push.parent is not None
    assert format(push.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert client.queue.qsize() == 1


@pytest.mark.parametrize("service", ["command-api", "session-runner", "ws-gateway"])
def test_settings_take_the_standard_otel_variables(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from session_runner.settings import Settings as RunnerSettings
    from ws_gateway.settings import Settings as WsSettings

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    cls: Any = {"command-api": ApiSettings, "session-runner": RunnerSettings, "ws-gateway": WsSettings}[service]
    assert cls(dev_mode=True).otlp_endpoint == "http://collector:4318"


async def test_runner_counts_a_reconnect_not_the_first_connect() -> None:
    from session_runner.drivers import port as d
    from session_runner.runner import SessionRunner
    from session_runner.settings import Settings as RunnerSettings

    metrics = Metrics("session-runner")
    runner = SessionRunner(RunnerSettings(metrics_port=0), driver=None, metrics=metrics)  # type: ignore[arg-type]
    await runner.on_driver_event("s1", d.Connected(seq=1, phone="51999999999"))
    await runner.on_driver_event("s1", d.Disconnected(seq=2, reason="network"))
    await runner.on_driver_event("s1", d.Connected(seq=3, phone="51999999999"))
    await runner.on_driver_event("s2", d.Connected(seq=1, phone="51888888888"))
    assert metrics.registry.get_sample_value("zapstream_runner_driver_reconnects_total") == 1.0
