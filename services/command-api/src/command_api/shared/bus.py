"""Publishing commands: keyed by sessionId, acknowledged by every in-sync replica before the API answers 202."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer

from zapstream_domain import commands as c
from zapstream_domain.session import iso
from zapstream_platform.envelope import command_headers
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
        traceparent=child_of(traceparent),
        **fields,
    )


class KafkaCommandBus:
    """The producer is idempotent with ``acks=all``: a 202 means the command is durably in Kafka."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def send(self, cls: type[c.Command], tenant_id: str, session_id: str, traceparent: str | None,
                   command_id: str | None = None, **fields: Any) -> str:
        """Publish one command; ``command_id`` fixed by the caller makes a re-publish recognisable."""
        command = build_command(cls, tenant_id, session_id, traceparent, command_id, **fields)
        await self.producer.send_and_wait(
            self.topic,
            value=command.model_dump_json(by_alias=True).encode(),
            key=session_id.encode(),
            headers=command_headers(command, SOURCE),
        )
        return command.command_id
