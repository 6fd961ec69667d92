"""Shared plumbing for the benchmarks: a private database and topic prefix, service processes,
a lightweight HTTP/1.1 load generator, percentiles and result files.

Everything runs on loopback against the Kafka broker and PostgreSQL of ``make infra-up``;
each bench uses its own topic prefix and database and drops the database afterwards.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from zapstream_platform import apikeys, db
from zapstream_platform.db import migrate
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics, ensure_topics

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
LOGS = REPO / ".data" / "bench-logs"
PG_BASE = "postgresql://zapstream:zapstream@127.0.0.1:55432"
ADMIN_DSN = f"{PG_BASE}/zapstream_test"
BOOTSTRAP = "127.0.0.1:19092"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_nofile(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def write_result(name: str, data: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    # The 1/5/15-minute load averages as the run ends: how busy the shared machine was meanwhile.
    data = {"bench": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
            "machine_load_average": [round(x, 2) for x in os.getloadavg()], **data}
    (RESULTS / f"{name}.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")


class LoadSampler:
    """The machine's load average, sampled while a bench runs (the 2 cores are shared), for its JSON.

    ``async with LoadSampler() as load: ...`` then ``load.summary()``.
    """

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s = every_s
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            await asyncio.sleep(self.every_s)

    async def __aenter__(self) -> LoadSampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, Any]:
        s = self.samples or [os.getloadavg()[0]]
        return {"loadavg_1m": {"min": round(min(s), 2), "mean": round(sum(s) / len(s), 2), "max": round(max(s), 2),
                               "samples": len(s), "every_s": self.every_s}}


@dataclass
class Proc:
    """A service as a child process (``python -m module``) with its log in ``.data/bench-logs``."""

    name: str
    args: list[str]
    env: dict[str, str]
    health: str | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        LOGS.mkdir(parents=True, exist_ok=True)
        with (LOGS / f"{self.name}.log").open("wb") as log:
            self.popen = subprocess.Popen([sys.executable, *self.args], env={**os.environ, **self.env},
                                          stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        if self.health:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if self.popen.poll() is not None:
                    raise RuntimeError(f"{self.name} exited; see {LOGS / self.name}.log")
                try:
                    if httpx.get(self.health, timeout=2).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            raise RuntimeError(f"{self.name} not healthy")
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


@dataclass
class BenchEnv:
    run_id: str
    dsn: str
    kafka: KafkaSettings
    topics: Topics
    procs: list[Proc] = field(default_factory=list)

    def env(self, prefix: str, pg: bool = True) -> dict[str, str]:
        env = {
            f"{prefix}KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
            f"{prefix}KAFKA__TOPIC_PREFIX": self.kafka.topic_prefix,
            f"{prefix}KAFKA__PARTITIONS": str(self.kafka.partitions),
            f"{prefix}LOG_LEVEL": "WARNING",
            f"{prefix}DEV_MODE": "true",  # the built-in JWT key is refused outside development mode
        }
        if pg:
            env[f"{prefix}POSTGRES__DSN"] = self.dsn
        return env

    def start(self, proc: Proc) -> Proc:
        self.procs.append(proc.start())
        return proc

    def command_api(self) -> tuple[Proc, str]:
        port = free_port()
        p = self.start(Proc("command-api", ["-m", "command_api"], self.env("COMMAND_API_")
                            | {"COMMAND_API_PORT": str(port),
                               "COMMAND_API_RUNNER_GROUP_ID": f"{self.kafka.topic_prefix}-runner"}, health=f"http://127.0.0.1:{port}/healthz"))
        return p, f"http://127.0.0.1:{port}"

    def ws_gateway(self) -> tuple[Proc, str]:
        port = free_port()
        p = self.start(Proc("ws-gateway", ["-m", "ws_gateway"], self.env("WS_GATEWAY_")
                            | {"WS_GATEWAY_PORT": str(port)}, health=f"http://127.0.0.1:{port}/healthz"))
        return p, f"ws://127.0.0.1:{port}"

    def simulator(self) -> tuple[Proc, str]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        p = self.start(Proc("simulator", ["-m", "wa_simulator"],
                            {"SIM_HOST": "127.0.0.1", "SIM_PORT": str(port), "SIM_LOG_LEVEL": "warning",
                             "SIM_CONTACT_READ_DELAY_MS": "10", "SIM_CONTACT_REPLY_DELAY_MS": "30"},
                            health=f"{url}/control/stats"))
        return p, url

    def runner(self, sim_url: str, name: str = "runner") -> Proc:
        return self.start(Proc(name, ["-m", "session_runner"], self.env("RUNNER_")
                               | {"RUNNER_SIM_URL": sim_url, "RUNNER_GROUP_ID": f"{self.kafka.topic_prefix}-runner",
                                  "RUNNER_INSTANCE_ID": name}))

    def projector(self) -> Proc:
        return self.start(Proc("projector", ["-m", "projector"], self.env("PROJECTOR_")
                               | {"PROJECTOR_GROUP_ID": f"{self.kafka.topic_prefix}-projector"}))

    async def api_key(self, tenant: str | None = None) -> tuple[str, str]:
        tenant = tenant or f"bench-{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(self.dsn)
        try:
            return tenant, await apikeys.create_key(conn, tenant, "bench")  # type: ignore[arg-type]
        finally:
            await conn.close()


async def create_database(name: str) -> str:
    """A new migrated database; returns its DSN."""
    await db.create_database(ADMIN_DSN, name)
    dsn = f"{PG_BASE}/{name}"
    await migrate(dsn, REPO / "db" / "migrations")
    return dsn


async def drop_database(name: str) -> None:
    await db.drop_database(ADMIN_DSN, name)


@asynccontextmanager
async def bench_env(partitions: int = 3) -> AsyncIterator[BenchEnv]:
    run_id = uuid.uuid4().hex[:8]
    name = f"zb_{run_id}"
    dsn = await create_database(name)
    kafka = KafkaSettings(topic_prefix=f"zb-{run_id}", partitions=partitions)
    await ensure_topics(kafka)
    env = BenchEnv(run_id, dsn, kafka, Topics.from_settings(kafka))
    try:
        yield env
    finally:
        for p in reversed(env.procs):
            p.stop()
        await drop_database(name)


# ----- a small HTTP/1.1 keep-alive load generator (cheaper than httpx, so the server gets the CPU) ------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return status, body


def http_request(method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}",
             "Content-Type: application/json", *[f"{k}: {v}" for k, v in headers.items()]]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def closed_loop(url: str, requests: list[bytes], concurrency: int, duration: float,
                      ok: int = 202) -> dict[str, Any]:
    """``concurrency`` keep-alive connections, each sending the next request when the last answered."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop_at = time.monotonic() + duration
    counter = iter(range(10**9))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.monotonic() < stop_at:
                req = requests[next(counter) % len(requests)]
                t = time.perf_counter()
                writer.write(req)
                status, _ = await _read_response(reader)
                latencies.append(time.perf_counter() - t)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - t0
    accepted = statuses.get(ok, 0)
    return {"requests": len(latencies), "accepted": accepted, "statuses": {str(k): v for k, v in statuses.items()},
            "seconds": round(elapsed, 2), "accepted_per_s": round(accepted / elapsed, 1),
            "p50_ms": round(pct(latencies, 50) * 1000, 2), "p99_ms": round(pct(latencies, 99) * 1000, 2)}
