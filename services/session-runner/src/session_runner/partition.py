"""One owned partition: its sessions, its transactional producer, its WhatsApp connections.

The runtime is poll → handle → commit: every batch of commands a poll returns is
handled (through :data:`session_runner.handlers.HANDLERS`) and committed in **one**
Kafka transaction, together with the driver events and send outcomes that arrived
meanwhile and the consumed offsets. Between polls a flusher commits driver events
and send outcomes the same way.

Exactly-once, per partition:

* Commands are consumed read-committed; the events they cause and the consumed
  offset are committed in one Kafka transaction by a producer whose
  ``transactional_id`` is fixed per input partition. A new owner's
  ``init_transactions`` fences the old one (aiokafka has no KIP-447).
* State is rebuilt from the latest checkpoint of the compacted snapshot topic plus
  the events after it (:mod:`session_runner.snapshots`), so takeover time does not
  grow with history.
* A WhatsApp send is preceded by a committed ``send_requested`` intent and
  followed by a committed ``messages.upsert``. An intent left without outcome
  is re-sent with the same message id (the server de-duplicates) or, if the
  driver cannot choose ids, reported as status ``unknown``.
* Driver events are acknowledged to the server only after their events commit;
  the server re-delivers the rest on reconnect, and the aggregate drops repeats.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import ProducerFenced
from pydantic import ValidationError

from session_runner.drivers import port as d
from session_runner.handlers import HANDLERS, Context, Effects
from session_runner.media import MediaFailed, MediaPipeline, failed_entry
from session_runner.observe import RejectCall, observe
from session_runner.sends import Links, SendOutcome, SendPipeline, Sent, Standing, Unavailable
from session_runner.snapshots import SnapshotLog
from zapstream_contracts import commands as c
from zapstream_contracts import payloads as p
from zapstream_contracts import secrets
from zapstream_contracts.envelope import Envelope
from zapstream_contracts.timefmt import iso
from zapstream_domain.errors import CommandRejected, InvalidJid
from zapstream_domain.session import Session
from zapstream_platform import telemetry
from zapstream_platform.metrics import Metrics
from zapstream_platform.pii import KeyRing
from zapstream_platform.topics import Topics, partition_owner_producer
from zapstream_platform.tracing import child_of

log = logging.getLogger(__name__)

SOURCE = "/zapstream/session-runner"
OWNER_LOST = "owner_lost"


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _MediaReady:
    """Internal: an incoming message's media is stored (or given up on); record it."""

    message_id: str
    entry: p.MediaEntry
    seq: int = 0  # nothing to acknowledge by itself


Inbound = tuple[str, d.DriverEvent | _MediaReady | SendOutcome]


class _Inbox:
    """Driver events and send outcomes waiting for a transaction; a failed one puts them back in front."""

    def __init__(self) -> None:
        self._items: deque[Inbound] = deque()
        self._ready = asyncio.Event()

    def put(self, item: Inbound) -> None:
        self._items.append(item)
        self._ready.set()

    def take(self, limit: int) -> list[Inbound]:
        out = [self._items.popleft() for _ in range(min(limit, len(self._items)))]
        if not self._items:
            self._ready.clear()
        return out

    def put_back(self, items: list[Inbound]) -> None:
        self._items.extendleft(reversed(items))
        if self._items:
            self._ready.set()

    def __len__(self) -> int:
        return len(self._items)

    async def wait(self) -> None:
        await self._ready.wait()


class PartitionOwner:
    """Owns the sessions of one partition of the session topics while assigned."""

    def __init__(
        self,
        *,
        partition: int,
        topics: Topics,
        bootstrap_servers: str,
        group_id: str,
        driver: d.WhatsAppDriver,
        links: Links,
        on_event: Callable[[str, d.DriverEvent], Awaitable[None]],
        register: Callable[[str, PartitionOwner], None],
        flush_max: int = 500,
        flush_linger_s: float = 0.01,
        media: MediaPipeline | None = None,
        media_attempts: int = 3,
        hold_deadline_s: float = 60.0,
        sends_per_session: int = 8,
        checkpoint_events: int = 1000,
        metrics: Metrics | None = None,
        keys: KeyRing | None = None,
    ) -> None:
        self.partition = partition
        # Personal fields are encrypted with the tenant's key as envelopes are serialized (memory stays clear).
        self.keys = keys
        self.metrics = metrics or Metrics("session-runner")
        self.tracer = telemetry.tracer("session-runner")
        self._produced = 0  # events sent in the open transaction, counted once it commits
        self.topics = topics
        self.bootstrap = bootstrap_servers
        self.group_id = group_id
        self.driver = driver
        self.links = links
        self.on_event = on_event
        self.register = register
        self.flush_max = flush_max
        self.flush_linger_s = flush_linger_s
        self.media = media
        self.media_attempts = media_attempts
        self.command_tp = TopicPartition(topics.session_commands, partition)
        self.sessions: dict[str, Session] = {}
        self.snapshots = SnapshotLog(topics, partition, bootstrap_servers, checkpoint_events, keys)
        self.pipeline = SendPipeline(
            driver=driver, media=media, links=links, standing=self._standing,
            report=lambda outcome: self.inbox.put((outcome.session_id, outcome)),
            hold_deadline_s=hold_deadline_s, per_session=sends_per_session, metrics=self.metrics,
        )
        # Per session: incoming messages whose media is being fetched → their event seq. Acks stop
        # short of the oldest, so a crash makes WhatsApp re-deliver the message and the fetch resumes.
        self._fetching: dict[str, dict[str, int]] = {}
        self._ack_wanted: dict[str, int] = {}
        self.producer: AIOKafkaProducer | None = None
        self.lock = asyncio.Lock()
        self.inbox = _Inbox()
        self._flusher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        # While a rebalance is in progress nothing is committed; connections stay up.
        self._suspended = False
        self._resumed = asyncio.Event()
        self._resumed.set()
        # Set once another owner fenced this partition's producer: this owner is finished.
        self.fenced = False
        # Next command offset this owner may process; records before it were
        # handled already (a batch fetched before a rebalance can arrive late).
        self.next_offset = 0

    # ----- lifecycle -----------------------------------------------------------

    async def start(self, committed: int | None) -> None:
        """Fence the previous owner, rebuild state, say the links are being taken over, connect."""
        self.next_offset = committed or 0
        self.producer = partition_owner_producer(self.bootstrap, self.group_id, self.topics.session_commands,
                                                 self.partition)
        await self.producer.start()
        await self._rebuild()
        live = [sid for sid, s in self.sessions.items() if s.is_live]
        for sid in live:
            self.links.down(sid)
        async with self.lock, self._transaction() as producer:
            # Honest status: whatever the previous owner last recorded, the link is down until
            # this owner has it back (``connected`` follows when it is).
            at = now()
            for sid in live:
                session = self.sessions[sid]
                if session.status == "connected":
                    session.record_disconnected(at, OWNER_LOST)
                    await self._publish(producer, session, None)
            # A long tail (or no checkpoint yet): checkpoint now so the next owner reads less.
            if self.snapshots.tail_read > self.snapshots.checkpoint_events // 2:
                self.snapshots.due = True
        await self._recover_pending_sends()
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"flush-{self.partition}")
        log.info("partition assigned", extra={"fields": {
            "partition": self.partition, "sessions": len(self.sessions), "live": len(live),
            "snapshot_sessions": self.snapshots.loaded, "tail_events": self.snapshots.tail_read}})
        for sid in live:
            self._spawn(self._connect(sid))

    async def suspend(self) -> None:
        """A rebalance began: finish the transaction in progress, then commit nothing until resumed."""
        self.pipeline.pause()
        async with self.lock:
            self._suspended = True
            self._resumed.clear()

    def resume(self) -> None:
        self._suspended = False
        self._resumed.set()
        self.pipeline.resume()

    async def hand_over(self, grace_s: float) -> None:
        """Graceful shutdown: start no new call, let those in flight finish, commit their outcomes and a checkpoint."""
        self.pipeline.pause()
        await self.pipeline.drain(grace_s)
        async with self.lock:
            if not self._closing:
                try:
                    async with self._transaction() as producer:
                        acks = await self._apply_inbound(producer, self.inbox.take(len(self.inbox)))
                        self.snapshots.due = True
                    self._ack_all(acks)
                except Exception:
                    log.exception("final commit failed; the next owner recovers", extra={"fields": {
                        "partition": self.partition}})
            self._suspended = True
            self._resumed.clear()

    async def stop(self, disconnect: bool = True) -> None:
        """Release: stop sending and committing, close connections (unless handed over), release the producer."""
        self._closing = True
        self._resumed.set()
        async with self.lock:
            if self._flusher:
                self._flusher.cancel()
                await asyncio.gather(self._flusher, return_exceptions=True)
            await self.pipeline.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if disconnect:
                await asyncio.gather(*(self.driver.disconnect(sid) for sid in self.sessions), return_exceptions=True)
            for sid in self.sessions:
                self.links.down(sid)
            if self.producer:
                await self.producer.stop()
        log.info("partition released", extra={"fields": {"partition": self.partition}})

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _rebuild(self) -> None:
        self.sessions = await self.snapshots.load()
        for sid in self.sessions:
            self.register(sid, self)

    # ----- commands --------------------------------------------------------------

    async def handle_commands(self, records: list[Any]) -> None:
        """One poll: its commands, the driver events and outcomes that arrived, its offsets: one transaction."""
        effects = Effects()
        async with self.lock:
            records = [r for r in records if r.offset >= self.next_offset]
            if self._closing or self._suspended or not records:
                return
            inbound = self.inbox.take(self.flush_max)
            calls: list[RejectCall] = []
            try:
                async with self._transaction() as producer:
                    for record in records:
                        await self._handle_one(producer, record, effects)
                    acks = await self._apply_inbound(producer, inbound, calls)
                    await producer.send_offsets_to_transaction(
                        {self.command_tp: records[-1].offset + 1}, self.group_id
                    )
            except BaseException:
                self.inbox.put_back(inbound)
                raise
            self.next_offset = records[-1].offset + 1
        self._ack_all(acks)
        self._run_effects(effects)
        self._reject_calls(calls)

    def _run_effects(self, effects: Effects) -> None:
        for sid, intent, trace in effects.sends:
            self.pipeline.submit(sid, intent, trace)
        for sid in effects.connect:
            self._spawn(self._connect(sid))
        for sid in effects.disconnect:
            self.links.down(sid)
            self._spawn(self._quiet(self.driver.disconnect(sid)))
        for sid in effects.logout:
            self.links.down(sid)
            self._spawn(self._quiet(self.driver.logout(sid)))

    async def _handle_one(self, producer: AIOKafkaProducer, record: Any, effects: Effects) -> None:
        try:
            command = c.parse_command(record.value)
        except (ValidationError, ValueError) as exc:
            await producer.send(
                self.topics.session_commands_dlq,
                value=record.value,
                key=record.key,
                headers=[*(h for h in (record.headers or ()) if not h[0].startswith("zs_")),
                         ("zs_reason", f"unparseable command: {exc}"[:1000].encode()),
                         *_origin(record)],
            )
            return
        if not telemetry.enabled():
            await self._decide(producer, command, effects, child_of(command.traceparent))
            return
        # A CONSUMER span continuing the API's trace; the events below, and the driver call of a send
        # (sends.py), are its children through ``trace``.
        with telemetry.consume_span(self.tracer, f"handle {command.TYPE}", traceparent=command.traceparent,
                                    attributes={"messaging.system": "kafka", "messaging.destination.name":
                                                record.topic, "messaging.destination.partition.id":
                                                str(self.partition)}):
            await self._decide(producer, command, effects, telemetry.current_traceparent()
                               or child_of(command.traceparent))

    async def _decide(self, producer: AIOKafkaProducer, command: c.Command, effects: Effects, trace: str) -> None:
        ctx = Context(command=command, session=self.sessions.get(command.session_id), at=now(),
                      driver=self.driver, effects=effects, trace=trace, media=self.media)
        try:
            await HANDLERS[type(command)](ctx)
        except (CommandRejected, InvalidJid) as exc:
            code = exc.code if isinstance(exc, CommandRejected) else "invalid_jid"
            self.metrics.commands.labels(command.TYPE, "rejected").inc()
            session = self.sessions.get(command.session_id)
            if session is None or session.tenant_id != command.tenant_id:
                await self._send_orphan_failure(producer, command, code, str(exc), trace)
                return
            session.record_command_failed(ctx.at, command.command_id, command.TYPE, code, str(exc))
            await self._publish(producer, session, trace)
            return
        self.metrics.commands.labels(command.TYPE, "handled").inc()
        session = ctx.session
        assert session is not None
        if command.session_id not in self.sessions:
            self.sessions[command.session_id] = session
            self.register(command.session_id, self)
        await self._emit(producer, ctx.events, trace)
        await self._publish(producer, session, trace, {command.command_id: ctx.secret} if ctx.secret else None)

    async def dead_letter(self, record: Any, reason: str) -> None:
        """Move a command that keeps failing to the DLQ, with its offset, in one transaction."""
        async with self.lock:
            if record.offset < self.next_offset or self._closing or self._suspended:
                return
            async with self._transaction() as producer:
                headers = [h for h in (record.headers or ()) if not h[0].startswith("zs_")]
                headers += [("zs_reason", reason[:2000].encode()), *_origin(record)]
                await producer.send(self.topics.session_commands_dlq, value=record.value, key=record.key,
                                    headers=headers)
                try:
                    command = c.parse_command(record.value)
                except (ValidationError, ValueError):
                    command = None
                if command is not None and _is_uuid(command.session_id):
                    await self._send_orphan_failure(
                        producer, command, "dead_lettered", f"moved to the dead-letter topic: {reason}"[:500],
                        child_of(command.traceparent),
                    )
                await producer.send_offsets_to_transaction({self.command_tp: record.offset + 1}, self.group_id)
            self.next_offset = record.offset + 1
        log.error("command dead-lettered", extra={"fields": {"partition": self.partition, "offset": record.offset,
                                                             "reason": reason[:300]}})

    async def _send_orphan_failure(
        self, producer: AIOKafkaProducer, command: c.Command, code: str, reason: str, trace: str
    ) -> None:
        """A failure for a session this partition does not know (version 0: not part of any stream)."""
        env = Envelope(
            type=Session.CommandFailed.TYPE,
            session_id=command.session_id,
            event_id=str(uuid.uuid4()),
            occurred_on=iso(now()),
            payload=p.CommandFailed(
                tenant_id=command.tenant_id,
                command_id=command.command_id,
                command_type=command.TYPE,
                code=code,
                reason=reason,
                retryable=code in p.RETRYABLE_CODES,
            ).model_dump(by_alias=True, mode="json"),
            version=0,
            traceparent=trace,
        )
        await self._send_env(producer, env)

    # ----- sends -----------------------------------------------------------------

    def _standing(self, sid: str, intent: p.SendRequested) -> Standing:
        session = self.sessions.get(sid)
        if self._closing or session is None:
            return "settled"  # handed over: the next owner recovers the intent
        if intent.message_id not in session.pending_sends:
            # A session deleted meanwhile cleared its intents; the command still gets an outcome.
            return "gone" if session.status == "deleted" else "settled"
        if not session.can_hold_sends:
            return "gone"
        return "pending"

    def _record_outcome(self, session: Session, outcome: SendOutcome) -> None:
        at = now()
        intent, result = outcome.intent, outcome.result
        if intent.message_id not in session.pending_sends and session.status != "deleted":
            return  # already settled (a copy recovered after a rebuild)
        if isinstance(result, Sent):
            session.record_sent(at, intent, result.result.timestamp, result.result.message_id)
            if result.media is not None:
                session.record_media(at, [result.media])
            session.record_command_succeeded(
                at, intent.command_id, c.SendMessage.TYPE, {"messageId": result.result.message_id}
            )
        elif isinstance(result, d.OutcomeUnknown):
            # Maybe delivered, maybe not: say so rather than guess; the client decides.
            session.record_send_unknown(at, intent)
            session.record_command_failed(at, intent.command_id, c.SendMessage.TYPE, "outcome_unknown", str(result))
        elif isinstance(result, Unavailable):
            session.record_command_failed(at, intent.command_id, c.SendMessage.TYPE, result.code, str(result))
        elif isinstance(result, d.DriverError):
            session.record_command_failed(at, intent.command_id, c.SendMessage.TYPE, "send_failed", str(result))
        else:
            session.record_command_failed(at, intent.command_id, c.SendMessage.TYPE, result.code, str(result))

    async def _recover_pending_sends(self) -> None:
        """Finish what a previous owner left between intent and outcome."""
        pending = [(sid, intent) for sid, session in self.sessions.items()
                   for intent in list(session.pending_sends.values())]
        if not pending:
            return
        log.warning("recovering sends", extra={"fields": {"partition": self.partition, "count": len(pending)}})
        if self.driver.supports_client_message_ids:
            # Through the lanes, in their original order; each waits for its session's link.
            for sid, intent in pending:
                self.pipeline.submit(sid, intent, None)
            return
        async with self.lock, self._transaction() as producer:
            for sid, intent in pending:
                session = self.sessions[sid]
                session.record_send_unknown(now(), intent)
                await self._publish(producer, session, None)

    def reconnect_later(self, session_id: str, delay_s: float = 1.0) -> None:
        """Connect again after another connection took the device (unless this owner is leaving)."""

        async def later() -> None:
            await asyncio.sleep(delay_s)
            session = self.sessions.get(session_id)
            if (self._closing or self._suspended or session is None or not session.is_live
                    or self.links.is_up(session_id)):
                return
            log.info("taking the device back", extra={"fields": {"session": session_id}})
            await self._connect(session_id)

        if not self._closing:
            self._spawn(later())

    async def _connect(self, session_id: str) -> None:
        try:
            await self.driver.connect(session_id, self.on_event)
        except d.DriverError as exc:
            log.warning("connect failed", extra={"fields": {"session": session_id, "error": str(exc)}})
            self.inbox.put((session_id, d.Disconnected(seq=0, reason=f"connect_failed: {exc}")))

    @staticmethod
    async def _quiet(coro: Awaitable[Any]) -> None:
        try:
            await coro
        except d.DriverError as exc:
            log.info("driver call failed", extra={"fields": {"error": str(exc)}})

    # ----- driver events -----------------------------------------------------------

    async def _flush_loop(self) -> None:
        while not self._closing and not self.fenced:
            await self.inbox.wait()
            await self._resumed.wait()
            # Let a burst gather for a few ms: every transaction costs several broker round
            # trips, so under load fewer, larger ones are what keeps up.
            if len(self.inbox) < self.flush_max and self.flush_linger_s > 0:
                await asyncio.sleep(self.flush_linger_s)
            async with self.lock:
                if self._suspended or self._closing:
                    continue
                batch = self.inbox.take(self.flush_max)
                if not batch:
                    continue
                calls: list[RejectCall] = []
                try:
                    async with self._transaction() as producer:
                        acks = await self._apply_inbound(producer, batch, calls)
                except asyncio.CancelledError:
                    self.inbox.put_back(batch)
                    raise
                except Exception:
                    # Nothing was acknowledged, so nothing is lost: retry the same batch on rebuilt state.
                    self.inbox.put_back(batch)
                    log.exception("flush failed; retrying", extra={"fields": {"partition": self.partition}})
                    acks = None
            if acks is None:
                await asyncio.sleep(0.5)
                continue
            self._reject_calls(calls)
            self._ack_all(acks)

    def _reject_calls(self, calls: list[RejectCall]) -> None:
        """After the commit: reject the calls the sessions' setting refused, then send their auto-replies."""
        for call in calls:
            self._spawn(self._quiet(self.driver.reject_call(call.session_id, call.caller_jid, call.call_id)))
            if call.reply is not None:
                self.pipeline.submit(call.session_id, call.reply, None)

    async def _apply_inbound(self, producer: AIOKafkaProducer, batch: list[Inbound],
                             calls: list[RejectCall] | None = None) -> dict[str, int]:
        """``calls`` collects the calls to reject once the transaction has committed (a hand-over leaves
        them to the caller's phone: the session is moving)."""
        calls = [] if calls is None else calls
        acks: dict[str, int] = {}
        reconnected: set[str] = set()
        fetch: list[tuple[str, d.IncomingMessage]] = []
        stored: list[tuple[str, str]] = []
        for sid, ev in batch:
            session = self.sessions.get(sid)
            if session is None:
                continue
            if isinstance(ev, SendOutcome):
                self._record_outcome(session, ev)
                await self._publish(producer, session, ev.trace)
                continue
            if session.status == "deleted":
                continue
            if isinstance(ev, _MediaReady):
                session.record_media(now(), [ev.entry])
                stored.append((sid, ev.message_id))
            elif (call := observe(session, ev, now())) is not None:
                calls.append(call)
            if isinstance(ev, d.IncomingMessage) and ev.media is not None:
                fetch.append((sid, ev))
            if isinstance(ev, d.Connected) and session.presence_subscriptions:
                reconnected.add(sid)
            await self._publish(producer, session, None, {_QR: ev.code} if isinstance(ev, d.QrCode) else None)
            if ev.seq > acks.get(sid, 0):
                acks[sid] = ev.seq
        for sid in reconnected:
            for jid in sorted(self.sessions[sid].presence_subscriptions):
                self._spawn(self._quiet(self.driver.subscribe_presence(sid, jid)))
        for sid, message_id in stored:
            self._fetching.get(sid, {}).pop(message_id, None)
            acks.setdefault(sid, 0)
        for sid, msg in fetch:
            fetching = self._fetching.setdefault(sid, {})
            if msg.id not in fetching and not self.sessions[sid].has_media(msg.id):
                fetching[msg.id] = msg.seq
                self._spawn(self._fetch_media(sid, msg))
        return acks

    async def _fetch_media(self, sid: str, msg: d.IncomingMessage) -> None:
        """Store an incoming message's media, with retries; the outcome is recorded by the flush loop."""
        session = self.sessions.get(sid)
        if session is None:
            return
        reason = "this runner has no media storage configured"
        entry: p.MediaEntry | None = None
        for attempt in range(self.media_attempts if self.media is not None else 0):
            try:
                assert self.media is not None
                entry = await self.media.store_incoming(self.driver, session.tenant_id, sid, msg)
                break
            except MediaFailed as exc:
                reason = str(exc)
            except (OSError, ValueError) as exc:
                reason = f"cannot store the media: {exc}"
            log.warning("media fetch failed", extra={"fields": {"session": sid, "message": msg.id,
                                                                "attempt": attempt, "error": reason[:300]}})
            await asyncio.sleep(min(2**attempt, 8))
        self.inbox.put((sid, _MediaReady(msg.id, entry or failed_entry(msg, reason))))

    def _ack_all(self, acks: dict[str, int]) -> None:
        for sid, seq in acks.items():
            self._ack(sid, seq)

    def _ack(self, sid: str, seq: int) -> None:
        """Acknowledge up to ``seq`` (0: the last wanted), never past a message whose media is pending."""
        if seq:
            self._ack_wanted[sid] = seq
        target = self._ack_wanted.get(sid, 0)
        fetching = self._fetching.get(sid)
        if fetching:
            target = min(target, min(fetching.values()) - 1)
        if target > 0:
            self._spawn(self._quiet(self.driver.ack(sid, target)))

    # ----- publishing ------------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AIOKafkaProducer]:
        """One Kafka transaction of this partition's producer, ending with a checkpoint when one is due.

        On an error, memory may be ahead of Kafka: abort and rebuild from the topics. A
        cancellation leaves the transaction open; the next owner's fencing aborts it.
        """
        producer = self._producer()
        if self.fenced:
            raise ProducerFenced()
        try:
            await producer.begin_transaction()
        except AssertionError as exc:  # aiokafka's state machine after a fatal error (e.g. fenced)
            self.fenced = True
            raise ProducerFenced() from exc
        self.snapshots.begin()
        self._produced = 0
        try:
            yield producer
            await self.snapshots.write_if_due(producer, self.sessions)
            started = time.perf_counter()
            await producer.commit_transaction()
            self.metrics.txn_commit.observe(time.perf_counter() - started)
        except ProducerFenced:
            # Another owner took the partition: this producer can never commit again. Nothing to rebuild;
            # the runner releases this owner and the new one recovers from the topics.
            self.fenced = True
            raise
        except Exception:
            await self._abort_and_reset(producer)
            raise
        self.snapshots.committed()
        if self._produced:
            self.metrics.events_produced.labels(self.topics.session_events).inc(self._produced)

    def _producer(self) -> AIOKafkaProducer:
        assert self.producer is not None, "partition owner not started"
        return self.producer

    async def _publish(self, producer: AIOKafkaProducer, session: Session, trace: str | None,
                       found: dict[str, str] | None = None) -> None:
        """``found``: secrets that came with these events (the QR code under ``_QR``, a pairing code under its
        command id); they go to the secrets topic beside the events that announce them."""
        events = [e for e in session.collect_events() if isinstance(e, Session.Event)]
        await self._emit(producer, events, trace, found)

    async def _emit(self, producer: AIOKafkaProducer, events: list[Session.Event], trace: str | None,
                    found: dict[str, str] | None = None) -> None:
        for event in events:
            env = Envelope.from_domain(event, trace or child_of(None))
            whole = _with_secret(env, event, found) if found else None
            if whole is None:
                await self._send_env(producer, env)
                continue
            # Same transaction: the redacted event on the log kept forever, the whole one on the secrets topic.
            await self._send_env(producer, env, secrets.redacted_headers(env, SOURCE))
            await producer.send(self.topics.session_secrets, value=whole.value(), key=whole.session_id.encode(),
                                partition=self.partition, headers=secrets.headers(whole, SOURCE))

    async def _send_env(self, producer: AIOKafkaProducer, env: Envelope,
                        headers: list[tuple[str, bytes]] | None = None) -> None:
        if self.keys is not None:
            env = await self.keys.seal(env)
        sent = await producer.send(
            self.topics.session_events,
            value=env.value(),
            key=env.session_id.encode(),
            partition=self.partition,
            headers=headers if headers is not None else env.headers(SOURCE),
        )
        self.snapshots.track(sent)
        self._produced += 1

    async def _abort_and_reset(self, producer: AIOKafkaProducer) -> None:
        """After a failed transaction memory may be ahead of Kafka: abort and rebuild from the topics."""
        try:
            await producer.abort_transaction()
        except Exception:  # the producer may be fenced or broken; the rebuild below is what matters
            log.exception("abort failed")
        self.sessions.clear()
        await self._rebuild()


_QR = "qr"  # key of a QR code among the secrets found with a batch of events (others are command ids)


def _with_secret(env: Envelope, event: Session.Event, found: dict[str, str]) -> Envelope | None:
    """The whole copy of ``env`` for the secrets topic when a secret belongs to it, else None."""
    if isinstance(event, Session.QrUpdated) and _QR in found:
        return secrets.with_qr(env, found[_QR])
    if isinstance(event, Session.CommandSucceeded):
        code = found.get(event.payload.command_id)
        if code is not None and event.payload.command_type == c.RequestPairCode.TYPE:
            return secrets.with_pair_code(env, code)
    return None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _origin(record: Any) -> list[tuple[str, bytes]]:
    """Where a dead-lettered record came from, and when it was moved (the dead-letter topic's zs_* headers)."""
    return [
        ("zs_origin_topic", record.topic.encode()),
        ("zs_origin_partition", str(record.partition).encode()),
        ("zs_origin_offset", str(record.offset).encode()),
        ("zs_failed_at", iso(now()).encode()),
    ]
