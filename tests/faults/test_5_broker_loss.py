"""A broker dies under load on a 3-broker cluster (``infra/bin/kafka-cluster.sh``), then comes back.

This module runs its own stack (command API, runner, projector, WebSocket gateway, simulator as processes)
against its own cluster on its own ports (19192-19194), never the shared single node. Topics are created
with replication factor 3 and ``min.insync.replicas=2``, so with one broker gone every write still has two
in-sync copies and nothing acknowledged can be lost.

Nothing configures replication: ``ensure_topics`` sees three brokers and creates every topic with
three replicas and ``min.insync.replicas=2`` (``zapstream_platform.topics.replication_for``).

Two scenarios, each a 2,000-message load: SIGKILL the broker that leads most partitions of the event topic,
and SIGKILL the active KRaft controller. Afterwards: every accepted message reached WhatsApp once, the
topic holds every event once, the read model equals a replay, every service survived without a restart, no
POST answered 5xx, and every partition is back to three in-sync replicas.

Run alone with ``make test-faults-cluster``; its results are a section of ``tests/faults/RESULTS.md``.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.conftest import ADMIN_DSN, OPERATOR_TOKEN, PG_BASE, Stack, runner_proc, service_env
from tests.faults.support import Load, verify_everything, wait_until
from tests.support.stack import REPO, Proc, free_port
from zapstream_platform.db import create_database, drop_database, migrate
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics, ensure_topics

TOTAL = 2000
RATE = 40.0
KILL_AFTER_S = 8.0
DOWN_FOR_S = 15.0
SCRIPT = REPO / "infra" / "bin" / "kafka-cluster.sh"


def cluster(*args: str) -> str:
    out = subprocess.run(["bash", str(SCRIPT), *args], check=True, cwd=REPO, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def kafka_cluster() -> Iterator[str]:
    """A fresh 3-broker cluster for this module; stopped (data kept for post-mortems) at the end."""
    cluster("reset")
    try:
        cluster("up")
        cluster("wait")
        yield cluster("bootstrap")
    finally:
        cluster("down")


# The fixtures below override tests/conftest.py's (same names, module scope), so the fault suite's
# make_load / tenant / revive_services fixtures run against this module's cluster stack.
@pytest.fixture(scope="module")
def kafka(kafka_cluster: str, run_id: str) -> KafkaSettings:
    # No replication settings: ensure_topics sees three brokers and chooses 3 copies, 2 in sync.
    return KafkaSettings(bootstrap_servers=kafka_cluster, topic_prefix=f"zc-{run_id}", partitions=3)


@pytest.fixture(scope="module")
def topics(kafka: KafkaSettings) -> Topics:
    return Topics.from_settings(kafka)


@pytest.fixture(scope="module")
async def infra(kafka: KafkaSettings, run_id: str) -> AsyncIterator[str]:
    name = f"zc_{run_id}"
    await create_database(ADMIN_DSN, name)
    dsn = f"{PG_BASE}/{name}"
    await migrate(dsn, REPO / "db" / "migrations")
    # The command API creates its identity topic itself if missing, with its own (RF 1) settings;
    # created here first so it is replicated like the rest.
    await ensure_topics(kafka, extra={f"{kafka.topic_prefix}.identity.events": kafka.event_retention_ms})
    yield dsn
    await drop_database(ADMIN_DSN, name)


@pytest.fixture(scope="module")
async def pg(infra: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(infra, min_size=1, max_size=5)
    assert pool is not None
    yield pool
    await pool.close()


def _env(prefix: str, kafka: KafkaSettings, dsn: str | None) -> dict[str, str]:
    return service_env(prefix, kafka, dsn)


@pytest.fixture(scope="module")
def stack(infra: str, kafka: KafkaSettings, simulator_url: str, run_id: str) -> Iterator[Stack]:
    api_port, ws_port = free_port(), free_port()
    jwt = {"KEYS": f'{{"zc-{run_id}": "zc-test-signing-key-{run_id}-{run_id}-{run_id}"}}', "ACTIVE_KID": f"zc-{run_id}"}
    runner = runner_proc("runner", kafka, simulator_url, run_id)
    runner.env |= _env("RUNNER_", kafka, infra) | {"RUNNER_GROUP_ID": f"zc-{run_id}-runner"}
    procs = {
        "projector": Proc("projector", "projector", _env("PROJECTOR_", kafka, infra)
                          | {"PROJECTOR_GROUP_ID": f"zc-{run_id}-projector"}),
        "runner": runner,
        "command-api": Proc("command-api", "command_api", _env("COMMAND_API_", kafka, infra)
                            | {"COMMAND_API_PORT": str(api_port),
                               "COMMAND_API_RUNNER_GROUP_ID": f"zc-{run_id}-runner",
                               "COMMAND_API_JWT__KEYS": jwt["KEYS"], "COMMAND_API_JWT__ACTIVE_KID": jwt["ACTIVE_KID"],
                               "COMMAND_API_OPERATOR_TOKEN": OPERATOR_TOKEN},
                            health=f"http://127.0.0.1:{api_port}/healthz"),
        "ws-gateway": Proc("ws-gateway", "ws_gateway", _env("WS_GATEWAY_", kafka, infra)
                           | {"WS_GATEWAY_PORT": str(ws_port),
                              "WS_GATEWAY_JWT__KEYS": jwt["KEYS"], "WS_GATEWAY_JWT__ACTIVE_KID": jwt["ACTIVE_KID"]},
                           health=f"http://127.0.0.1:{ws_port}/healthz"),
    }
    try:
        for proc in procs.values():
            proc.start()
        yield Stack(f"http://127.0.0.1:{api_port}", f"ws://127.0.0.1:{ws_port}", simulator_url, procs)
    finally:
        for proc in procs.values():
            proc.stop()


class CountingLoad(Load):
    """A :class:`Load` that also counts answers by status class, so 5xx are visible on their own."""

    statuses: Counter[int]

    async def post(self, i: int) -> None:
        sid = self.sessions[i % len(self.sessions)]
        try:
            r = await self.http.post(f"/sessions/{sid}/messages", json={"to": self.contact, "content": f"load {i}"})
        except httpx.HTTPError:
            self.uncertain += 1
            self.statuses[0] += 1  # no answer at all
            return
        self.statuses[r.status_code] += 1
        if r.status_code == 202:
            self.accepted[r.json()["messageId"]] = sid
        elif r.status_code >= 500:
            self.uncertain += 1
        else:
            self.rejected[r.status_code] += 1


async def describe(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [p for entry in described if entry.get("topic") == topic for p in entry.get("partitions", [])]


async def min_insync(bootstrap: str, topic: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    entries = response[0].resources[0][4]
    return str(next(e[1] for e in entries if e[0] == "min.insync.replicas"))


async def pick_victim(how: str, bootstrap: str, topic: str) -> int:
    if how == "controller":
        return int(await asyncio.to_thread(cluster, "controller"))
    leaders = Counter(int(p["leader"]) for p in await describe(bootstrap, topic))
    return leaders.most_common(1)[0][0]


@pytest.mark.parametrize("victim", ["partition-leader", "controller"])
async def test_broker_sigkilled_during_load(
    victim: str, stack: Stack, make_load: Callable[..., Any], sim: httpx.AsyncClient, infra: str,
    kafka: KafkaSettings, topics: Topics, record: Callable[..., None],
) -> None:
    bootstrap, topic = kafka.bootstrap_servers, topics.session_events
    before = await describe(bootstrap, topic)
    assert before and all(len(p["replicas"]) == 3 for p in before), f"not replicated 3 times: {before}"
    assert await min_insync(bootstrap, topic) == "2"

    base: Load = await make_load(4)
    load = CountingLoad(base.http, base.sessions, base.contact)
    load.statuses = Counter()
    t0 = time.monotonic()
    loader = asyncio.create_task(load.run(TOTAL, rate=RATE))
    try:
        await asyncio.sleep(KILL_AFTER_S)
        node = await pick_victim(victim, bootstrap, topic)
        controller_before = await asyncio.to_thread(cluster, "controller")
        await asyncio.to_thread(cluster, "kill", str(node))
        t_kill = time.monotonic()
        await asyncio.sleep(DOWN_FOR_S)
        await asyncio.to_thread(cluster, "start", str(node))
        await asyncio.to_thread(cluster, "wait")
        restarted_after = time.monotonic() - t_kill
        await loader
    finally:
        if not loader.done():
            loader.cancel()
        await load.http.aclose()

    alive = {name: p.popen is not None and p.popen.poll() is None for name, p in stack.procs.items()}
    server_errors = {s: n for s, n in load.statuses.items() if s == 0 or s >= 500}
    record(**{f"{victim}: killed_node": node, f"{victim}: controller_before": controller_before,
              f"{victim}: broker_down_s": round(restarted_after, 1), f"{victim}: posts": TOTAL,
              f"{victim}: statuses": dict(load.statuses), f"{victim}: accepted": len(load.accepted),
              f"{victim}: services_alive_after": alive})
    assert all(alive.values()), f"services died while a broker was down: {alive}"
    assert not server_errors, f"the API answered 5xx / nothing while one of three brokers was down: {server_errors}"
    assert len(load.accepted) == TOTAL, f"only {len(load.accepted)} of {TOTAL} accepted: {dict(load.statuses)}"

    figures = await verify_everything(dsn=infra, bootstrap=bootstrap, topic=topic, sim=sim, load=load)

    # The restarted broker caught up: every partition has its three replicas in sync again.
    async def isr_full() -> list[dict[str, Any]] | None:
        parts = await describe(bootstrap, topic)
        return parts if parts and all(len(p["isr"]) == 3 for p in parts) else None

    await wait_until(isr_full, 120, interval=1, what="every partition back to 3 in-sync replicas")
    record(**{f"{victim}: total_s": round(time.monotonic() - t0, 1)},
           **{f"{victim}: {k}": v for k, v in figures.items()})

