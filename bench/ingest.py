"""Bench 1: command ingest. Accepted ``POST /sessions/{id}/messages``/s and p99 at fixed concurrency,
against a bare FastAPI endpoint under the same uvicorn setup (one process, ``uvicorn.run``,
no access log), both driven by the same load generator, in interleaved slices. Measured alongside, for
information: the command API with two uvicorn worker processes (``COMMAND_API_WORKERS=2``; the ratio
compares one process with one process), and the bare endpoint plus an acks=all Kafka produce."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from bench.common import Proc, _read_response, bench_env, free_port, http_request, pct, write_result

CONCURRENCY = 32
SECONDS = 10.0  # per target, in ROUNDS interleaved slices
ROUNDS = 4

BARE_APP = '''
import sys
import orjson, uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
app = FastAPI()
@app.post("/sessions/{session_id}/messages", status_code=202)
async def send(session_id: str, request: Request) -> Response:
    body = orjson.loads(await request.body())
    return Response(orjson.dumps({"commandId": "c", "sessionId": session_id, "status": "accepted",
                                  "messageId": "m", "to": body["to"]}), status_code=202,
                    media_type="application/json")
@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
'''

# The same bare endpoint, plus the one thing a 202 must mean here: the record durably in Kafka (idempotent
# producer, acks=all, linger 2 ms). Not the baseline of the ratio; it shows how much of the gap is the produce.
PRODUCE_APP = '''
import sys, orjson, uvicorn
from contextlib import asynccontextmanager
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.responses import Response
state = {}
@asynccontextmanager
async def lifespan(app):
    producer = AIOKafkaProducer(bootstrap_servers=sys.argv[2], enable_idempotence=True, acks="all", linger_ms=2)
    await producer.start()
    state["producer"] = producer
    yield
    await producer.stop()
app = FastAPI(lifespan=lifespan)
@app.post("/sessions/{session_id}/messages", status_code=202)
async def send(session_id: str, request: Request) -> Response:
    body = orjson.loads(await request.body())
    await state["producer"].send_and_wait(sys.argv[3], orjson.dumps(body), key=session_id.encode())
    return Response(orjson.dumps({"commandId": "c", "sessionId": session_id, "status": "accepted",
                                  "messageId": "m", "to": body["to"]}), status_code=202,
                    media_type="application/json")
@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
'''


@dataclass
class Tally:
    """Raw results of one target over all its slices."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        accepted = self.statuses.get(202, 0)
        return {"requests": len(self.latencies), "accepted": accepted,
                "statuses": {str(k): v for k, v in self.statuses.items()}, "seconds": round(self.seconds, 2),
                "accepted_per_s": round(accepted / self.seconds, 1),
                "p50_ms": round(pct(self.latencies, 50) * 1000, 2), "p99_ms": round(pct(self.latencies, 99) * 1000, 2)}


async def slice_(url: str, requests: list[bytes], duration: float, tally: Tally) -> None:
    """``CONCURRENCY`` keep-alive connections for ``duration`` seconds, each sending when the last answered."""
    host, port = url.removeprefix("http://").split(":")
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
                tally.latencies.append(time.perf_counter() - t)
                tally.statuses[status] = tally.statuses.get(status, 0) + 1
        finally:
            writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    tally.seconds += time.monotonic() - t0


async def run() -> dict[str, Any]:
    load_before = os.getloadavg()
    async with bench_env() as env:
        def api(name: str, workers: int) -> str:
            port = free_port()
            env.start(Proc(name, ["-m", "command_api"], env.env("COMMAND_API_")
                           | {"COMMAND_API_PORT": str(port), "COMMAND_API_WORKERS": str(workers)},
                           health=f"http://127.0.0.1:{port}/healthz"))
            return f"http://127.0.0.1:{port}"

        def script(name: str, code: str, *args: str) -> str:
            port = free_port()
            env.start(Proc(name, ["-c", code, str(port), *args], {}, health=f"http://127.0.0.1:{port}/healthz"))
            return f"http://127.0.0.1:{port}"

        targets = {
            "zapstream": api("command-api", 1),
            "zapstream_2_workers": api("command-api-2", 2),
            "baseline_bare_fastapi": script("bare-fastapi", BARE_APP),
            "bare_fastapi_plus_acks_all_produce": script("bare-fastapi-produce", PRODUCE_APP,
                                                         env.kafka.bootstrap_servers, env.topics.session_commands),
        }
        _, key = await env.api_key()
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=targets["zapstream"], headers=headers, timeout=30) as http:
            sids = []
            for _ in range(8):
                r = await http.post("/sessions", json={})
                r.raise_for_status()
                sids.append(r.json()["sessionId"])
        reqs = [http_request("POST", f"/sessions/{sids[i % len(sids)]}/messages",
                             orjson.dumps({"to": f"5198888{i % 1000:04d}", "content": f"bench {i}"}), headers)
                for i in range(1000)]
        tallies = {name: Tally() for name in targets}
        for url in targets.values():  # warm-up
            await slice_(url, reqs, 2.0, Tally())
        # Interleaved slices: the machine is shared, and load that drifts during the run then falls on every
        # target alike instead of on whichever ran last.
        for _ in range(ROUNDS):
            for name, url in targets.items():
                await slice_(url, reqs, SECONDS / ROUNDS, tallies[name])
    out = {name: t.summary() for name, t in tallies.items()}
    zapstream, baseline = out["zapstream"], out["baseline_bare_fastapi"]
    result = {
        "what": "accepted POST /sessions/{id}/messages per second and latency, closed loop",
        "concurrency": CONCURRENCY, "seconds": SECONDS, "rounds": ROUNDS, **out,
        "loadavg_1m": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
        "ratio_throughput": round(zapstream["accepted_per_s"] / baseline["accepted_per_s"], 3),
        "ratio_p99": round(zapstream["p99_ms"] / baseline["p99_ms"], 2),
        "ratio_produce_floor": round(out["bare_fastapi_plus_acks_all_produce"]["accepted_per_s"]
                                     / baseline["accepted_per_s"], 3),
        "notes": "command-api: API key and session owner from in-process caches (evicted by identity events), "
                 "typed body validation, idempotent acks=all Kafka produce (linger 2 ms) before the 202, orjson "
                 "answer; no PostgreSQL on this path. Baseline: same uvicorn.run settings, parses JSON and answers "
                 "202. Targets are measured in interleaved slices. Goal (issue 19): >= 0.6x throughput and p99 <= 3x: "
                 "NOT reached. The bare endpoint plus nothing but an acks=all produce "
                 "(bare_fastapi_plus_acks_all_produce, same run) already falls to ratio_produce_floor (0.43 to 0.63 "
                 "over three runs): the produce alone takes most of the budget, and zapstream reaches 0.4 to 0.5 of "
                 "that floor. py-spy of the API process "
                 "at 32 connections: ~28% uvicorn + the middleware chain + routing + sending, ~23% event loop, "
                 "~13% FastAPI's dependency machinery, ~14% aiokafka (produce + its pure-Python sender/protocol), "
                 "~8% HTTP parsing, only ~5% zapstream's own code (principal, rate limit, scope, command). What "
                 "would get there: the send route as a plain ASGI endpoint in front of FastAPI (no dependency "
                 "injection, one compiled TypeAdapter), a C Kafka client (confluent-kafka) instead of aiokafka's "
                 "Python protocol, and worker processes on cores not shared with the load generator, Kafka and "
                 "PostgreSQL (zapstream_2_workers: here the two cores are already saturated). The machine is "
                 "shared (loadavg_1m): figures vary between runs, the ratio less.",
    }
    write_result("1_ingest", result)
    return result


if __name__ == "__main__":
    print(orjson.dumps(asyncio.run(run()), option=orjson.OPT_INDENT_2).decode())
