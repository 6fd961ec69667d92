"""SIGKILL the session runner 10 times while 2,000 messages are being sent.

Each kill lands while the runner is actively sending (the simulator's inbox has
grown since the restart), so commands are in flight, intents may be committed
without outcomes, and transactions may be open. Afterwards: every message
reached WhatsApp once, every event is in the topic once, and the read model
equals a fresh replay.
"""

from __future__ import annotations

import asyncio
import random
import time

import httpx

from tests.conftest import Stack
from tests.faults.support import inbox, verify_everything, wait_until
from tests.support import stack as stack_module
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import Topics

TOTAL = 2000
KILLS = 10
SESSIONS = 6
RATE = 50.0  # posts/s: the load lasts ~40 s, the kills (each costing a rebalance) run into the backlog


async def test_runner_sigkilled_ten_times_during_2000_sends(
    stack: Stack, make_load, sim: httpx.AsyncClient, infra: str,  # type: ignore[no-untyped-def]
    kafka: KafkaSettings, topics: Topics, record,  # type: ignore[no-untyped-def]
) -> None:
    load = await make_load(SESSIONS)
    runner = stack.runner()
    first_log = runner.starts + 1
    rng = random.Random(6)
    t0 = time.monotonic()
    loader = asyncio.create_task(load.run(TOTAL, RATE))
    kills: list[dict[str, float]] = []
    try:
        for k in range(KILLS):
            # Kill at evenly spaced points of the delivery, each while the runner is sending.
            target = (k + 1) * TOTAL // (KILLS + 2)

            async def progressed(target: int = target) -> int:
                n = len(await inbox(sim, load.contact))
                return n if n >= target else 0

            delivered = await wait_until(progressed, 120, interval=0.2, what=f"{target} delivered")
            await asyncio.sleep(rng.uniform(0, 0.3))
            runner.kill()
            kills.append({"at_s": round(time.monotonic() - t0, 1), "delivered": delivered})
            runner.start()
        await loader
    finally:
        if not loader.done():
            loader.cancel()
        await load.http.aclose()
    figures = await verify_everything(dsn=infra, bootstrap=kafka.bootstrap_servers, topic=topics.session_events,
                                      sim=sim, load=load)
    recovered = sum(
        line.count('"recovering sends"')
        for n in range(first_log, runner.starts + 1)
        for line in (stack_module.LOG_DIR / f"{runner.name}.{n}.log").read_text(errors="replace").splitlines()
    )
    record(accepted=len(load.accepted), uncertain_posts=load.uncertain, rejected=dict(load.rejected),
           kills=len(kills), kill_points=[k["delivered"] for k in kills],
           partitions_recovering_unfinished_sends=recovered,
           total_s=round(time.monotonic() - t0, 1), **figures)
    assert len(load.accepted) == TOTAL, f"posts not accepted: {load.uncertain} uncertain, {dict(load.rejected)}"
    assert len(kills) == KILLS
