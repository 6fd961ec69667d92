"""One owned partition: its sessions, its transactional producer, its WhatsApp connections.

Exactly-once, per partition:

* Commands are consumed read-committed; the events they cause and the consumed
  offset are committed in one Kafka transaction by a producer whose
  ``transactional_id`` is fixed per input partition. A new owner's
  ``init_transactions`` fences the old one (aiokafka has no KIP-447).
* State is rebuilt from the co-partitioned event topic on assignment.
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
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from session_runner.drivers import port as d
from session_runner.media import MediaFailed, MediaPipeline, failed_entry
from zapstream_domain import commands as c
from zapstream_domain import payloads as p
from zapstream_domain.decisions import decide, event_from_wire, evolve
from zapstream_domain.errors import CommandRejected, InvalidJid
from zapstream_domain.jids import normalize_jid
from zapstream_domain.session import EVENTS_BY_TYPE, Session, iso
from zapstream_platform.envelope import Envelope
from zapstream_platform.topics import Topics
from zapstream_platform.tracing import child_of

log = logging.getLogger(__name__)

SOURCE = "/zapstream/session-runner"

IDEMPOTENT_EFFECTS = (
    c.RequestPairCode,
    c.ReadMessages,
    c.EditMessage,
    c.DeleteMessage,
    c.ReactToMessage,
    c.SubscribePresence,
    c.SendPresence,
)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _MediaReady:
    """Internal: an incoming message's media is stored (or given up on); record it."""

    message_id: str
    entry: p.MediaEntry
    seq: int = 0  # nothing to acknowledge by itself


@dataclass
class _Inbound:
    session_id: str
    event: d.DriverEvent | _MediaReady


@dataclass(frozen=True, slots=True)
class _Sent:
    result: d.SendResult
    media: p.MediaEntry | None = None


@dataclass
class _After:
    """Effects to run once a transaction has committed."""

    connect: list[str] = field(default_factory=list)
    disconnect: list[str] = field(default_factory=list)
    logout: list[str] = field(default_factory=list)
    sends: list[tuple[str, p.SendRequested, str | None]] = field(default_factory=list)


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
        register: Callable[[str, PartitionOwner], None],
        flush_max: int = 500,
        flush_linger_s: float = 0.01,
        media: MediaPipeline | None = None,
        media_attempts: int = 3,
    ) -> None:
        self.partition = partition
        self.topics = topics
        self.bootstrap = bootstrap_servers
        self.group_id = group_id
        self.driver = driver
        self.register = register
        self.flush_max = flush_max
        self.flush_linger_s = flush_linger_s
        self.media = media
        self.media_attempts = media_attempts
        # Per session: the last send queued behind a media send (sends of a session keep their order).
        self._lanes: dict[str, asyncio.Task[None]] = {}
        # Per session: incoming messages whose media is being fetched → their event seq. Acks stop
        # short of the oldest, so a crash makes WhatsApp re-deliver the message and the fetch resumes.
        self._fetching: dict[str, dict[str, int]] = {}
        self._ack_wanted: dict[str, int] = {}
        self.command_tp = TopicPartition(topics.session_commands, partition)
        self.sessions: dict[str, Session] = {}
        self.producer: AIOKafkaProducer | None = None
        self.lock = asyncio.Lock()
        self.inbound: asyncio.Queue[_Inbound] = asyncio.Queue()
        self._flusher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        # Next command offset this owner may process; records before it were
        # handled already (a batch fetched before a rebalance can arrive late).
        self.next_offset = 0

    # ----- lifecycle -----------------------------------------------------------

    async def start(self, committed: int | None) -> None:
        """Fence the previous owner, rebuild state, finish its sends, then connect sessions."""
        self.next_offset = committed or 0
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            transactional_id=f"{self.group_id}.{self.topics.session_commands}.{self.partition}",
            enable_idempotence=True,
            linger_ms=2,
            max_batch_size=256 * 1024,
        )
        await self.producer.start()
        await self._rebuild()
        await self._recover_pending_sends()
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"flush-{self.partition}")
        live = [sid for sid, s in self.sessions.items() if s.is_live]
        log.info(
            "partition assigned",
            extra={"fields": {"partition": self.partition, "sessions": len(self.sessions), "live": len(live)}},
        )
        for sid in live:
            self._spawn(self._connect(sid))

    async def stop(self) -> None:
        """Hand over: finish the current transaction, close connections, release the producer."""
        self._closing = True
        async with self.lock:
            if self._flusher:
                self._flusher.cancel()
                await asyncio.gather(self._flusher, return_exceptions=True)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.gather(
                *(self.driver.disconnect(sid) for sid in self.sessions), return_exceptions=True
            )
            if self.producer:
                await self.producer.stop()
        log.info("partition released", extra={"fields": {"partition": self.partition}})

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----- rebuild -------------------------------------------------------------

    async def _rebuild(self) -> None:
        tp = TopicPartition(self.topics.session_events, self.partition)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            await consumer.seek_to_beginning(tp)
            count = 0
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=5000)
                for record in batch.get(tp, []):
                    self._apply_stored(record.value, record.headers)
                    count += 1
            for sid in self.sessions:
                self.register(sid, self)
            log.info("rebuilt", extra={"fields": {"partition": self.partition, "events": count}})
        finally:
            await consumer.stop()

    def _apply_stored(self, value: bytes, headers: Any) -> None:
        env = Envelope.from_record(value, headers)
        if env.type not in EVENTS_BY_TYPE or env.version <= 0:
            return
        current = self.sessions.get(env.session_id)
        if current is None and env.type != Session.Created.TYPE:
            return
        if current is not None and env.version <= current.version:
            return  # already applied (defensive: transactions make this unreachable)
        event = event_from_wire(env.type, env.session_id, env.version, env.occurred_at(), env.payload)
        self.sessions[env.session_id] = evolve(current, event)

    # ----- commands --------------------------------------------------------------

    async def handle_commands(self, records: list[Any]) -> None:
        """Process one batch of command records in a single transaction, then run its effects."""
        after = _After()
        async with self.lock:
            records = [r for r in records if r.offset >= self.next_offset]
            if self._closing or not records:
                return
            async with self._transaction() as producer:
                for record in records:
                    await self._handle_one(producer, record, after)
                await producer.send_offsets_to_transaction(
                    {self.command_tp: records[-1].offset + 1}, self.group_id
                )
            self.next_offset = records[-1].offset + 1
            direct = []
            # Media takes seconds (storage, ffmpeg, upload): a session with media in this batch sends
            # all of it through its lane, outside the lock and in order; later sends queue behind.
            laned = {sid for sid, intent, _ in after.sends if intent.media is not None} | set(self._lanes)
            for item in after.sends:
                if item[0] in laned:
                    self._queue_lane(*item)
                else:
                    direct.append(item)
            if direct:
                await self._send_all(direct)
        for sid in after.connect:
            self._spawn(self._connect(sid))
        for sid in after.disconnect:
            self._spawn(self._quiet(self.driver.disconnect(sid)))
        for sid in after.logout:
            self._spawn(self._quiet(self.driver.logout(sid)))

    async def dead_letter(self, record: Any, reason: str) -> None:
        """Move a command that keeps failing to the DLQ, with its offset, in one transaction."""
        async with self.lock:
            if record.offset < self.next_offset or self._closing:
                return
            async with self._transaction() as producer:
                headers = [h for h in (record.headers or ()) if not h[0].startswith("zs_")]
                headers += [
                    ("zs_reason", reason[:2000].encode()),
                    ("zs_origin_topic", record.topic.encode()),
                    ("zs_origin_partition", str(record.partition).encode()),
                    ("zs_origin_offset", str(record.offset).encode()),
                    ("zs_failed_at", iso(now()).encode()),
                ]
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

    async def _handle_one(self, producer: AIOKafkaProducer, record: Any, after: _After) -> None:
        try:
            command = c.parse_command(record.value)
        except (ValidationError, ValueError) as exc:
            await producer.send(
                self.topics.session_commands_dlq,
                value=record.value,
                key=record.key,
                headers=[("zs_reason", f"unparseable command: {exc}"[:1000].encode())],
            )
            return
        trace = child_of(command.traceparent)
        session = self.sessions.get(command.session_id)
        at = now()
        try:
            session, events = decide(session, command, at)
        except (CommandRejected, InvalidJid) as exc:
            code = exc.code if isinstance(exc, CommandRejected) else "invalid_jid"
            if session is None or session.tenant_id != command.tenant_id:
                await self._send_orphan_failure(producer, command, code, str(exc), trace)
                return
            session.record_command_failed(at, command.command_id, command.TYPE, code, str(exc))
            await self._publish(producer, session, trace)
            return
        assert session is not None
        if isinstance(command, c.CreateSession):
            self.sessions[command.session_id] = session
            self.register(command.session_id, self)
            after.connect.append(command.session_id)
        elif isinstance(command, c.StartSession):
            after.connect.append(command.session_id)
        elif isinstance(command, c.StopSession):
            after.disconnect.append(command.session_id)
        elif isinstance(command, c.DeleteSession):
            after.logout.append(command.session_id)
        if isinstance(command, c.SendMessage):
            if not events:
                return  # a duplicate of a command already handled
            intent = getattr(events[-1], "payload", None)
            assert isinstance(intent, p.SendRequested)
            after.sends.append((command.session_id, intent, trace))
        elif isinstance(command, IDEMPOTENT_EFFECTS):
            await self._run_effect(session, command, at)
        else:
            session.record_command_succeeded(at, command.command_id, command.TYPE)
        await self._emit(producer, events, trace)
        await self._publish(producer, session, trace)

    async def _run_effect(self, session: Session, command: c.Command, at: datetime) -> None:
        """Run an idempotent WhatsApp call inside the command's transaction.

        A crash before the commit repeats the call once the command is re-read;
        repeating a read receipt, an edit to the same text, a revoke, a reaction
        or a presence is harmless, and the events still land exactly once.
        """
        sid = session.session_id
        me = f"{session.phone}@s.whatsapp.net" if session.phone else ""
        try:
            if isinstance(command, c.ReadMessages):
                chat = normalize_jid(command.chat_jid)
                await self.driver.mark_read(sid, chat, command.message_ids)
                session.record_read_by_me(at, chat, command.message_ids, int(at.timestamp()))
            elif isinstance(command, c.EditMessage):
                chat = normalize_jid(command.chat_jid)
                ts = await self.driver.edit_message(sid, chat, command.message_id, command.content)
                session.record_edits(
                    at,
                    [p.MessageEdit(message_id=command.message_id, chat_jid=chat, text=command.content,
                                   edited_at=ts, from_me=True)],
                )
            elif isinstance(command, c.DeleteMessage):
                chat = normalize_jid(command.chat_jid)
                ts = await self.driver.revoke_message(sid, chat, command.message_id)
                session.record_revokes(
                    at, [p.MessageDelete(message_id=command.message_id, deleted_at=ts, chat_jid=chat, from_me=True)]
                )
            elif isinstance(command, c.ReactToMessage):
                chat = normalize_jid(command.chat_jid)
                ts = await self.driver.react(sid, chat, command.message_id, command.emoji or "")
                session.record_reactions(
                    at,
                    [p.ReactionEntry(message_id=command.message_id, chat_jid=chat, actor_jid=me, from_me=True,
                                     emoji=command.emoji, reacted_at=ts, removed=command.emoji is None)],
                )
            elif isinstance(command, c.SubscribePresence):
                jid = normalize_jid(command.jid)
                await self.driver.subscribe_presence(sid, jid)
                session.record_command_succeeded(at, command.command_id, command.TYPE, {"jid": jid})
                return
            elif isinstance(command, c.RequestPairCode):
                code = await self.driver.pair_code(sid, command.phone)
                session.record_command_succeeded(at, command.command_id, command.TYPE,
                                                 {"code": code, "phone": command.phone})
                return
            elif isinstance(command, c.SendPresence):
                await self.driver.send_chat_presence(sid, normalize_jid(command.chat_jid), command.presence)
        except d.OutcomeUnknown as exc:
            session.record_command_failed(at, command.command_id, command.TYPE, "outcome_unknown", str(exc))
            return
        except (d.DriverError, InvalidJid) as exc:
            session.record_command_failed(at, command.command_id, command.TYPE, "whatsapp_error", str(exc))
            return
        session.record_command_succeeded(at, command.command_id, command.TYPE)

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

    # ----- effects -------------------------------------------------------------------

    async def _with_retries(self, call: Callable[[], Awaitable[d.SendResult]]) -> d.SendResult:
        """When the answer is lost, re-send with the same id if the driver makes that safe."""
        attempts = 3 if self.driver.supports_client_message_ids else 1
        for attempt in range(attempts):
            try:
                return await call()
            except d.OutcomeUnknown:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    async def _send_one(self, sid: str, intent: p.SendRequested) -> _Sent:
        if intent.media is None:
            return _Sent(await self._with_retries(lambda: self.driver.send_text(
                sid, intent.to, intent.text, message_id=intent.message_id,
                reply_to_id=intent.reply_to_message_id, forwarded=intent.forwarded)))
        if self.media is None:
            raise MediaFailed("media_unsupported", "this runner has no media storage configured")
        async with self.media.outgoing(intent.tenant_id, sid, intent) as prepared:
            result = await self._with_retries(lambda: self.driver.send_media(
                sid, intent.to, prepared.outgoing, message_id=intent.message_id,
                reply_to_id=intent.reply_to_message_id, forwarded=intent.forwarded))
            return _Sent(result, await self.media.keep_sent(prepared, result.message_id, intent.to))

    def _record_outcome(self, session: Session, intent: p.SendRequested, result: object) -> None:
        at = now()
        if isinstance(result, _Sent):
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
        elif isinstance(result, d.DriverError):
            session.record_command_failed(at, intent.command_id, c.SendMessage.TYPE, "send_failed", str(result))
        elif isinstance(result, MediaFailed):
            session.record_command_failed(at, intent.command_id, c.SendMessage.TYPE, result.code, str(result))
        elif isinstance(result, BaseException):
            raise result
        else:  # pragma: no cover
            raise TypeError(f"unexpected send outcome {result!r}")

    async def _send_all(self, sends: list[tuple[str, p.SendRequested, str | None]]) -> None:
        """Call WhatsApp for committed intents, then commit their outcomes (lock held)."""
        results = await asyncio.gather(
            *(self._send_one(sid, intent) for sid, intent, _ in sends), return_exceptions=True
        )
        async with self._transaction() as producer:
            for (sid, intent, trace), result in zip(sends, results, strict=True):
                session = self.sessions.get(sid)
                if session is None:
                    continue
                self._record_outcome(session, intent, result)
                await self._publish(producer, session, trace)

    def _queue_lane(self, sid: str, intent: p.SendRequested, trace: str | None) -> None:
        previous = self._lanes.get(sid)
        task = asyncio.ensure_future(self._lane_send(previous, sid, intent, trace))
        self._lanes[sid] = task
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if self._lanes.get(sid) is t:
                del self._lanes[sid]

        task.add_done_callback(done)

    async def _lane_send(
        self, previous: asyncio.Task[None] | None, sid: str, intent: p.SendRequested, trace: str | None
    ) -> None:
        """Send once the session's previous lane send is done; commit the outcome under the lock."""
        if previous is not None:
            await asyncio.wait([previous])
        result: object
        try:
            result = await self._send_one(sid, intent)
        except (d.DriverError, MediaFailed) as exc:
            result = exc
        except Exception as exc:  # whatever broke, the command must end with a reason
            log.exception("media send failed unexpectedly", extra={"fields": {"session": sid}})
            result = MediaFailed("media_failed", f"cannot send the media: {type(exc).__name__}")
        attempt = 0
        while True:
            async with self.lock:
                session = self.sessions.get(sid)
                if self._closing or session is None:
                    return  # handed over: the next owner recovers the intent
                # A session deleted meanwhile cleared its intents; the outcome is still recorded.
                if intent.message_id not in session.pending_sends and session.status != "deleted":
                    return  # already settled
                try:
                    async with self._transaction() as producer:
                        self._record_outcome(session, intent, result)
                        await self._publish(producer, session, trace)
                    return
                except Exception:
                    log.exception("recording a send outcome failed; retrying",
                                  extra={"fields": {"session": sid, "attempt": attempt}})
            await asyncio.sleep(min(0.5 * 2**attempt, 10))
            attempt += 1

    async def _recover_pending_sends(self) -> None:
        """Finish what a crashed owner left between intent and outcome."""
        pending: list[tuple[str, p.SendRequested, str | None]] = [
            (sid, intent, None)
            for sid, session in self.sessions.items()
            for intent in list(session.pending_sends.values())
        ]
        if not pending:
            return
        log.warning("recovering sends", extra={"fields": {"partition": self.partition, "count": len(pending)}})
        if self.driver.supports_client_message_ids:
            connected = {sid for sid, _, _ in pending if self.sessions[sid].is_live}
            for sid in connected:
                await self._connect(sid)
            # Through the lanes: a session's intents go out in their original order, media included,
            # and new commands for other sessions are not held up meanwhile.
            for sid, intent, trace in pending:
                self._queue_lane(sid, intent, trace)
            return
        async with self.lock:
            async with self._transaction() as producer:
                for sid, intent, _ in pending:
                    session = self.sessions[sid]
                    session.record_send_unknown(now(), intent)
                    await self._publish(producer, session, None)

    async def _connect(self, session_id: str) -> None:
        try:
            await self.driver.connect(session_id, self.on_driver_event)
        except d.DriverError as exc:
            log.warning("connect failed", extra={"fields": {"session": session_id, "error": str(exc)}})
            await self.inbound.put(_Inbound(session_id, d.Disconnected(seq=0, reason=f"connect_failed: {exc}")))

    @staticmethod
    async def _quiet(coro: Awaitable[Any]) -> None:
        try:
            await coro
        except d.DriverError as exc:
            log.info("driver call failed", extra={"fields": {"error": str(exc)}})

    # ----- driver events -----------------------------------------------------------

    async def on_driver_event(self, session_id: str, event: d.DriverEvent) -> None:
        await self.inbound.put(_Inbound(session_id, event))

    async def _flush_loop(self) -> None:
        batch: list[_Inbound] = []
        loop = asyncio.get_running_loop()
        while not self._closing:
            if not batch:
                batch = [await self.inbound.get()]
            # Let a burst gather for a few ms: every transaction costs several broker round
            # trips, so under load fewer, larger ones are what keeps up.
            deadline = loop.time() + self.flush_linger_s
            while len(batch) < self.flush_max:
                if not self.inbound.empty():
                    batch.append(self.inbound.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.inbound.get(), remaining))
                except TimeoutError:
                    break
            try:
                async with self.lock:
                    acks = await self._flush(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Nothing was acknowledged, so nothing is lost: retry the same batch on rebuilt state.
                log.exception("flush failed; retrying", extra={"fields": {"partition": self.partition}})
                await asyncio.sleep(0.5)
                continue
            batch = []
            for sid, seq in acks.items():
                self._ack(sid, seq)

    async def _flush(self, batch: list[_Inbound]) -> dict[str, int]:
        acks: dict[str, int] = {}
        reconnected: set[str] = set()
        fetch: list[tuple[str, d.IncomingMessage]] = []
        stored: list[tuple[str, str]] = []
        async with self._transaction() as producer:
            for item in batch:
                session = self.sessions.get(item.session_id)
                if session is None or session.status == "deleted":
                    continue
                if isinstance(item.event, _MediaReady):
                    session.record_media(now(), [item.event.entry])
                    stored.append((item.session_id, item.event.message_id))
                else:
                    self._observe(session, item.event)
                ev = item.event
                if isinstance(ev, d.IncomingMessage) and ev.media is not None:
                    fetch.append((item.session_id, ev))
                if isinstance(item.event, d.Connected) and session.presence_subscriptions:
                    reconnected.add(item.session_id)
                await self._publish(producer, session, None)
                if item.event.seq > acks.get(item.session_id, 0):
                    acks[item.session_id] = item.event.seq
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
        await self.inbound.put(_Inbound(sid, _MediaReady(msg.id, entry or failed_entry(msg, reason))))

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

    def _observe(self, s: Session, ev: d.DriverEvent) -> None:
        at = now()
        if isinstance(ev, d.QrCode):
            s.record_qr(at, ev.code, iso(datetime.fromtimestamp(ev.expires_at_ms / 1000, UTC)))
        elif isinstance(ev, d.Connected):
            if s.is_live:
                s.record_connected(at, ev.phone)
        elif isinstance(ev, d.Disconnected):
            if s.is_live and not ev.replaced:  # replaced: the session moved to another runner
                s.record_disconnected(at, ev.reason)
        elif isinstance(ev, d.LoggedOut):
            s.record_logged_out(at, ev.reason)
        elif isinstance(ev, d.IncomingMessage):
            s.record_incoming(at, [_summary(ev)])
            if ev.push_name and not ev.from_me:
                s.record_contact_names(at, [p.Contact(id=ev.sender_jid, notify=ev.push_name)])
        elif isinstance(ev, d.MessageEdited):
            s.record_edits(at, [p.MessageEdit(message_id=ev.message_id, chat_jid=ev.chat_jid, text=ev.text,
                                              edited_at=ev.timestamp, from_me=ev.from_me)])
        elif isinstance(ev, d.MessageRevoked):
            s.record_revokes(at, [p.MessageDelete(message_id=ev.message_id, deleted_at=ev.timestamp,
                                                  chat_jid=ev.chat_jid, from_me=ev.from_me)])
        elif isinstance(ev, d.ChatCleared):
            s.record_chat_cleared(at, ev.chat_jid, ev.timestamp)
        elif isinstance(ev, d.Reaction):
            s.record_reactions(at, [p.ReactionEntry(message_id=ev.message_id, chat_jid=ev.chat_jid,
                                                    actor_jid=ev.actor_jid, from_me=ev.from_me,
                                                    emoji=ev.emoji or None, reacted_at=ev.timestamp,
                                                    removed=ev.emoji == "")])
        elif isinstance(ev, d.ContactsUpdate):
            s.record_contact_names(at, [p.Contact(id=jid, name=name, notify=notify)
                                        for jid, name, notify in ev.contacts])
        elif isinstance(ev, d.Receipt):
            s.record_receipts(
                at,
                [
                    p.StatusUpdate(message_id=mid, remote_jid=ev.chat_jid, status=ev.status, status_at=ev.timestamp)
                    for mid in ev.message_ids
                ],
            )
        elif isinstance(ev, d.PresenceUpdate):
            s.record_presence(
                at, ev.chat_jid, [p.PresenceEntry(jid=ev.jid, presence=ev.presence, last_seen=ev.last_seen)]
            )
        elif isinstance(ev, d.HistorySync):
            messages = [_summary(m) for m in ev.messages]
            chats = {m.remote_jid for m in messages}
            s.record_history(
                at,
                p.HistorySync(
                    tenant_id=s.tenant_id,
                    sync_type=ev.sync_type,
                    progress=ev.progress,
                    is_latest=ev.is_latest,
                    chats_count=len(chats),
                    contacts_count=len(ev.contacts),
                    messages_count=len(messages),
                    messages_truncated=False,
                    messages=messages,
                ),
            )
            s.record_contacts(at, [p.Contact(id=jid, notify=name) for jid, name in ev.contacts])

    # ----- publishing ------------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AIOKafkaProducer]:
        """One Kafka transaction of this partition's producer.

        On an error, memory may be ahead of Kafka: abort and rebuild from the topic. A
        cancellation leaves the transaction open; the next owner's fencing aborts it.
        """
        producer = self._producer()
        await producer.begin_transaction()
        try:
            yield producer
            await producer.commit_transaction()
        except Exception:
            await self._abort_and_reset(producer)
            raise

    def _producer(self) -> AIOKafkaProducer:
        assert self.producer is not None, "partition owner not started"
        return self.producer

    async def _publish(self, producer: AIOKafkaProducer, session: Session, trace: str | None) -> None:
        events = [e for e in session.collect_events() if isinstance(e, Session.Event)]
        await self._emit(producer, events, trace)

    async def _emit(self, producer: AIOKafkaProducer, events: list[Session.Event], trace: str | None) -> None:
        for event in events:
            await self._send_env(producer, Envelope.from_domain(event, trace or child_of(None)))

    async def _send_env(self, producer: AIOKafkaProducer, env: Envelope) -> None:
        await producer.send(
            self.topics.session_events,
            value=env.value(),
            key=env.session_id.encode(),
            partition=self.partition,
            headers=env.headers(SOURCE),
        )

    async def _abort_and_reset(self, producer: AIOKafkaProducer) -> None:
        """After a failed transaction memory may be ahead of Kafka: abort and rebuild from the topic."""
        try:
            await producer.abort_transaction()
        except Exception:  # the producer may be fenced or broken; the rebuild below is what matters
            log.exception("abort failed")
        self.sessions.clear()
        await self._rebuild()


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _summary(m: d.IncomingMessage) -> p.MessageSummary:
    return p.MessageSummary(
        id=m.id,
        remote_jid=m.chat_jid,
        from_me=m.from_me,
        timestamp=m.timestamp,
        type=p.MEDIA_MESSAGE_TYPES[m.media.kind] if m.media is not None
        else "extendedTextMessage" if m.reply_to_id else "conversation",
        text=m.text or None if m.media is not None else m.text,
        participant=None if m.sender_jid == m.chat_jid else m.sender_jid,
        reply_to_message_id=m.reply_to_id,
        forwarded=m.forwarded or None,
        push_name=m.push_name,
    )
