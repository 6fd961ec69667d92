"""A trace crosses real Kafka records in the ``traceparent`` header: HTTP span → command record → the
consumer's span → event record → the next consumer's span, all one connected trace (the SDK's
in-memory exporter). The services' own trace test (issue 16) is built from these same helpers."""

from __future__ import annotations

import itertools

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from zapstream_platform import telemetry
from zapstream_platform.settings import KafkaSettings


async def _topic(kafka: KafkaSettings, name: str) -> None:
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1)])
    finally:
        await admin.close()


async def _one(kafka: KafkaSettings, topic: str) -> list[tuple[str, bytes]]:
    consumer = AIOKafkaConsumer(topic, **kafka.client_options(), auto_offset_reset="earliest",
                                isolation_level="read_committed", enable_auto_commit=False)
    await consumer.start()
    try:
        record = await consumer.getone()
        return list(record.headers)
    finally:
        await consumer.stop()


async def test_one_request_is_one_trace_across_two_topics(kafka: KafkaSettings, infra: str) -> None:
    # "<prefix>-trace.": scratch topics, not the stack's (the topic reader e2e reads every "<prefix>." topic).
    commands, events = f"{kafka.topic_prefix}-trace.commands", f"{kafka.topic_prefix}-trace.events"
    await _topic(kafka, commands)
    await _topic(kafka, events)
    exporter = InMemorySpanExporter()
    provider = telemetry.setup_tracing("test", telemetry.TelemetrySettings(), exporter=exporter,
                                       install_global=False)
    assert provider is not None
    tracer = provider.get_tracer("test")
    producer = AIOKafkaProducer(**kafka.client_options(), enable_idempotence=True)
    await producer.start()
    try:
        with tracer.start_as_current_span("POST /sessions/{id}/messages", kind=SpanKind.SERVER), \
                telemetry.produce_span(tracer, "send command"):
            await producer.send_and_wait(commands, b"cmd", headers=telemetry.inject([("ce_type", b"x")]))
        with telemetry.consume_span(tracer, "runner handle", headers=await _one(kafka, commands)), \
                telemetry.produce_span(tracer, "record event"):
            await producer.send_and_wait(events, b"evt", headers=telemetry.inject([]))
        with telemetry.consume_span(tracer, "projector write", headers=await _one(kafka, events)):
            pass
    finally:
        await producer.stop()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert len(spans) == 5
    assert len({s.context.trace_id for s in spans.values()}) == 1
    chain = ["POST /sessions/{id}/messages", "send command", "runner handle", "record event", "projector write"]
    for parent, child in itertools.pairwise(chain):
        assert spans[child].parent is not None and spans[child].parent.span_id == spans[parent].context.span_id
