"""One owned partition of the campaign command topic: its campaigns, its transactional producer, its clock.

Exactly-once, per partition (the session runner's pattern):

* Campaign commands are consumed read-committed; the events they cause and
  the consumed offset are committed in one transaction by a producer whose
  ``transactional.id`` is fixed per input partition, so a new owner fences the old.
* Campaign events go to the **same partition number** of the event topic;
  on assignment the owner rebuilds its campaigns from it.
* Time-driven sends (a tick) commit ``campaign.recipients.dispatched`` and the
  ``session.send_message`` commands in one transaction of the same producer.
  The command ids derive from (campaign, recipient, attempt, part): if the
  transaction is lost the next owner emits the same commands, and once it is
  committed the rebuilt campaign knows they went out. Neither a skip nor a
  repeat; and should a command ever be emitted twice, the session runner drops
  the copy (it de-duplicates on the id-derived message id).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from zapstream_contracts import campaign_commands as cc
from zapstream_contracts.campaign_envelope import SOURCE, CampaignEnvelope
from zapstream_contracts.commands import Command
from zapstream_contracts.envelope import command_headers
from zapstream_contracts.timefmt import iso
from zapstream_domain.campaign import EVENTS_BY_TYPE, Campaign, decide, event_from_wire, evolve, tick
from zapstream_domain.errors import CommandRejected
from zapstream_platform.metrics import Metrics
from zapstream_platform.pii import KeyRing
from zapstream_platform.topics import Topics, partition_owner_producer
from zapstream_platform.tracing import child_of

log = logging.getLogger(__name__)

ACTIVE_STATUSES = ("scheduled", "running")


def now() -> datetime:
    return datetime.now(UTC)


class CampaignOwner:
    """Owns the campaigns of one partition while assigned."""

    def __init__(self, *, partition: int, topics: Topics, bootstrap_servers: str, group_id: str,
                 tick_s: float = 0.2, metrics: Metrics | None = None, keys: KeyRing | None = None) -> None:
        self.partition = partition
        # Seals the events' personal fields (recipients' phones and names, the message text) with the
        # tenant's key as they are written, and opens them on rebuild: the campaigns in memory stay clear.
        self.keys = keys
        self.topics = topics
        self.bootstrap = bootstrap_servers
        self.group_id = group_id
        self.tick_s = tick_s
        self.metrics = metrics or Metrics("campaign-runner")
        self.command_tp = TopicPartition(topics.campaign_commands, partition)
        self.campaigns: dict[str, Campaign] = {}
        self.producer: AIOKafkaProducer | None = None
        self.lock = asyncio.Lock()
        self.next_offset = 0
        self._ticker: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self, committed: int | None) -> None:
        self.next_offset = committed or 0
        self.producer = partition_owner_producer(self.bootstrap, self.group_id, self.topics.campaign_commands,
                                                 self.partition)
        await self.producer.start()
        await self._rebuild()
        self._ticker = asyncio.create_task(self._tick_loop(), name=f"campaign-tick-{self.partition}")

    async def stop(self) -> None:
        self._closing = True
        async with self.lock:
            if self._ticker:
                self._ticker.cancel()
                await asyncio.gather(self._ticker, return_exceptions=True)
            if self.producer:
                await self.producer.stop()

    async def _rebuild(self) -> None:
        tp = TopicPartition(self.topics.campaign_events, self.partition)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, isolation_level="read_committed",
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    max_partition_fetch_bytes=8 * 1024 * 1024)
        await consumer.start()
        try:
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            await consumer.seek_to_beginning(tp)
            count = 0
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=5000)
                for record in batch.get(tp, []):
                    env = CampaignEnvelope.from_record(record.value, record.headers)
                    if self.keys is not None:
                        env = await self.keys.open(env)
                    self._apply_stored(env)
                    count += 1
            log.info("campaigns rebuilt", extra={"fields": {"partition": self.partition, "events": count,
                                                            "campaigns": len(self.campaigns)}})
        finally:
            await consumer.stop()

    def _apply_stored(self, env: CampaignEnvelope) -> None:
        if env.type not in EVENTS_BY_TYPE or env.version <= 0 or not env.campaign_id:
            return
        current = self.campaigns.get(env.campaign_id)
        if current is None and env.type != Campaign.Created.TYPE:
            return
        if current is not None and env.version <= current.version:
            return
        event = event_from_wire(env.type, env.campaign_id, env.version, env.occurred_at(), env.payload)
        self.campaigns[env.campaign_id] = evolve(current, event)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AIOKafkaProducer]:
        """On an error memory may be ahead of Kafka: abort and rebuild from the topic."""
        assert self.producer is not None
        producer = self.producer
        await producer.begin_transaction()
        try:
            yield producer
            await producer.commit_transaction()
        except Exception:
            with suppress(Exception):
                await producer.abort_transaction()
            self.campaigns.clear()
            await self._rebuild()
            raise

    async def _emit(self, producer: AIOKafkaProducer, events: list[Campaign.Event], trace: str | None) -> None:
        for event in events:
            env = CampaignEnvelope.from_domain(event, trace)
            if self.keys is not None:
                env = await self.keys.seal(env)
            await producer.send(self.topics.campaign_events, value=env.value(), key=env.campaign_id.encode(),
                                partition=self.partition, headers=env.headers())

    async def _send_command(self, producer: AIOKafkaProducer, command: Command) -> None:
        await producer.send(self.topics.session_commands, value=command.model_dump_json(by_alias=True).encode(),
                            key=command.session_id.encode(), headers=command_headers(command, SOURCE))

    # ----- commands --------------------------------------------------------------

    async def handle(self, records: list[Any]) -> None:
        async with self.lock:
            records = [r for r in records if r.offset >= self.next_offset]
            if self._closing or not records:
                return
            async with self._transaction() as producer:
                for record in records:
                    await self._handle_one(producer, record)
                await producer.send_offsets_to_transaction({self.command_tp: records[-1].offset + 1}, self.group_id)
            self.next_offset = records[-1].offset + 1

    async def _handle_one(self, producer: AIOKafkaProducer, record: Any) -> None:
        try:
            command = cc.parse_campaign_command(record.value)
        except (ValidationError, ValueError) as exc:
            log.error("unparseable campaign command skipped",
                      extra={"fields": {"partition": self.partition, "offset": record.offset, "error": str(exc)[:300]}})
            return
        campaign = self.campaigns.get(command.campaign_id)
        try:
            campaign, events = decide(campaign, command, now())
        except CommandRejected as exc:
            # The API checks state before it publishes; a rejection here is a race (e.g. two cancels).
            log.warning("campaign command rejected", extra={"fields": {
                "campaign": command.campaign_id, "type": command.TYPE, "code": exc.code, "reason": exc.reason}})
            return
        assert campaign is not None
        self.campaigns[command.campaign_id] = campaign
        await self._emit(producer, events, child_of(command.traceparent))

    # ----- the clock -------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while not self._closing:
            try:
                await self.tick_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("campaign tick failed", extra={"fields": {"partition": self.partition}})
                await asyncio.sleep(1.0)
            await asyncio.sleep(self.tick_s)

    async def tick_once(self) -> int:
        """Record and emit whatever is due now; returns the number of session commands written."""
        async with self.lock:
            if self._closing:
                return 0
            at = now()
            issued = iso(at)
            work: list[tuple[Campaign, list[Campaign.Event]]] = []
            for campaign in self.campaigns.values():
                if campaign.status not in ACTIVE_STATUSES:
                    continue
                events, actions = tick(campaign, at)
                if actions:
                    campaign.report(at)
                    events += [e for e in campaign.collect_events() if isinstance(e, Campaign.Event)]
                if events:
                    work.append((campaign, events))
            if not work:
                return 0
            sent = messages = 0
            async with self._transaction() as producer:
                for campaign, events in work:
                    await self._emit(producer, events, None)
                    for event in events:
                        if isinstance(event, Campaign.RecipientsTyping):
                            for t in event.payload.items:
                                await self._send_command(producer, campaign.typing_command(t, issued))
                                sent += 1
                        elif isinstance(event, Campaign.RecipientsDispatched):
                            for d in event.payload.items:
                                for command in campaign.session_commands(d, issued):
                                    await self._send_command(producer, command)
                                    sent += 1
                                    messages += 1
            # Counted once committed; their outcomes are counted by the outcome router (router.py).
            if messages:
                self.metrics.campaign_sends.labels("dispatched").inc(messages)
            return sent
