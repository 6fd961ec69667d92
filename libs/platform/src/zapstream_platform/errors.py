"""Which failures are the infrastructure's (retry forever) and which are the data's (retry, then dead-letter)."""

from __future__ import annotations

import asyncpg
from aiokafka.errors import KafkaError

INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    KafkaError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
)


def is_infrastructure(exc: BaseException) -> bool:
    """A broker or database outage must never send a healthy record to a dead letter."""
    return isinstance(exc, INFRASTRUCTURE_ERRORS)
