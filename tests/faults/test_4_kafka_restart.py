"""Restart the Kafka broker (``infra/bin/kafka.sh down``, ``up``, ``wait``) while messages are being sent.

This is the shared broker: that is why the fault suite is its own ``make
test-faults`` and not part of ``make test``. POSTs during the outage may fail
(503/500 or a timeout): those are uncertain, never expected, and may appear at
most once. Every service must ride the outage out without being restarted;
afterwards every accepted message reached WhatsApp once, the topic holds every
event once, and the read model equals a fresh replay.
"""

from __future__ import annotations

import httpx

from tests.conftest import Stack
from tests.faults.support import restart_during_load
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics

TOTAL = 600


async def test_kafka_restart_during_load(
    stack: Stack, make_load, sim: httpx.AsyncClient, infra: str,  # type: ignore[no-untyped-def]
    kafka: KafkaSettings, topics: Topics, record,  # type: ignore[no-untyped-def]
) -> None:
    await restart_during_load("kafka", pause_s=2, total=TOTAL, stack=stack, make_load=make_load, sim=sim,
                              dsn=infra, bootstrap=kafka.bootstrap_servers, topic=topics.session_events, record=record)
