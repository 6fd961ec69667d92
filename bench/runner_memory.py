"""Bench 6: runner memory per simulated session, 1,000 linked sessions on one runner.

RSS is read from ``/proc/<pid>/status`` (VmRSS) before the first session and
after all 1,000 are connected (history synced, idle). The baseline is the least
any runner could pay: a bare Python process that holds the same number of
``websockets`` client connections (one per session, the SimDriver's transport)
to a bare ``websockets`` server, measured the same way.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import httpx
import orjson

from bench.common import bench_env, free_port, raise_nofile, rss_bytes, write_result

SESSIONS = 1000

BASELINE_SERVER = '''
import asyncio, sys
from websockets.asyncio.server import serve
async def handler(ws):
    async for _ in ws:
        pass
async def main():
    async with serve(handler, "127.0.0.1", int(sys.argv[1])):
        await asyncio.Future()
asyncio.run(main())
'''

BASELINE_CLIENT = '''
import asyncio, resource, sys
from websockets.asyncio.client import connect
resource.setrlimit(resource.RLIMIT_NOFILE, (8192, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
async def main():
    n, port = int(sys.argv[1]), int(sys.argv[2])
    print("ready", flush=True)
    sys.stdin.readline()
    conns = []
    for i in range(n):
        conns.append(await connect(f"ws://127.0.0.1:{port}/d/{i}", compression=None))
    print("connected", flush=True)
    sys.stdin.readline()
asyncio.run(main())
'''


def _vm(pid: int) -> int:
    return rss_bytes(pid)


async def _baseline(n: int) -> dict[str, Any]:
    port = free_port()
    server = await asyncio.create_subprocess_exec(sys.executable, "-c", BASELINE_SERVER, str(port))
    await asyncio.sleep(1.0)
    client = await asyncio.create_subprocess_exec(sys.executable, "-c", BASELINE_CLIENT, str(n), str(port),
                                                  stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        assert client.stdin and client.stdout
        await client.stdout.readline()
        await asyncio.sleep(0.5)
        before = _vm(client.pid)
        client.stdin.write(b"go\n")
        await client.stdin.drain()
        await asyncio.wait_for(client.stdout.readline(), 120)
        await asyncio.sleep(2)
        after = _vm(client.pid)
        return {"rss_before_mb": round(before / 2**20, 1), "rss_after_mb": round(after / 2**20, 1),
                "per_session_kb": round((after - before) / n / 1024, 1)}
    finally:
        for proc in (server, client):  # server first: it would log every connection the client drops
            proc.kill()
            await proc.wait()


async def run() -> dict[str, Any]:
    raise_nofile(8192)
    async with bench_env() as env:
        _, sim_url = env.simulator()
        runner = env.runner(sim_url)
        _, api_url = env.command_api()
        _, key = await env.api_key()
        await asyncio.sleep(5)  # joined, partitions assigned, idle
        before = rss_bytes(runner.pid)
        t0 = time.monotonic()
        sem = asyncio.Semaphore(32)
        async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {key}"},
                                     timeout=60) as api, httpx.AsyncClient(base_url=sim_url, timeout=60) as sim:

            async def one(i: int) -> None:
                async with sem:
                    r = await api.post("/sessions", json={})
                    r.raise_for_status()
                    sid = r.json()["sessionId"]
                for _ in range(600):
                    async with sem:
                        s = await sim.post("/control/scan", json={"sessionId": sid, "phone": f"5197{i:08d}"})
                    if s.status_code == 200:
                        return
                    await asyncio.sleep(0.2)
                raise RuntimeError(f"session {sid} never showed a QR")

            await asyncio.gather(*(one(i) for i in range(SESSIONS)))
            linked_s = time.monotonic() - t0
            # Wait until the runner holds every device connection and traffic has settled.
            for _ in range(120):
                stats = (await sim.get("/control/stats")).json()
                await asyncio.sleep(1)
                again = (await sim.get("/control/stats")).json()
                if stats == again:
                    break
        await asyncio.sleep(3)
        after = rss_bytes(runner.pid)
    baseline = await _baseline(SESSIONS)
    per = (after - before) / SESSIONS / 1024
    result = {
        "what": "runner RSS growth per linked, connected, idle simulated session",
        "sessions": SESSIONS,
        "zapstream": {"rss_before_mb": round(before / 2**20, 1), "rss_after_mb": round(after / 2**20, 1),
                      "per_session_kb": round(per, 1), "link_seconds": round(linked_s, 1)},
        "baseline_bare_websocket_clients": baseline,
        "ratio": round(per / baseline["per_session_kb"], 2),
        "notes": "zapstream's figure includes the Session aggregate, the SimDriver's reader/dispatcher tasks and "
                 "the events of linking (QR, connected, history sync); the baseline is one idle websockets "
                 "client connection per session.",
    }
    write_result("6_runner_memory", result)
    return result


if __name__ == "__main__":
    print(orjson.dumps(asyncio.run(run()), option=orjson.OPT_INDENT_2).decode())
