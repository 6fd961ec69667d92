"""Bench 2: end to end, from the start of ``POST /sessions/{id}/messages`` to the
``session.messages.upsert`` of that message on the tenant's WebSocket, as a rate sweep.

Open loop across 100 linked sessions at 50, 100, 200, 500 and 1,000 msg/s (``STEP_SECONDS``
each): delivered/s, p50 and p99 at each rate. The highest rate whose p99 was ≤ 250 ms with
everything delivered is then held for 60 s to check it is sustained.

Baseline, same run, same sweep: a bare pipeline with the same hops and no domain
(``bench/bare_pipeline.py``: FastAPI → aiokafka produce → transactional consume → produce →
consumer → WebSocket, one process per hop). A PNG of p99 against the offered rate, for both,
is written next to the JSON.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from websockets.asyncio.client import connect

from bench.common import RESULTS, Proc, bench_env, free_port, http_request, pct, write_result

SESSIONS = 100
RATES = [50, 100, 200, 500, 1000]
STEP_SECONDS = 15
SUSTAIN_SECONDS = 60
P99_GOAL_MS = 250
CONTACT = "51955500001"


class OpenLoop:
    """Requests at a fixed rate on a pool of keep-alive connections (raw HTTP/1.1: cheap for the client)."""

    def __init__(self, url: str, max_connections: int = 256) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        # At most this many connections; past that, requests wait for one (their wait counts in the latency,
        # which is measured from the moment the request was due).
        self.free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self.opened = 0
        self.max_connections = max_connections

    async def _conn(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.free.empty() and self.opened < self.max_connections:
            self.opened += 1
            try:
                return await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.opened -= 1
                raise
        return await self.free.get()

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        reader, writer = await self._conn()
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
        except BaseException:
            writer.close()
            self.opened -= 1
            raise
        self.free.put_nowait((reader, writer))
        return int(head[9:12]), body

    async def run(self, rate: float, seconds: float, make: Callable[[int], tuple[bytes, str | None]],
                  sent: dict[str, float], on_answer: Callable[[int, bytes, float], str | None]) -> dict[str, Any]:
        """Offer ``rate``/s for ``seconds``; ``sent`` maps a correlation id to its start time."""
        n = int(rate * seconds)
        errors = 0
        statuses: dict[str, int] = {}
        start = time.monotonic()

        async def one(i: int) -> None:
            nonlocal errors
            raw, key = make(i)
            t = time.monotonic()
            try:
                status, body = await self.request(raw)
            except (OSError, asyncio.IncompleteReadError) as exc:
                errors += 1
                statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
                return
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status != 202:
                errors += 1
                return
            if key is not None:
                sent[key] = t
            answered = on_answer(status, body, t)
            if answered is not None:
                sent[answered] = t

        tasks = []
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        posting = time.monotonic() - start
        await asyncio.gather(*tasks)
        return {"offered": n, "errors": errors, "answers": statuses, "posting_seconds": round(posting, 2)}


async def _measure(loop: OpenLoop, rate: float, seconds: float, make: Callable[[int], tuple[bytes, str | None]],
                   on_answer: Callable[[int, bytes, float], str | None], arrived: dict[str, float]) -> dict[str, Any]:
    sent: dict[str, float] = {}
    load: list[float] = []
    start = time.monotonic()
    posted = await loop.run(rate, seconds, make, sent, on_answer)
    load.append(os.getloadavg()[0])
    deadline = time.monotonic() + 60  # a backlog past capacity drains at the real rate
    while time.monotonic() < deadline and not set(sent) <= set(arrived):  # noqa: ASYNC110  bounded poll
        await asyncio.sleep(0.2)
    lat = [arrived[m] - t for m, t in sent.items() if m in arrived]
    last = max((arrived[m] for m in sent if m in arrived), default=start)
    delivered = len(lat)
    result = {"offered_rate": rate, **posted, "delivered": delivered,
              "delivered_per_s": round(delivered / max(last - start, seconds), 1),
              "p50_ms": round(pct(lat, 50) * 1000, 1), "p99_ms": round(pct(lat, 99) * 1000, 1),
              "load_average": load[-1]}
    result["ok"] = bool(delivered >= posted["offered"] and posted["errors"] == 0 and lat
                        and result["p99_ms"] <= P99_GOAL_MS)
    if not lat:
        result["p50_ms"] = result["p99_ms"] = None
    await asyncio.sleep(3)  # let the backlog of this step drain before the next
    return result


async def _sweep(loop: OpenLoop, make: Callable[[int], tuple[bytes, str | None]],
                 on_answer: Callable[[int, bytes, float], str | None], arrived: dict[str, float]) -> dict[str, Any]:
    await _measure(loop, 20, 2, make, on_answer, arrived)  # warm-up
    steps = []
    for rate in RATES:
        step = await _measure(loop, rate, STEP_SECONDS, make, on_answer, arrived)
        print(f"   {rate}/s: p99 {step['p99_ms']} ms, {step['delivered']}/{step['offered']}, answers {step['answers']}",
              flush=True)
        steps.append(step)
    passing = [s["offered_rate"] for s in steps if s["ok"]]
    sustained = None
    if passing:
        check = await _measure(loop, max(passing), SUSTAIN_SECONDS, make, on_answer, arrived)
        sustained = {**check, "rate": max(passing)}
    return {"steps": steps, "sustained_check": sustained,
            "highest_sustained_rate": sustained["rate"] if sustained and sustained["ok"] else 0}


async def _zapstream() -> dict[str, Any]:
    async with bench_env() as env:
        _, sim_url = env.simulator()
        env.runner(sim_url)
        env.projector()
        _, api_url = env.command_api()
        _, ws_url = env.ws_gateway()
        _, key = await env.api_key()
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=60) as api, \
                httpx.AsyncClient(base_url=sim_url, timeout=60) as sim:
            (await sim.post(f"/control/contacts/{CONTACT}", json={"autoReply": False, "autoRead": False})
             ).raise_for_status()
            sem = asyncio.Semaphore(16)

            async def link(i: int) -> str:
                async with sem:
                    r = await api.post("/sessions", json={})
                    r.raise_for_status()
                sid: str = r.json()["sessionId"]
                for _ in range(300):
                    async with sem:
                        s = await sim.post("/control/scan", json={"sessionId": sid, "phone": f"5196{i:08d}"})
                    if s.status_code == 200:
                        return sid
                    await asyncio.sleep(0.2)
                raise RuntimeError("no QR")

            arrived: dict[str, float] = {}
            async with connect(f"{ws_url}/ws/sessions?accessToken={key}", max_size=None, compression=None) as ws:

                async def read() -> None:
                    async for frame in ws:
                        now = time.monotonic()
                        e = orjson.loads(frame)
                        if e["type"] == "session.messages.upsert":
                            for m in e["payload"]["messages"]:
                                if m["fromMe"]:
                                    arrived.setdefault(m["id"], now)

                reader = asyncio.create_task(read())
                sids = await asyncio.gather(*(link(i) for i in range(SESSIONS)))
                await asyncio.sleep(5)  # connected events and history syncs settle
                bodies = [http_request("POST", f"/sessions/{sids[i % SESSIONS]}/messages",
                                       orjson.dumps({"to": CONTACT, "content": f"e2e {i}"}), headers)
                          for i in range(SESSIONS * 10)]

                def make(i: int) -> tuple[bytes, str | None]:
                    return bodies[i % len(bodies)], None

                def answered(status: int, body: bytes, t: float) -> str | None:
                    return str(orjson.loads(body)["messageId"])

                result = await _sweep(OpenLoop(api_url), make, answered, arrived)
                reader.cancel()
    return result


async def _bare() -> dict[str, Any]:
    prefix = f"zb-bare-{uuid.uuid4().hex[:6]}"
    # Same shape as zapstream's topics: 3 partitions, created up front.
    admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:19092")
    await admin.start()
    await admin.create_topics([NewTopic(f"{prefix}.in", 3, 1), NewTopic(f"{prefix}.out", 3, 1)])
    await admin.close()
    api_port, ws_port = free_port(), free_port()
    procs = [
        Proc("bare-api", ["-m", "bench.bare_pipeline", "api", str(api_port), prefix], {},
             health=f"http://127.0.0.1:{api_port}/healthz").start(),
        Proc("bare-relay", ["-m", "bench.bare_pipeline", "relay", prefix], {}).start(),
        Proc("bare-ws", ["-m", "bench.bare_pipeline", "ws", str(ws_port), prefix], {},
             health=f"http://127.0.0.1:{ws_port}/healthz").start(),
    ]
    try:
        await asyncio.sleep(3)
        arrived: dict[str, float] = {}
        async with connect(f"ws://127.0.0.1:{ws_port}/ws", max_size=None, compression=None) as ws:

            async def read() -> None:
                async for frame in ws:
                    arrived.setdefault(orjson.loads(frame)["id"], time.monotonic())

            reader = asyncio.create_task(read())

            def make(i: int) -> tuple[bytes, str | None]:
                key = uuid.uuid4().hex
                return http_request("POST", "/send", orjson.dumps({"id": key, "to": CONTACT, "content": f"e2e {i}"}),
                                    {}), key

            def answered(status: int, body: bytes, t: float) -> str | None:
                return None

            result = await _sweep(OpenLoop(f"http://127.0.0.1:{api_port}"), make, answered, arrived)
            reader.cancel()
    finally:
        for p in procs:
            p.stop()
    return result


def _plot(zapstream: dict[str, Any], bare: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for name, data in (("zapstream", zapstream), ("bare pipeline (same hops, no domain)", bare)):
        steps = [s for s in data["steps"] if s["p99_ms"] is not None]  # a rate where nothing arrived has none
        ax.plot([s["offered_rate"] for s in steps], [s["p99_ms"] for s in steps], marker="o", label=name)
    ax.axhline(P99_GOAL_MS, color="grey", linestyle="--", linewidth=1, label=f"goal p99 ≤ {P99_GOAL_MS} ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (msg/s, open loop, 100 sessions)")
    ax.set_ylabel("p99 POST → WebSocket event (ms)")
    ax.set_title("End to end: p99 against offered rate (same run, 2 cores)")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    path = RESULTS / "2_end_to_end.png"
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name


async def run() -> dict[str, Any]:
    zapstream = await _zapstream()
    bare = await _bare()
    z_rate, b_rate = zapstream["highest_sustained_rate"], bare["highest_sustained_rate"]
    result = {
        "what": "POST /sessions/{id}/messages → session.messages.upsert on the tenant's WebSocket, open loop, "
                f"{SESSIONS} sessions, {STEP_SECONDS} s per rate; the best passing rate held {SUSTAIN_SECONDS} s",
        "sessions": SESSIONS,
        "zapstream": zapstream,
        "baseline_bare_pipeline": bare,
        "ratio": round(z_rate / b_rate, 3) if b_rate else None,
        "ratio_is": "highest rate sustained with p99 ≤ 250 ms, zapstream / bare pipeline",
        "goal": "500 msg/s sustained 60 s with p99 ≤ 250 ms; ≥ 0.5 × the bare pipeline's sustained rate",
        "plot": _plot(zapstream, bare),
    }
    write_result("2_end_to_end", result)
    return result


if __name__ == "__main__":
    print(orjson.dumps(asyncio.run(run()), option=orjson.OPT_INDENT_2).decode())
