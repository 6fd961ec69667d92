"""Bench "failover": 1,000 linked sessions over two runners; SIGKILLs, a graceful hand-over and a
rolling restart, with sends going on; then the same kills with 1,000 events of history per session.

Figures per kill, read off the simulator's own connection records (``GET /control/devices``):
first and last reconnection of the moved sessions after the kill, the sessions that reconnected
needlessly (their partition stayed where it was), and the sends that failed (from the event
topic). Baseline, same run: the same kills with 10 events of history per session; the goal is
deep ≤ 1.2 × shallow.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
import uuid
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from bench.common import BOOTSTRAP, LOGS, BenchEnv, Proc, bench_env, write_result
from tests.support.runner_logs import owned_partitions
from zapstream_contracts.envelope import Envelope
from zapstream_platform.topics import partition_for, read_all

SESSIONS = 1000
KILLS = 5
RATE = 10.0  # sends/s during the kills
DEEP_EVENTS = 1000
CONTACT = "51955500002"
SOURCE = "/zapstream/bench"


def _owned(name: str) -> set[int]:
    return owned_partitions((LOGS / f"{name}.log").read_text(errors="replace"))


class Rig:
    def __init__(self, env: BenchEnv, api: httpx.AsyncClient, sim: httpx.AsyncClient, sim_url: str) -> None:
        self.env = env
        self.api = api
        self.sim = sim
        self.sim_url = sim_url
        self.runners: dict[str, Proc] = {}
        self.sids: list[str] = []
        self.accepted: set[str] = set()
        self.post_errors = 0

    def start_runner(self, name: str) -> Proc:
        proc = Proc(name, ["-m", "session_runner"], self.env.env("RUNNER_") | {
            "RUNNER_SIM_URL": self.sim_url, "RUNNER_GROUP_ID": f"{self.env.kafka.topic_prefix}-runner",
            "RUNNER_INSTANCE_ID": name, "RUNNER_LOG_LEVEL": "INFO"})
        proc.start()
        self.runners[name] = proc
        return proc

    async def rejoined(self, name: str) -> None:
        """A (re)started runner holds partitions again and every session is connected and quiet."""
        deadline = time.monotonic() + 120
        while not _owned(name) and time.monotonic() < deadline:  # noqa: ASYNC110  polling a log file
            await asyncio.sleep(0.2)
        if not _owned(name):
            raise RuntimeError(f"{name} was assigned nothing")
        await self.settled()

    async def devices(self) -> dict[str, dict[str, Any]]:
        return {d["sessionId"]: d for d in (await self.sim.get("/control/devices")).json()["devices"]}

    async def settled(self, quiet_s: float = 2.0, within_s: float = 300) -> None:
        """Every session connected, and no (re)connection for ``quiet_s``."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            devs = await self.devices()
            now_ms = time.time() * 1000
            if all(devs[s]["connected"] for s in self.sids) and \
                    max(devs[s]["attachedAtMs"] for s in self.sids) < now_ms - quiet_s * 1000:
                return
            await asyncio.sleep(0.3)
        raise RuntimeError("sessions did not settle")

    async def link_all(self) -> None:
        sem = asyncio.Semaphore(16)

        async def link(i: int) -> str:
            async with sem:
                r = await self.api.post("/sessions", json={})
                r.raise_for_status()
            sid: str = r.json()["sessionId"]
            for _ in range(600):
                try:
                    async with sem:
                        s = await self.sim.post("/control/scan", json={"sessionId": sid, "phone": f"5197{i:08d}"})
                    if s.status_code == 200:
                        return sid
                except httpx.HTTPError:
                    pass  # a busy machine drops a keep-alive connection now and then: scan again
                await asyncio.sleep(0.2)
            raise RuntimeError("no QR")

        self.sids = list(await asyncio.gather(*(link(i) for i in range(SESSIONS))))

    async def load(self, stop: asyncio.Event) -> None:
        rng = random.Random(7)
        i = 0
        start = time.monotonic()
        tasks: list[asyncio.Task[None]] = []

        async def one(n: int) -> None:
            try:
                r = await self.api.post(f"/sessions/{rng.choice(self.sids)}/messages",
                                        json={"to": CONTACT, "content": f"failover {n}"})
                if r.status_code == 202:
                    self.accepted.add(r.json()["commandId"])
                else:
                    self.post_errors += 1
            except httpx.HTTPError:
                self.post_errors += 1

        while not stop.is_set():
            delay = start + i / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
            i += 1
        await asyncio.gather(*tasks)

    async def kill_once(self, victim: str) -> dict[str, Any]:
        parts = _owned(victim)
        moved = [s for s in self.sids if partition_for(s, self.env.kafka.partitions) in parts]
        before = await self.devices()
        killed_at = time.time()
        self.runners[victim].popen.kill()  # type: ignore[union-attr]
        self.runners[victim].popen.wait(10)  # type: ignore[union-attr]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            devs = await self.devices()
            if all(devs[s]["connected"] and devs[s]["attachedAtMs"] / 1000 > killed_at for s in moved):
                break
            await asyncio.sleep(0.05)
        devs = await self.devices()
        back = sorted(devs[s]["attachedAtMs"] / 1000 - killed_at for s in moved)
        needless = [s for s in self.sids if s not in moved
                    and devs[s]["connections"] != before[s]["connections"]]
        self.start_runner(victim)  # it rejoins; the group rebalances back to 50/50
        await self.rejoined(victim)
        print(f"   kill {victim}: {len(moved)} moved, last back {back[-1]:.2f} s, needless {len(needless)}", flush=True)
        return {"victim": victim, "moved_sessions": len(moved), "first_back_s": round(back[0], 3),
                "last_back_s": round(back[-1], 3), "needless_reconnections": len(needless)}

    async def kills(self) -> list[dict[str, Any]]:
        out = []
        for k in range(KILLS):
            out.append(await self.kill_once("runner-a" if k % 2 == 0 else "runner-b"))
        return out

    async def graceful(self, name: str) -> dict[str, Any]:
        """SIGTERM: the runner hands its partitions over and leaves; measure the devices' gap."""
        parts = _owned(name)
        moved = [s for s in self.sids if partition_for(s, self.env.kafka.partitions) in parts]
        before = await self.devices()
        t0 = time.time()
        self.runners[name].stop()
        await self.settled(quiet_s=1.0)
        devs = await self.devices()
        gaps = []
        for s in moved:
            detached = devs[s]["detachedAtMs"] if devs[s]["detachedAtMs"] > before[s]["detachedAtMs"] else None
            gaps.append(0.0 if detached is None else max(0.0, (devs[s]["attachedAtMs"] - detached) / 1000))
        last = max(devs[s]["attachedAtMs"] for s in moved) / 1000 - t0
        self.start_runner(name)
        await self.rejoined(name)
        return {"runner": name, "moved_sessions": len(moved), "max_gap_s": round(max(gaps), 3),
                "median_gap_s": round(statistics.median(gaps), 3), "last_moved_attached_after_sigterm_s": round(last, 3)}

    async def rolling_restart(self) -> dict[str, Any]:
        before = await self.devices()
        t0 = time.time()
        for name in list(self.runners):
            self.runners[name].stop()
            self.start_runner(name)
            await self.rejoined(name)
        devs = await self.devices()
        gaps = [max(0.0, (devs[s]["attachedAtMs"] - devs[s]["detachedAtMs"]) / 1000) for s in self.sids
                if devs[s]["detachedAtMs"] > before[s]["detachedAtMs"]]
        return {"seconds": round(time.time() - t0, 1), "sessions_with_a_gap": len(gaps),
                "max_gap_s": round(max(gaps), 3) if gaps else 0.0}

    async def deepen(self) -> dict[str, Any]:
        """Stop the runners, append DEEP_EVENTS incoming messages per session to the event topic, restart."""
        for proc in self.runners.values():
            proc.stop()
        records = await read_all(BOOTSTRAP, self.env.topics.session_events)
        version: dict[str, int] = {}
        tenant: dict[str, str] = {}
        for r in records:
            env = Envelope.from_record(r.value, r.headers)
            if env.version > version.get(env.session_id, 0):
                version[env.session_id] = env.version
                tenant[env.session_id] = env.tenant_id
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id=f"bench-deep-{uuid.uuid4().hex}",
                                    linger_ms=20, max_batch_size=1024 * 1024)
        await producer.start()
        t0 = time.monotonic()
        n = 0
        try:
            for sid in self.sids:
                await producer.begin_transaction()
                for i in range(DEEP_EVENTS):
                    v = version[sid] + 1 + i
                    mid = f"DEEP{uuid.uuid4().hex[:16].upper()}"
                    env = Envelope(type="session.messages.upsert", session_id=sid, event_id=str(uuid.uuid4()),
                                   occurred_on="2026-01-01T00:00:00.000Z", version=v, payload={
                                       "tenantId": tenant[sid], "upsertType": "notify", "messagesCount": 1,
                                       "messages": [{"id": mid, "remoteJid": "51911122233@s.whatsapp.net",
                                                     "fromMe": False, "timestamp": 1767225600 + i,
                                                     "type": "conversation", "text": f"history {i}"}]})
                    await producer.send(self.env.topics.session_events, value=env.value(), key=sid.encode(),
                                        partition=partition_for(sid, self.env.kafka.partitions),
                                        headers=env.headers(SOURCE))
                    n += 1
                await producer.commit_transaction()
        finally:
            await producer.stop()
        written_s = time.monotonic() - t0
        t1 = time.monotonic()
        for name in list(self.runners):
            self.start_runner(name)
        for name in list(self.runners):
            await self.rejoined(name)
        await self.settled(within_s=600)
        return {"events_written": n, "write_seconds": round(written_s, 1),
                "first_start_with_full_replay_s": round(time.monotonic() - t1, 1)}


def _summary(kills: list[dict[str, Any]]) -> dict[str, Any]:
    last = [k["last_back_s"] for k in kills]
    first = [k["first_back_s"] for k in kills]
    return {"kills": kills,
            "first_back_s": {"min": min(first), "median": statistics.median(first), "max": max(first)},
            "last_back_s": {"min": min(last), "median": statistics.median(last), "max": max(last)},
            "needless_reconnections": sum(k["needless_reconnections"] for k in kills)}


async def run() -> dict[str, Any]:
    load_avg: list[float] = []
    async with bench_env(partitions=6) as env:
        _, sim_url = env.simulator()
        env.projector()
        _, api_url = env.command_api()
        _, key = await env.api_key()
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {key}"}, timeout=60,
                                     limits=limits) as api, httpx.AsyncClient(base_url=sim_url, timeout=60) as sim:
            (await sim.post(f"/control/contacts/{CONTACT}", json={"autoReply": False, "autoRead": False})
             ).raise_for_status()
            rig = Rig(env, api, sim, sim_url)
            rig.start_runner("runner-a")
            rig.start_runner("runner-b")
            for name in ("runner-a", "runner-b"):
                while not _owned(name):  # noqa: ASYNC110  both in the group before linking
                    await asyncio.sleep(0.2)
            t_link = time.monotonic()
            await rig.link_all()
            await rig.settled()
            link_s = time.monotonic() - t_link
            stop = asyncio.Event()
            loader = asyncio.create_task(rig.load(stop))

            async def sample() -> None:
                while not stop.is_set():
                    load_avg.append(os.getloadavg()[0])
                    await asyncio.sleep(5)

            sampler = asyncio.create_task(sample())
            shallow = _summary(await rig.kills())
            handover = await rig.graceful("runner-a")
            rolling = await rig.rolling_restart()
            stop.set()
            await loader
            deep_setup = await rig.deepen()
            stop.clear()
            loader = asyncio.create_task(rig.load(stop))
            deep = _summary(await rig.kills())
            stop.set()
            await loader
            sampler.cancel()
            # Every accepted send has an outcome; count the failed ones.
            deadline = time.monotonic() + 120
            failed: list[str] = []
            while time.monotonic() < deadline:
                outcomes: dict[str, str] = {}
                for r in await read_all(BOOTSTRAP, env.topics.session_events):
                    e = Envelope.from_record(r.value, r.headers)
                    if e.type in ("session.command.succeeded", "session.command.failed") \
                            and e.payload.get("commandId") in rig.accepted:
                        outcomes[e.payload["commandId"]] = e.type
                if len(outcomes) == len(rig.accepted):
                    failed = [c for c, t in outcomes.items() if t == "session.command.failed"]
                    break
                await asyncio.sleep(2)
            else:
                raise RuntimeError(f"{len(rig.accepted) - len(outcomes)} sends have no outcome")
    ratio = round(deep["last_back_s"]["median"] / shallow["last_back_s"]["median"], 2)
    result = {
        "what": f"{SESSIONS} linked sessions over two runners (6 partitions), {KILLS} SIGKILLs with {RATE:.0f} "
                "sends/s going on; a graceful hand-over; a rolling restart; then the kills again with "
                f"{DEEP_EVENTS} events of history per session",
        "sessions": SESSIONS,
        "link_seconds": round(link_s, 1),
        "shallow_history": shallow,
        "graceful_handover": handover,
        "rolling_restart": rolling,
        "deep_history_setup": deep_setup,
        "deep_history": deep,
        "sends_accepted": len(rig.accepted),
        "sends_failed": len(failed),
        "post_errors": rig.post_errors,
        "ratio": ratio,
        "ratio_is": "median last-back after SIGKILL, deep history / shallow history (goal ≤ 1.2)",
        "load_average": {"min": min(load_avg, default=0), "max": max(load_avg, default=0),
                         "mean": round(statistics.mean(load_avg), 2) if load_avg else 0},
        "goals": {
            "last_session_back_after_sigkill_median_s": {"goal": "≤ 2", "measured": shallow["last_back_s"]["median"]},
            "graceful_handover_gap_s": {"goal": "≤ 0.5", "measured": handover["max_gap_s"]},
            "healthy_sessions_disconnected": {"goal": 0, "measured": shallow["needless_reconnections"]
                                              + deep["needless_reconnections"]},
            "accepted_sends_failed": {"goal": 0, "measured": len(failed)},
            "deep_vs_shallow_takeover": {"goal": "≤ 1.2 ×", "measured": ratio},
        },
    }
    write_result("9_failover", result)
    return result


if __name__ == "__main__":
    print(orjson.dumps(asyncio.run(run()), option=orjson.OPT_INDENT_2).decode())
