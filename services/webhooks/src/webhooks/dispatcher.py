"""Sends due deliveries: signed POSTs, concurrent across endpoints, in order within (endpoint, session).

Each claimed delivery is one attempt in its own task. Its outcome (delivered, retry later, dead) and
the attempt log row are written in one transaction. A slow or failing endpoint occupies at most
``per_endpoint_concurrency`` of the ``concurrency`` slots and only delays its own queues, never
another endpoint's or tenant's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import asyncpg
import httpx

from webhooks import store
from webhooks.backoff import delay
from webhooks.secrets import without_secret
from webhooks.settings import Settings
from zapstream_platform import telemetry
from zapstream_platform.metrics import Health, Metrics
from zapstream_platform.webhooks import UnsafeUrl, check_url, headers

log = logging.getLogger(__name__)
USER_AGENT = "zapstream-webhooks/0.1"


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None
    error: str | None
    latency_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def post(client: httpx.AsyncClient, settings: Settings, d: store.Claimed) -> Outcome:
    """One signed POST. Redirects are not followed (a 3xx is a failure) and at most
    ``max_response_bytes`` of the answer are read; only the status counts."""
    start = time.perf_counter()

    def done(status: int | None, error: str | None) -> Outcome:
        return Outcome(status, error, int((time.perf_counter() - start) * 1000))

    try:
        await check_url(d.url, allow_private=settings.allow_private_networks, allow_http=settings.allow_http)
    except UnsafeUrl as exc:
        return done(None, f"refused: {exc}")
    hdrs = headers(d.secrets, d.event_id, int(time.time()), d.body)
    hdrs |= {"content-type": "application/json", "user-agent": USER_AGENT}
    carrier = telemetry.current_traceparent() or d.traceparent
    if carrier:
        hdrs["traceparent"] = carrier
    try:
        # httpx's timeout bounds each read; this bounds the whole exchange (a receiver dripping bytes).
        async with asyncio.timeout(settings.timeout_s), \
                client.stream("POST", d.url, content=d.body, headers=hdrs) as response:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= settings.max_response_bytes:
                    break
            return done(response.status_code, None if response.is_success else f"HTTP {response.status_code}")
    except (httpx.TimeoutException, TimeoutError):
        return done(None, "timeout")
    except httpx.HTTPError as exc:
        return done(None, f"{type(exc).__name__}: {str(exc)[:200]}")


class Dispatcher:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, client: httpx.AsyncClient, metrics: Metrics,
                 rng: random.Random | None = None, health: Health | None = None) -> None:
        self.settings = settings
        self.health = health or Health(())
        self.pool = pool
        self.client = client
        self.metrics = metrics
        self.rng = rng or random.Random()
        self.tracer = telemetry.tracer("webhooks")
        self.inflight: Counter[uuid.UUID] = Counter()
        self.slots = asyncio.Semaphore(settings.concurrency)
        self.tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def request_stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        last_gauge = 0.0
        while not self._stopping.is_set():
            try:
                await self.dispatch_once()
                if time.monotonic() - last_gauge > 5:
                    last_gauge = time.monotonic()
                    self.metrics.webhook_pending.set(await store.pending_count(self.pool))
                self.health.report("postgres", True)
            except Exception as exc:  # PostgreSQL away: keep trying, never end the loop
                self.health.report("postgres", False)
                log.warning("dispatch round failed", extra={"fields": {"error": repr(exc)[:300]}})
                await asyncio.sleep(1.0)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval_s)
            except TimeoutError:
                pass
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=self.settings.timeout_s + 5)

    async def dispatch_once(self) -> int:
        free = self.settings.concurrency - len(self.tasks)
        if free <= 0:
            return 0
        claimed = await store.claim_due(self.pool, limit=free, per_endpoint=self.settings.per_endpoint_concurrency,
                                        inflight=dict(self.inflight),
                                        lease_s=self.settings.timeout_s + self.settings.claim_lease_margin_s)
        for d in claimed:
            self.inflight[d.endpoint_id] += 1
            task = asyncio.create_task(self.attempt(d))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return len(claimed)

    async def attempt(self, d: store.Claimed) -> None:
        try:
            async with self.slots:
                with telemetry.consume_span(self.tracer, "webhook deliver", traceparent=d.traceparent,
                                            attributes={"webhook.event_type": d.event_type,
                                                        "webhook.attempt": d.attempts + 1}) as span:
                    outcome = await post(self.client, self.settings, d)
                    span.set_attribute("http.response.status_code", outcome.status_code or 0)
                self.metrics.webhook_latency.observe(outcome.latency_ms / 1000)
                await self.record(d, outcome)
        except asyncpg.ForeignKeyViolationError:
            log.info("endpoint deleted during a delivery", extra={"fields": {"delivery": d.id}})
        except Exception:
            # The lease ends and the delivery is tried again: at-least-once holds.
            log.exception("recording a webhook attempt failed", extra={"fields": {"delivery": d.id}})
        finally:
            self.inflight[d.endpoint_id] -= 1
            if self.inflight[d.endpoint_id] <= 0:
                del self.inflight[d.endpoint_id]
            self.wake()  # this queue's next delivery may be due now

    async def record(self, d: store.Claimed, outcome: Outcome) -> None:
        s = self.settings
        fields = {"delivery": d.id, "endpoint": str(d.endpoint_id), "attempt": d.attempts + 1,
                  "status": outcome.status_code, "latency_ms": outcome.latency_ms}
        async with self.pool.acquire() as conn, conn.transaction():
            await store.lock_queue(conn, d)
            await store.record_attempt(conn, d, outcome.status_code, outcome.error, outcome.latency_ms)
            # A QR or pairing code is kept only while it may still be sent: done rows keep the redacted copy.
            if outcome.ok:
                await store.mark_delivered(conn, d, outcome.status_code or 0, without_secret(d.event_type, d.body))
                result = "delivered"
            elif d.attempts + 1 >= s.max_attempts:
                if await store.mark_dead(conn, d, outcome.status_code, outcome.error, s.disable_after_dead,
                                         without_secret(d.event_type, d.body)):
                    log.warning("webhook endpoint disabled", extra={"fields": fields})
                result = "dead"
            else:
                wait = delay(d.attempts + 1, s.backoff_base_s, s.backoff_cap_s, s.jitter, self.rng)
                await store.mark_retry(conn, d, outcome.status_code, outcome.error, wait)
                result = "failed"
            await store.resync_queue(conn, d)  # the queue's next time: its (next) head's
        self.metrics.webhook_deliveries.labels(result).inc()
        log.info("webhook attempt", extra={"fields": fields | {"outcome": result, "error": outcome.error}})
