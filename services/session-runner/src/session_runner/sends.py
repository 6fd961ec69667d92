"""The send pipeline: committed send intents → WhatsApp, several in flight, in order per chat.

Each (session, chat) pair has a lane that sends one message at a time, so a chat's
messages keep their order; different chats (and sessions) proceed in parallel, up to
``per_session`` calls in flight per session. A slow call (media: storage, ffmpeg,
upload) holds up only its own chat.

A send for a session whose link is down is **held**, in order, until the link is back:
up to ``hold_deadline_s`` (then it fails with ``session_unavailable``), or with no
deadline for campaign sends. Outcomes go back to the partition owner through
``report``; the owner commits them in its next transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal

from opentelemetry.trace import SpanKind

from session_runner.drivers import port as d
from session_runner.media import MediaFailed, MediaPipeline
from zapstream_contracts import payloads as p
from zapstream_platform import telemetry
from zapstream_platform.metrics import Metrics

log = logging.getLogger(__name__)

Standing = Literal["pending", "settled", "gone"]
"""What the owner says of an intent: still to send, already settled, or its session is stopped/gone."""


@dataclass(frozen=True, slots=True)
class Sent:
    result: d.SendResult
    media: p.MediaEntry | None = None
    trace: str | None = None  # the driver call's span: the outcome's events continue from it


class Unavailable(Exception):
    """The session did not come back in time (or was stopped) while the send was held."""

    code = "session_unavailable"


@dataclass(frozen=True, slots=True)
class SendOutcome:
    session_id: str
    intent: p.SendRequested
    result: Sent | d.DriverError | MediaFailed | Unavailable
    trace: str | None
    seq: int = 0  # nothing to acknowledge to WhatsApp by itself


class Links:
    """Per session: whether its WhatsApp link is up, as the driver last told."""

    def __init__(self) -> None:
        self._up: dict[str, asyncio.Event] = {}

    def _event(self, sid: str) -> asyncio.Event:
        ev = self._up.get(sid)
        if ev is None:
            ev = self._up[sid] = asyncio.Event()
        return ev

    def up(self, sid: str) -> None:
        self._event(sid).set()

    def down(self, sid: str) -> None:
        self._event(sid).clear()

    def is_up(self, sid: str) -> bool:
        return self._event(sid).is_set()

    async def wait(self, sid: str, within_s: float) -> bool:
        try:
            await asyncio.wait_for(self._event(sid).wait(), within_s)
        except TimeoutError:
            return False
        return True


class SendPipeline:
    def __init__(
        self,
        *,
        driver: d.WhatsAppDriver,
        media: MediaPipeline | None,
        links: Links,
        standing: Callable[[str, p.SendRequested], Standing],
        report: Callable[[SendOutcome], None],
        hold_deadline_s: float = 60.0,
        per_session: int = 8,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics("session-runner")
        self.tracer = telemetry.tracer("session-runner")
        self.driver = driver
        self.media = media
        self.links = links
        self.standing = standing
        self.report = report
        self.hold_deadline_s = hold_deadline_s
        self.per_session = per_session
        self._lanes: dict[tuple[str, str], deque[tuple[p.SendRequested, str | None]]] = {}
        self._workers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Cleared while the partition is suspended (a rebalance): no new WhatsApp call starts, so a
        # partition that moves is not sent from two runners at once.
        self._active = asyncio.Event()
        self._active.set()

    def submit(self, sid: str, intent: p.SendRequested, trace: str | None) -> None:
        key = (sid, intent.to)
        self._lanes.setdefault(key, deque()).append((intent, trace))
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._lane(key), name=f"lane-{sid[:8]}")

    async def _lane(self, key: tuple[str, str]) -> None:
        sid = key[0]
        queue = self._lanes[key]
        try:
            while queue:
                intent, trace = queue[0]
                result = await self._run(sid, intent, trace)
                queue.popleft()
                if result is not None:
                    self.report(SendOutcome(sid, intent, result,
                                            result.trace if isinstance(result, Sent) and result.trace else trace))
        finally:
            if self._workers.get(key) is asyncio.current_task():
                del self._workers[key]
                if not queue:
                    self._lanes.pop(key, None)

    async def _run(self, sid: str, intent: p.SendRequested,
                   trace: str | None = None) -> Sent | d.DriverError | MediaFailed | Unavailable | None:
        loop = asyncio.get_running_loop()
        deadline = None if intent.campaign_id else loop.time() + self.hold_deadline_s
        while True:
            standing = self.standing(sid, intent)
            if standing == "settled":
                return None
            if standing == "gone":
                return Unavailable("the session was stopped before the message could be sent")
            if not self._active.is_set():
                try:
                    await asyncio.wait_for(self._active.wait(), 1.0)
                except TimeoutError:
                    pass
                continue
            if not self.links.is_up(sid):
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return Unavailable(f"the session did not reconnect within {self.hold_deadline_s:g} s")
                await self.links.wait(sid, 1.0 if remaining is None else min(remaining, 1.0))
                continue
            slots = self._slots.setdefault(sid, asyncio.Semaphore(self.per_session))
            async with slots:
                self._in_flight += 1
                self._idle.clear()
                try:
                    return await self._send_one(sid, intent, trace)
                except (d.DriverError, MediaFailed) as exc:
                    # The link dropped under the call: hold it again (same message id, so a
                    # copy that did get through is de-duplicated by the server).
                    if (not self.links.is_up(sid) and self.driver.supports_client_message_ids
                            and not isinstance(exc, MediaFailed)):
                        continue
                    return exc
                except Exception as exc:  # whatever broke, the command must end with a reason
                    log.exception("send failed unexpectedly", extra={"fields": {"session": sid}})
                    return MediaFailed("send_failed", f"cannot send the message: {type(exc).__name__}")
                finally:
                    self._in_flight -= 1
                    if self._in_flight == 0:
                        self._idle.set()

    async def _with_retries(self, call: Callable[[], Awaitable[d.SendResult]], kind: str = "text") -> d.SendResult:
        """When the answer is lost, re-send with the same id if the driver makes that safe (each call timed)."""
        attempts = 3 if self.driver.supports_client_message_ids else 1
        for attempt in range(attempts):
            started = time.perf_counter()
            try:
                return await call()
            except d.OutcomeUnknown:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.2 * 2**attempt)
            finally:
                self.metrics.runner_send.labels(kind).observe(time.perf_counter() - started)
        raise AssertionError("unreachable")

    async def _send_one(self, sid: str, intent: p.SendRequested, trace: str | None = None) -> Sent:
        """The driver call in a CLIENT span continuing the command's trace (``trace``, the runner's
        handling span), so the outcome's events are its children."""
        if not telemetry.enabled():
            return await self._send_traced(sid, intent)
        kind = "rich" if intent.rich is not None else "text" if intent.media is None else "media"
        with self.tracer.start_as_current_span(f"whatsapp send {kind}", kind=SpanKind.CLIENT,
                                               context=telemetry.context_from_traceparent(trace)):
            sent = await self._send_traced(sid, intent)
            return replace(sent, trace=telemetry.current_traceparent() or trace)

    async def _send_traced(self, sid: str, intent: p.SendRequested) -> Sent:
        if intent.rich is not None:
            rich = intent.rich
            return Sent(await self._with_retries(lambda: self.driver.send_rich(
                sid, intent.to, rich, message_id=intent.message_id, reply_to_id=intent.reply_to_message_id),
                "rich"))
        if intent.media is None:
            text = intent.text
            if text is None:  # an intent recovered after its tenant was erased: nothing left to send
                raise MediaFailed("erased", "the message's text was erased")
            # Only when there are some: drivers (and test doubles) written before mentions keep working.
            extra = {"mentions": tuple(intent.mentions)} if intent.mentions else {}
            return Sent(await self._with_retries(lambda: self.driver.send_text(
                sid, intent.to, text, message_id=intent.message_id,
                reply_to_id=intent.reply_to_message_id, forwarded=intent.forwarded, **extra)))
        if self.media is None:
            raise MediaFailed("media_unsupported", "this runner has no media storage configured")
        async with self.media.outgoing(intent.tenant_id, sid, intent) as prepared:
            result = await self._with_retries(lambda: self.driver.send_media(
                sid, intent.to, prepared.outgoing, message_id=intent.message_id,
                reply_to_id=intent.reply_to_message_id, forwarded=intent.forwarded), "media")
            return Sent(result, await self.media.keep_sent(prepared, result.message_id, intent.to))

    def pause(self) -> None:
        self._active.clear()

    def resume(self) -> None:
        self._active.set()

    async def drain(self, within_s: float) -> None:
        """Wait (bounded) for the calls in flight; held sends stay held for the next owner."""
        try:
            await asyncio.wait_for(self._idle.wait(), within_s)
        except TimeoutError:
            log.warning("sends still in flight at hand-over", extra={"fields": {"count": self._in_flight}})

    async def close(self) -> None:
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()
        self._lanes.clear()
