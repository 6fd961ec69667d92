"""Metrics and tracing helpers without servers: bounded labels, route templates, traces through Kafka headers."""

from __future__ import annotations

import logging

import httpx
import orjson
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import generate_latest
from pydantic_settings import BaseSettings

from zapstream_platform import telemetry
from zapstream_platform.logs import JsonFormatter
from zapstream_platform.metrics import Health, HttpMetricsMiddleware, Metrics, serve
from zapstream_platform.settings import service_config

FORBIDDEN_LABELS = {"tenant", "tenant_id", "session", "session_id", "message_id", "url", "user", "user_id"}


def test_no_metric_is_labelled_by_tenant_or_session() -> None:
    metrics = Metrics("test")
    for family in metrics.registry.collect():
        for sample in family.samples:
            assert not FORBIDDEN_LABELS & set(sample.labels), (family.name, sample.labels)
    names = {f.name for f in metrics.registry.collect()}
    for expected in ("zapstream_http_requests", "zapstream_commands", "zapstream_kafka_records_produced",
                     "zapstream_kafka_consumer_lag", "zapstream_kafka_transaction_commit_seconds",
                     "zapstream_projector_batch_size", "zapstream_ws_connections", "zapstream_runner_sessions",
                     "zapstream_runner_send_seconds", "zapstream_runner_driver_reconnects",
                     "zapstream_webhook_deliveries", "zapstream_campaign_sends"):
        assert expected in names, expected


def test_registries_are_independent() -> None:
    a, b = Metrics("a"), Metrics("b")  # no global registry: composition roots and tests build their own
    a.webhook_deliveries.labels("delivered").inc()
    assert b"zapstream_webhook_deliveries_total{outcome=\"delivered\"} 1.0" in generate_latest(a.registry)
    assert b"outcome=\"delivered\"" not in generate_latest(b.registry)


async def test_http_middleware_labels_route_templates_not_paths() -> None:
    metrics = Metrics("api")
    app = FastAPI()

    @app.get("/sessions/{session_id}")
    async def one(session_id: str) -> dict[str, str]:
        return {"id": session_id}

    wrapped = HttpMetricsMiddleware(app, metrics)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://t") as client:
        for sid in ("a", "b", "c"):
            assert (await client.get(f"/sessions/{sid}")).status_code == 200
        assert (await client.get("/no/such/path/123")).status_code == 404
    text = generate_latest(metrics.registry).decode()
    assert 'route="/sessions/{session_id}",status="200"} 3.0' in text
    assert 'route="unmatched",status="404"} 1.0' in text
    assert "/sessions/a" not in text and "/no/such" not in text


def test_trace_continues_through_kafka_headers() -> None:
    exporter = InMemorySpanExporter()
    provider = telemetry.setup_tracing("test", telemetry.TelemetrySettings(), exporter=exporter, install_global=False)
    assert provider is not None
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /sessions/{id}/messages"), \
            telemetry.produce_span(tracer, "command send"):
        headers = telemetry.inject([("ce_type", b"x"), ("traceparent", b"00-old-old-01")])
    assert [k for k, _ in headers].count("traceparent") == 1
    with telemetry.consume_span(tracer, "runner handle", headers=headers) as span:
        tp = telemetry.current_traceparent()
        assert tp is not None and span.get_span_context().trace_id == int(tp.split("-")[1], 16)
    with telemetry.consume_span(tracer, "projector write", traceparent=tp):
        pass
    spans = exporter.get_finished_spans()
    assert len({s.context.trace_id for s in spans}) == 1  # one connected trace
    by_name = {s.name: s for s in spans}
    assert by_name["runner handle"].kind is SpanKind.CONSUMER
    assert by_name["runner handle"].parent.span_id == by_name["command send"].context.span_id
    assert by_name["projector write"].parent.span_id == by_name["runner handle"].context.span_id


def test_tracing_is_off_without_an_endpoint() -> None:
    assert telemetry.setup_tracing("test", telemetry.TelemetrySettings()) is None
    assert telemetry.inject([("traceparent", b"kept")]) == [("traceparent", b"kept")]


def test_settings_read_the_standard_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    class Settings(telemetry.TelemetrySettings, BaseSettings):
        model_config = service_config("SOMESERVICE_")

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "svc")
    s = Settings()
    assert s.otlp_endpoint == "http://collector:4318" and s.otel_service_name == "svc"


def test_ops_port_serves_metrics_health_and_readiness() -> None:
    metrics, health = Metrics("svc"), Health(("kafka", "postgres"))
    server, _ = serve(metrics, 0, "127.0.0.1", health)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert httpx.get(f"{base}/healthz").status_code == 200
        not_yet = httpx.get(f"{base}/readyz")
        assert not_yet.status_code == 503 and not_yet.json()["checks"] == {"kafka": False, "postgres": False}
        health.report("kafka", True)
        health.report("postgres", True)
        assert httpx.get(f"{base}/readyz").status_code == 200
        assert "zapstream_webhook_deliveries_total" in httpx.get(f"{base}/metrics").text
    finally:
        server.shutdown()
        server.server_close()


def test_logs_carry_the_current_trace_id() -> None:
    provider = telemetry.setup_tracing("test", telemetry.TelemetrySettings(), exporter=InMemorySpanExporter(),
                                       install_global=False)
    assert provider is not None
    formatter = JsonFormatter("svc")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    assert "trace_id" not in orjson.loads(formatter.format(record))
    with provider.get_tracer("t").start_as_current_span("op") as span:
        entry = orjson.loads(formatter.format(record))
    assert entry["trace_id"] == format(span.get_span_context().trace_id, "032x")
