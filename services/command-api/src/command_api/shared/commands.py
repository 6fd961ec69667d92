"""Accepting a command: publish it (honouring ``Idempotency-Key``), remember who issued it, answer 202."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from command_api.shared.access import Access
from command_api.shared.bus import CommandBus
from command_api.shared.idempotency import Idem, IdempotencyStore, run_once
from command_api.shared.responses import ApiJson as JsonResponse
from zapstream_contracts import commands as c
from zapstream_domain.decisions import message_id_for
from zapstream_platform.metrics import Metrics
from zapstream_platform.tokens import Principal

IDEMPOTENT_COMMANDS = uuid.UUID("6f1c2d3e-8a7b-4c5d-9e0f-1a2b3c4d5e6f")  # namespace of key-derived command ids

Answer = tuple[dict[str, Any], bool]  # (the 202 body, replayed)


class Commands:
    def __init__(self, bus: CommandBus, idempotency: IdempotencyStore, access: Access,
                 metrics: Metrics | None = None) -> None:
        self.bus = bus
        self.idempotency = idempotency
        self.access = access
        self.metrics = metrics

    async def idempotent(self, who: Principal, idem: Idem,
                         produce: Callable[[str | None], Awaitable[dict[str, Any]]]) -> Answer:
        """Run ``produce(seed)`` once per ``Idempotency-Key`` (``seed`` is None without one)."""
        return await run_once(self.idempotency, who.tenant_id, idem, produce)

    async def publish(self, who: Principal, cls: type[c.Command], session_id: str, seed: str | None,
                      traceparent: str | None, index: int = 0, **fields: Any) -> dict[str, Any]:
        command_id = str(uuid.uuid5(IDEMPOTENT_COMMANDS, f"{seed}\0{index}")) if seed else None
        try:
            command_id = await self.bus.send(cls, who.tenant_id, session_id, traceparent, command_id=command_id,
                                             **fields)
        except BaseException:
            # Not on Kafka: the caller gets an error, not a 202 (the runner counts the domain's rejections).
            self._count(cls, "rejected")
            raise
        self._count(cls, "accepted")
        await self.access.record_issuer(who, command_id)
        body: dict[str, Any] = {"commandId": command_id, "status": "accepted", "sessionId": session_id}
        if cls is c.SendMessage:
            body["messageId"] = message_id_for(command_id)
        return body

    def _count(self, cls: type[c.Command], outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.commands.labels(cls.TYPE, outcome).inc()

    async def accept(self, who: Principal, idem: Idem, traceparent: str | None, cls: type[c.Command],
                     session_id: str, **fields: Any) -> Answer:
        """Publish one command, honouring ``Idempotency-Key``."""
        return await self.idempotent(
            who, idem, lambda seed: self.publish(who, cls, session_id, seed, traceparent, **fields))


def accepted(answer: Answer, extra: dict[str, Any] | None = None) -> JsonResponse:
    """The 202 answer (``Idempotent-Replayed: true`` on a replay)."""
    body, replayed = answer
    return JsonResponse(body | (extra or {}), status_code=202,
                        headers={"Idempotent-Replayed": "true"} if replayed else None)
