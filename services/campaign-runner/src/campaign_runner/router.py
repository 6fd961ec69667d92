"""Outcome router: session events → campaign commands (and opt-outs → suppressions), exactly once.

A consumer group over the session event topic with one transactional producer
per input partition: the ``campaign.record_outcomes`` commands (keyed by
campaignId) and the ``campaign.suppression.added`` events it derives from a
batch are committed with the batch's offsets in one transaction.

Which session commands belong to a campaign? The session command topic is
co-partitioned with the session event topic, and a campaign's sends carry
``campaignId``: the owner of event partition *p* indexes command partition *p*
(command id → campaign), catching up to its end before each batch. A send
command is always committed before any event about it exists, so the index
never misses one.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from zapstream_contracts import campaign_commands as cc
from zapstream_contracts import events as ev
from zapstream_contracts import payloads as p
from zapstream_contracts.campaign_envelope import SOURCE, CampaignEnvelope
from zapstream_contracts.campaign_payloads import Outcome, OutcomeKind, SuppressionAdded
from zapstream_contracts.commands import SendMessage, parse_command
from zapstream_contracts.envelope import Envelope, command_headers
from zapstream_contracts.timefmt import iso
from zapstream_domain.campaign import SUPPRESSION_ADDED
from zapstream_domain.decisions import message_id_for
from zapstream_domain.jids import phone_of
from zapstream_platform.metrics import Metrics
from zapstream_platform.pii import KeyRing
from zapstream_platform.topics import Topics, partition_owner_producer

log = logging.getLogger(__name__)

MAX_INDEXED = 2_000_000
RECEIPTS: dict[str, OutcomeKind] = {"delivered": "delivered", "read": "read", "played": "read"}

StopWords = Callable[[str], Awaitable[frozenset[str]]]


def normalize_word(text: str) -> str:
    return " ".join(text.strip().upper().strip(".!¡¿?").split())


class OutcomeRouter:
    def __init__(self, *, partition: int, topics: Topics, bootstrap_servers: str, group_id: str,
                 stop_words: StopWords, metrics: Metrics | None = None, keys: KeyRing | None = None) -> None:
        self.metrics = metrics or Metrics("campaign-runner")
        self.keys = keys  # replies' text is encrypted on the topic; opt-out words are matched on the clear text
        self.partition = partition
        self.topics = topics
        self.bootstrap = bootstrap_servers
        self.group_id = group_id
        self.stop_words = stop_words
        self.event_tp = TopicPartition(topics.session_events, partition)
        self.command_tp = TopicPartition(topics.session_commands, partition)
        self.next_offset = 0
        self.producer: AIOKafkaProducer | None = None
        self.index: OrderedDict[str, tuple[str, str]] = OrderedDict()  # command id → (campaign, tenant)
        self.by_message: dict[str, str] = {}  # message id → command id
        self._commands: AIOKafkaConsumer | None = None
        self.lock = asyncio.Lock()

    async def start(self, committed: int | None) -> None:
        self.next_offset = committed or 0
        self.producer = partition_owner_producer(self.bootstrap, self.group_id, self.topics.session_events,
                                                 self.partition)
        await self.producer.start()
        self._commands = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, isolation_level="read_committed",
                                          enable_auto_commit=False, auto_offset_reset="earliest",
                                          max_partition_fetch_bytes=8 * 1024 * 1024)
        await self._commands.start()
        self._commands.assign([self.command_tp])
        await self._commands.seek_to_beginning(self.command_tp)
        await self._catch_up()

    async def stop(self) -> None:
        async with self.lock:
            if self._commands:
                await self._commands.stop()
            if self.producer:
                await self.producer.stop()

    async def _catch_up(self) -> None:
        """Index the campaign sends of command partition p up to its current end."""
        assert self._commands is not None
        end = (await self._commands.end_offsets([self.command_tp]))[self.command_tp]
        while await self._commands.position(self.command_tp) < end:
            batch = await self._commands.getmany(self.command_tp, timeout_ms=500, max_records=5000)
            for record in batch.get(self.command_tp, []):
                if b'"campaignId":"' not in record.value:
                    continue
                try:
                    command = parse_command(record.value)
                except ValidationError:
                    continue
                if not isinstance(command, SendMessage) or not command.campaign_id:
                    continue
                cid = command.command_id
                self.index[cid] = (command.campaign_id, command.tenant_id)
                self.by_message[message_id_for(cid)] = cid
                while len(self.index) > MAX_INDEXED:
                    old, _ = self.index.popitem(last=False)
                    self.by_message.pop(message_id_for(old), None)

    async def handle(self, records: list[Any]) -> None:
        async with self.lock:
            records = [r for r in records if r.offset >= self.next_offset]
            if not records:
                return
            await self._catch_up()
            outcomes: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
            suppressions: list[SuppressionAdded] = []
            for record in records:
                await self._route(record, outcomes, suppressions)
            assert self.producer is not None
            producer = self.producer
            at = iso(datetime.now(UTC))
            await producer.begin_transaction()
            try:
                for (campaign_id, tenant_id), items in outcomes.items():
                    command = cc.RecordOutcomes(command_id=str(uuid.uuid4()), campaign_id=campaign_id,
                                                tenant_id=tenant_id, issued_at=at, outcomes=items)
                    await producer.send(self.topics.campaign_commands, key=campaign_id.encode(),
                                        value=command.model_dump_json(by_alias=True).encode(),
                                        headers=command_headers(command, SOURCE))
                for s in suppressions:
                    env = CampaignEnvelope.standalone(SUPPRESSION_ADDED, s, datetime.now(UTC))
                    if self.keys is not None:  # the number is personal data: sealed with the tenant's key
                        env = await self.keys.seal(env)
                    await producer.send(self.topics.campaign_events, key=s.tenant_id.encode(), value=env.value(),
                                        headers=env.headers())
                await producer.send_offsets_to_transaction({self.event_tp: records[-1].offset + 1}, self.group_id)
                await producer.commit_transaction()
            except Exception:
                with suppress(Exception):
                    await producer.abort_transaction()
                raise
            self.next_offset = records[-1].offset + 1
        for items in outcomes.values():
            for outcome in items:
                self.metrics.campaign_sends.labels(outcome.kind).inc()

    async def _route(self, record: Any, outcomes: dict[tuple[str, str], list[Outcome]],
                     suppressions: list[SuppressionAdded]) -> None:
        t = record.value
        if not (b"session.command." in t or b"session.messages.update" in t or b"session.messages.upsert" in t):
            return
        env = Envelope.from_record(record.value, record.headers)
        if self.keys is not None and env.type == "session.messages.upsert":
            env = await self.keys.open(env)  # replies' text is encrypted on the topic
        try:
            await self._route_event(env, outcomes, suppressions)
        except ValidationError:
            # Not the contract's payload: nothing here can be about a campaign's send; skipping it beats
            # stalling every campaign of the partition behind it.
            log.warning("skipping an invalid %s", env.type, extra={"fields": {"eventId": env.event_id}})

    async def _route_event(self, env: Envelope, outcomes: dict[tuple[str, str], list[Outcome]],
                           suppressions: list[SuppressionAdded]) -> None:
        if env.type == ev.COMMAND_SUCCEEDED.type:
            done = env.data(p.CommandSucceeded)
            hit = self.index.get(done.command_id)
            if hit is not None:
                outcomes[hit].append(Outcome(command_id=done.command_id, kind="succeeded", at=env.occurred_on))
        elif env.type == ev.COMMAND_FAILED.type:
            failed = env.data(p.CommandFailed)
            hit = self.index.get(failed.command_id)
            if hit is not None:
                outcomes[hit].append(Outcome(command_id=failed.command_id, kind="failed", at=env.occurred_on,
                                             code=failed.code, reason=failed.reason, retryable=failed.retryable))
        elif env.type == ev.MESSAGES_UPDATE.type:
            update = env.data(p.MessagesUpdate)
            if update.source == "read":
                return
            for u in update.updates:
                cid = self.by_message.get(u.message_id)
                kind = RECEIPTS.get(u.status)
                if cid is None or kind is None:
                    continue
                hit = self.index.get(cid)
                if hit is not None:
                    outcomes[hit].append(Outcome(command_id=cid, kind=kind, at=env.occurred_on))
        elif env.type == ev.MESSAGES_UPSERT.type:
            upsert = env.data(p.MessagesUpsert)
            if upsert.upsert_type != "notify":
                return
            words: frozenset[str] | None = None
            for m in upsert.messages:
                if m.from_me or not m.text or "@s.whatsapp.net" not in m.remote_jid:
                    continue
                if len(m.text) > 40:
                    continue  # an opt-out is a word or two, not a paragraph that happens to contain one
                words = words if words is not None else await self.stop_words(upsert.tenant_id)
                if normalize_word(m.text) in words:
                    suppressions.append(SuppressionAdded(
                        tenant_id=upsert.tenant_id, phone=phone_of(m.remote_jid),
                        reason=f"replied {normalize_word(m.text)}", source="reply", session_id=env.session_id,
                        message_id=m.id, at=env.occurred_on))


class TenantWords:
    """Default stop words plus each tenant's own (``campaign_tenant_settings``), cached for ``ttl_s``."""

    def __init__(self, pool: Any, defaults: list[str], ttl_s: float) -> None:
        self.pool = pool
        self.defaults = frozenset(normalize_word(w) for w in defaults)
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def __call__(self, tenant_id: str) -> frozenset[str]:
        hit = self._cache.get(tenant_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        extra = await self.pool.fetchval(
            "SELECT optout_keywords FROM campaign_tenant_settings WHERE tenant_id = $1", tenant_id)
        words = self.defaults | frozenset(normalize_word(w) for w in (extra or []))
        self._cache[tenant_id] = (time.monotonic() + self.ttl_s, words)
        return words
