"""Which partitions of the session command topic have a live session runner, as Kafka sees it.

The runners' consumer group is the source of truth for session ownership. A runner that
dies stays a member until its session timeout; after that its partitions either move to a
survivor (which then records ``owner_lost`` and reconnects) or, with no survivor, belong to
nobody. The API asks the group coordinator (at most once per ``max_age_s``) so that it can
show such sessions as ``unknown`` instead of repeating the last status a dead owner wrote.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from .settings import KafkaSettings

log = logging.getLogger(__name__)

# While a group rebalances, assignments are in flux: keep the last stable answer meanwhile.
_SETTLED = {"Stable", "Empty", "Dead"}


class PartitionOwners:
    def __init__(self, kafka: KafkaSettings, group_id: str, topic: str, max_age_s: float = 1.0) -> None:
        self.kafka = kafka
        self.group_id = group_id
        self.topic = topic
        self.max_age_s = max_age_s
        self._admin: AIOKafkaAdminClient | None = None
        self._owned: set[int] | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def owned(self) -> set[int] | None:
        """Partitions assigned to a live member; None when Kafka cannot tell (then show what is stored)."""
        async with self._lock:
            if time.monotonic() - self._at < self.max_age_s:
                return self._owned
            try:
                described = await self._describe()
            except Exception as exc:  # Kafka unreachable: no claim either way
                log.warning("runner group not described", extra={"fields": {"error": repr(exc)[:200]}})
                await self.close()
                self._owned, self._at = None, time.monotonic()
                return None
            if described is not None:
                self._owned = described
            self._at = time.monotonic()
            return self._owned

    async def _describe(self) -> set[int] | None:
        if self._admin is None:
            self._admin = AIOKafkaAdminClient(**self.kafka.client_options())
            await self._admin.start()
        response = (await self._admin.describe_consumer_groups([self.group_id]))[0]
        group: dict[str, Any] = response.to_object()["groups"][0]
        if group["state"] not in _SETTLED:
            return None
        owned: set[int] = set()
        for member in group["members"]:
            if not member["member_assignment"]:
                continue
            assignment = ConsumerProtocolMemberAssignment.decode(member["member_assignment"])
            for topic, partitions in assignment.assignment:
                if topic == self.topic:
                    owned.update(partitions)
        return owned

    async def close(self) -> None:
        if self._admin is not None:
            admin, self._admin = self._admin, None
            await admin.close()
