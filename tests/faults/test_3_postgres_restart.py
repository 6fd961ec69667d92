"""Restart PostgreSQL (``infra/bin/postgres.sh down/up/wait``) while messages are being sent.

The command API needs PostgreSQL to accept a command (API key, session
registry), so POSTs during the outage may fail; those are counted as rejected
or uncertain, never expected. The projector loses its connections in the
middle of its work. Afterwards every accepted message reached WhatsApp once,
the topic holds every event once, and the read model equals a fresh replay.
"""

from __future__ import annotations

import httpx

from tests.conftest import Stack
from tests.faults.support import restart_during_load
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics

TOTAL = 600


async def test_postgres_restart_during_load(
    stack: Stack, make_load, sim: httpx.AsyncClient, infra: str,  # type: ignore[no-untyped-def]
    kafka: KafkaSettings, topics: Topics, record,  # type: ignore[no-untyped-def]
) -> None:
    await restart_during_load("postgres", pause_s=3, total=TOTAL, stack=stack, make_load=make_load, sim=sim,
                              dsn=infra, bootstrap=kafka.bootstrap_servers, topic=topics.session_events, record=record)
