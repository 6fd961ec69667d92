"""Publishing commands: keyed by sessionId, acknowledged by every in-sync replica before the API answers 202."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from zapstream_contracts import commands as c
from zapstream_contracts.envelope import command_headers
from zapstream_contracts.timefmt import iso
from zapstream_platform import telemetry
from zapstream_platform.metrics import Metrics
from zapstream_platform.tracing import child_of

SOURCE = "/zapstream/command-api"


class CommandBus(Protocol):
    async def send(self, cls: type[c.Command], tenant_id: str, session_id: str, traceparent: str | None,
                   command_id: str | None = None, **fields: Any) -> str: ...


def build_command(cls: type[c.Command], tenant_id: str, session_id: str, traceparent: str | None,
                  command_id: str | None = None, **fields: Any) -> c.Command:
    return cls(
        command_id=command_id or str(uuid.uuid4()),
        session_id=session_id,
        tenant_id=tenant_id,
        issued_at=iso(datetime.now(UTC)),
        # The current span (the producer span of KafkaCommandBus.send) when tracing is on, so the runner's
        # span is its child; otherwise a made-up child of the caller's header, which still names the trace.
        traceparent=telemetry.current_traceparent() or child_of(traceparent),
        **fields,
    )


class KafkaCommandBus:
    """The producer is idempotent with ``acks=all``: a 202 means the command is durably in Kafka."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, metrics: Metrics | None = None) -> None:
        self.producer = producer
        self.topic = topic
        self.metrics = metrics
        self.tracer = telemetry.tracer("command-api")

    async def send(self, cls: type[c.Command], tenant_id: str, session_id: str, traceparent: str | None,
                   command_id: str | None = None, **fields: Any) -> str:
        """Publish one command; ``command_id`` fixed by the caller makes a re-publish recognisable."""
        if not telemetry.enabled():
            command = build_command(cls, tenant_id, session_id, traceparent, command_id, **fields)
            await self._produce(command)
        else:
            # Inside a request span the span is its child; otherwise the caller's traceparent is the parent.
            parent = None if trace.get_current_span().get_span_context().is_valid else \
                telemetry.context_from_traceparent(traceparent)
            with self.tracer.start_as_current_span(f"send {cls.TYPE}", context=parent, kind=SpanKind.PRODUCER,
                                                   attributes={"messaging.system": "kafka",
                                                               "messaging.destination.name": self.topic}):
                command = build_command(cls, tenant_id, session_id, traceparent, command_id, **fields)
                await self._produce(command)
        if self.metrics is not None:
            self.metrics.events_produced.labels(self.topic).inc()
        return command.command_id

    async def _produce(self, command: c.Command) -> None:
        await self.producer.send_and_wait(
            self.topic,
            value=command.model_dump_json(by_alias=True).encode(),
            key=command.session_id.encode(),
            headers=command_headers(command, SOURCE),
        )
