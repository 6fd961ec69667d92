"""Fixtures shared by every suite.

Integration and e2e tests use the real Kafka broker and PostgreSQL started by
``make infra-up``. Each test run gets its own topic prefix and a freshly
migrated ``zapstream_test`` database; each test gets its own tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.conftest_sim import *  # noqa: F403  (simulator process fixtures)
from tests.support.stack import REPO, Proc, free_port
from zapstream_platform import apikeys
from zapstream_platform.db import create_database, drop_database, migrate
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics, ensure_topics

PG_BASE = "postgresql://zapstream:zapstream@127.0.0.1:55432"
OPERATOR_TOKEN = "zt-operator-token"
ADMIN_DSN = f"{PG_BASE}/zapstream_test"


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def kafka(run_id: str) -> KafkaSettings:
    return KafkaSettings(topic_prefix=f"zt-{run_id}", partitions=3)


@pytest.fixture(scope="session")
def topics(kafka: KafkaSettings) -> Topics:
    return Topics.from_settings(kafka)


async def _delete_run_topics(kafka: KafkaSettings) -> None:
    """Every topic this run created (all carry its prefix): a long-lived dev broker stays small."""
    client = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await client.start()
    try:
        mine = [t for t in await client.list_topics() if t.startswith(f"{kafka.topic_prefix}.")
                or t.startswith(f"{kafka.topic_prefix}-")]
        if mine:
            await client.delete_topics(mine)
    finally:
        await client.close()


@pytest.fixture(scope="session")
async def infra(kafka: KafkaSettings, run_id: str) -> AsyncIterator[str]:
    """This run's own migrated database and topics; yields the database DSN.

    A database per run keeps concurrent runs (several developers, pytest-xdist
    workers) from seeing each other's rows.
    """
    name = f"zt_{run_id}"
    await create_database(ADMIN_DSN, name)
    dsn = f"{PG_BASE}/{name}"
    await migrate(dsn, REPO / "db" / "migrations")
    await ensure_topics(kafka)
    yield dsn
    await _delete_run_topics(kafka)
    await drop_database(ADMIN_DSN, name)


@pytest.fixture(scope="session")
async def pg(infra: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(infra, min_size=1, max_size=5)
    assert pool is not None
    yield pool
    await pool.close()


@dataclass
class Stack:
    api_url: str
    ws_url: str
    sim_url: str
    procs: dict[str, Proc]

    def runner(self, name: str = "runner") -> Proc:
        return self.procs[name]


def service_env(prefix: str, kafka: KafkaSettings, dsn: str | None) -> dict[str, str]:
    env = {
        f"{prefix}KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        f"{prefix}KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
        f"{prefix}KAFKA__PARTITIONS": str(kafka.partitions),
        f"{prefix}LOG_LEVEL": "INFO",
        # Tests set their own JWT keys; dev mode only matters where a service would fall back to the built-in one.
        f"{prefix}DEV_MODE": "true",
    }
    if dsn:
        env[f"{prefix}POSTGRES__DSN"] = dsn
    return env


def runner_proc(name: str, kafka: KafkaSettings, sim_url: str, run_id: str, dsn: str | None = None) -> Proc:
    # The runner's database holds only the tenants' data keys; it must be the run's database (see ``infra``).
    env = service_env("RUNNER_", kafka, dsn or f"{PG_BASE}/zt_{run_id}") | {
        "RUNNER_SIM_URL": sim_url,
        "RUNNER_GROUP_ID": f"zt-{run_id}-runner",
        "RUNNER_INSTANCE_ID": name,
        "RUNNER_METRICS_PORT": str(free_port()),  # each runner its own (the default 9101 is for one per host)
    }
    return Proc(name, "session_runner", env)


@pytest.fixture(scope="session")
def stack(infra: str, kafka: KafkaSettings, simulator_url: str, run_id: str) -> Iterator[Stack]:
    api_port, ws_port = free_port(), free_port()
    plans = orjson.dumps({"default": {"per_key": "1000/1", "per_tenant": "2000/1"},
                          "tiny": {"per_key": "5/60", "per_tenant": "8/60"}}).decode()
    procs = {
        "projector": Proc("projector", "projector", service_env("PROJECTOR_", kafka, infra)
                          | {"PROJECTOR_GROUP_ID": f"zt-{run_id}-projector",
                             "PROJECTOR_METRICS_PORT": str(free_port())}),
        "runner": runner_proc("runner", kafka, simulator_url, run_id),
        "command-api": Proc("command-api", "command_api", service_env("COMMAND_API_", kafka, infra)
                            | {"COMMAND_API_PORT": str(api_port),
                               "COMMAND_API_RUNNER_GROUP_ID": f"zt-{run_id}-runner",
                               # tests/e2e/test_auth.py runs an SMTP server on this port (derived from run_id)
                               "COMMAND_API_MAIL__SMTP_HOST": "127.0.0.1",
                               "COMMAND_API_MAIL__SMTP_PORT": str(10000 + int(run_id, 16) % 20000),
                               "COMMAND_API_MAIL__POLL_INTERVAL_S": "0.1",
                               "COMMAND_API_AUTH__TRUST_FORWARDED_FOR": "true",
                               "COMMAND_API_JWT__KEYS": f'{{"zt-{run_id}": "zt-test-signing-key-{run_id}-{run_id}-{run_id}"}}',
                               "COMMAND_API_JWT__ACTIVE_KID": f"zt-{run_id}",
                               "COMMAND_API_OPERATOR_TOKEN": OPERATOR_TOKEN,
                               "COMMAND_API_WS_GATEWAY_URL": f"ws://127.0.0.1:{ws_port}",
                               "COMMAND_API_RATE_LIMITS__PLANS": plans},
                            health=f"http://127.0.0.1:{api_port}/healthz"),
        "ws-gateway": Proc("ws-gateway", "ws_gateway", service_env("WS_GATEWAY_", kafka, infra)
                           | {"WS_GATEWAY_PORT": str(ws_port),
                              "WS_GATEWAY_JWT__KEYS": f'{{"zt-{run_id}": "zt-test-signing-key-{run_id}-{run_id}-{run_id}"}}',
                              "WS_GATEWAY_JWT__ACTIVE_KID": f"zt-{run_id}",
                              "WS_GATEWAY_WS_AUTH__REFRESH_S": "0.5"},
                           health=f"http://127.0.0.1:{ws_port}/healthz"),
    }
    try:
        for proc in procs.values():
            proc.start()
        yield Stack(f"http://127.0.0.1:{api_port}", f"ws://127.0.0.1:{ws_port}", simulator_url, procs)
    finally:
        for proc in procs.values():
            proc.stop()


@dataclass
class Tenant:
    id: str
    key: str
    http: httpx.AsyncClient


@pytest.fixture
async def tenant_factory(pg: asyncpg.Pool, stack: Stack) -> AsyncIterator[object]:
    clients: list[httpx.AsyncClient] = []

    async def make() -> Tenant:
        tenant_id = f"t-{uuid.uuid4().hex[:10]}"
        key = await apikeys.create_key(pg, tenant_id, "test")
        http = httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=15)
        clients.append(http)
        return Tenant(tenant_id, key, http)

    yield make
    for http in clients:
        await http.aclose()


@pytest.fixture
async def tenant(tenant_factory: object) -> Tenant:
    return await tenant_factory()  # type: ignore[operator,no-any-return]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if "integration" in path.parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in path.parts:
            item.add_marker(pytest.mark.e2e)
        elif "faults" in path.parts:
            item.add_marker(pytest.mark.faults)
