"""Fan-out of the event topic to WebSocket clients, by tenant.

Each client has a bounded queue: a slow client is disconnected (close code
1013) rather than allowed to slow down everyone else or grow memory.

Clients with a narrower view get filtered frames: an API key scoped to some
sessions sees only those sessions' events; an agent sees session status events
(``session.status.*``) and, of the chat events, only the items of its assigned
chats. Batch events are filtered item by item (and their ``*Count`` adjusted);
an event left with no item, and every other event type (QR, created, deleted,
command outcomes), is dropped for agents.

Frames go out as the topic holds them. Filtering reads the record through the
contract (its :class:`Envelope`, and for an agent the payload's typed model),
decoded once per record whatever the number of sockets; a frame narrowed for an
agent is the typed payload with fewer items, dumped as the producer dumps it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import orjson
import segno
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from zapstream_contracts import events as ev
from zapstream_contracts import payloads as p
from zapstream_contracts import secrets
from zapstream_contracts.envelope import Envelope
from zapstream_contracts.events import SESSION_EVENTS
from zapstream_contracts.payloads import Wire
from zapstream_contracts.secrets import REDACTED_HEADER
from zapstream_platform import telemetry
from zapstream_platform.metrics import Metrics, record_consumer_lag
from zapstream_platform.pii import KeyRing
from zapstream_platform.topics import partitions_of

log = logging.getLogger(__name__)

# Bookkeeping events of the runner, not part of the client's contract.
INTERNAL_TYPES = frozenset({b"session.messages.send_requested", b"session.started"})


STATUS_TYPES = frozenset({"session.status.connected", "session.status.disconnected", "session.status.logged_out"})


Headers = list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]
PayloadT = TypeVar("PayloadT", bound=Wire)
ItemT = TypeVar("ItemT", bound=Wire)


@dataclass(frozen=True)  # no slots: ``Batch[P, I](...)`` sets ``__orig_class__``, which typing allows to fail
class Batch(Generic[PayloadT, ItemT]):
    """A chat event whose payload lists items of several chats: an agent gets only its chats' items."""

    items: Callable[[PayloadT], Sequence[ItemT]]
    chat: Callable[[PayloadT, ItemT], str | None]  # an item's chat
    field: str  # the list's field; a narrowed payload has the kept items there and their number in ``<field>_count``


BATCHES: dict[str, Batch[Any, Any]] = {
    ev.MESSAGES_UPSERT.type: Batch[p.MessagesUpsert, p.MessageSummary](
        lambda d: d.messages, lambda d, m: m.remote_jid, "messages"),
    ev.HISTORY_SYNC.type: Batch[p.HistorySync, p.MessageSummary](
        lambda d: d.messages, lambda d, m: m.remote_jid, "messages"),
    ev.MESSAGES_UPDATE.type: Batch[p.MessagesUpdate, p.StatusUpdate](
        lambda d: d.updates, lambda d, u: u.remote_jid, "updates"),
    ev.MESSAGES_EDIT.type: Batch[p.MessagesEdit, p.MessageEdit](lambda d: d.edits, lambda d, e: e.chat_jid, "edits"),
    ev.MESSAGES_REACTION.type: Batch[p.MessagesReaction, p.ReactionEntry](
        lambda d: d.reactions, lambda d, r: r.chat_jid, "reactions"),
    ev.MESSAGES_MEDIA.type: Batch[p.MessagesMedia, p.MediaEntry](lambda d: d.media, lambda d, m: m.chat_jid, "media"),
    ev.CONTACTS_UPSERT.type: Batch[p.ContactsUpsert, p.Contact](lambda d: d.contacts, lambda d, c: c.id, "contacts"),
    # A revoked message names its chat; the event's chat stands in for an item that does not.
    ev.MESSAGES_DELETE.type: Batch[p.MessagesDelete, p.MessageDelete](
        lambda d: d.deletes, lambda d, x: x.chat_jid if x.chat_jid is not None else d.chat_jid, "deletes"),
}
"""The batch events an agent sees, item by item (with their count adjusted; nothing when no item is left)."""
CHAT_TYPES = frozenset(BATCHES) | {ev.PRESENCE_UPDATE.type}
"""Every chat event an agent may see (presence and a chat's clearing go to the agents of their one chat)."""


Plan = bool | str | tuple[str | None, ...]
"""Who of the agents gets a record: all (True), none (False), those of one chat (str), or of each item's chat."""


class Event:
    """One record on its way to a tenant's sockets: the frame, sent as it is, and what filtering reads from it,
    decoded on first need and then once for every socket: the envelope, and for agents the typed payload's
    chats, and each narrowed frame (built once for all the agents that keep the same items)."""

    __slots__ = ("_env", "_narrowing", "_parts", "_plan", "_views", "frame", "headers")

    def __init__(self, frame: bytes, headers: Headers = ()) -> None:
        self.frame = frame
        self.headers = headers
        self._env: Envelope | bool | None = False
        self._plan: Plan | None = None
        self._narrowing: tuple[Envelope, Wire, Batch[Any, Any]] | None = None
        self._parts: tuple[dict[str, Any], list[dict[str, Any] | None]] | None = None
        self._views: dict[tuple[int, ...], bytes] = {}

    @property
    def envelope(self) -> Envelope | None:
        """The session event's envelope; None for a campaign event or a frame that is not one."""
        if self._env is False:
            self._env = decode(self.frame, self.headers)
        return self._env if isinstance(self._env, Envelope) else None

    def plan(self) -> Plan:
        if self._plan is None:
            self._plan = self._make_plan()
        return self._plan

    def _make_plan(self) -> Plan:
        env = self.envelope
        if env is None:
            return False
        if env.type in STATUS_TYPES:
            return True
        if env.type not in CHAT_TYPES:
            return False
        try:
            data = env.data(SESSION_EVENTS[env.type].payload)
        except ValidationError:
            log.warning("dropping an invalid %s for agents", env.type)
            return False
        if isinstance(data, p.PresenceUpdate) or (isinstance(data, p.MessagesDelete) and data.scope == "chat"):
            return data.chat_jid or False
        batch = BATCHES[env.type]
        self._narrowing = (env, data, batch)
        return tuple(batch.chat(data, item) for item in batch.items(data))

    def narrowed(self, kept: tuple[int, ...]) -> bytes:
        """The frame with only the items at ``kept``: the typed payload dumped as the producer dumps it, each
        part dumped once per record (agents differ only in which items they keep)."""
        frame = self._views.get(kept)
        if frame is None:
            assert self._narrowing is not None
            env, data, batch = self._narrowing
            if self._parts is None:
                # Dumped with no item, the payload keeps the list's place among its keys for the kept ones.
                self._parts = (data.model_copy(update={batch.field: []}).model_dump(by_alias=True, mode="json"),
                               [None] * len(batch.items(data)))
            base, dumped = self._parts
            items = batch.items(data)
            for k in kept:
                if dumped[k] is None:
                    dumped[k] = items[k].model_dump(by_alias=True, mode="json")
            fields = type(data).model_fields
            payload = base | {fields[batch.field].alias or batch.field: [dumped[k] for k in kept],
                              fields[f"{batch.field}_count"].alias or f"{batch.field}_count": len(kept)}
            frame = self._views[kept] = replace(env, payload=payload).value()
        return frame


def decode(frame: bytes, headers: Headers = ()) -> Envelope | None:
    """A session event frame as its envelope (None when it is not one, e.g. a campaign event).

    With the record's headers, an event-log record is upcast like any reader's. A secrets-topic record,
    or a frame without headers (what the hub hands to sockets), is already what clients get: never
    upcast, or the QR a v1→v2 upcaster strips from the log's copy would be stripped from the client's.
    """
    try:
        schema = dict(headers).get("ce_dataschema", b"")
        if not headers or schema.startswith(secrets.SECRETS_SCHEMA_BASE.encode()):
            return secrets.from_record(frame, headers)
        return Envelope.from_record(frame, headers)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


def for_agent(event: Event, chats: frozenset[str]) -> bytes | None:
    """The frame an agent assigned to ``chats`` may see of ``event``, or None."""
    plan = event.plan()
    if plan is True:
        return event.frame
    if plan is False:
        return None
    if isinstance(plan, str):
        return event.frame if plan in chats else None
    kept = tuple(k for k, chat in enumerate(plan) if chat in chats)
    if not kept:
        return None
    if len(kept) == len(plan):
        return event.frame
    return event.narrowed(kept)


QR_TYPE = b"session.qr.updated"


def qr_data_url(qr: str) -> str:
    """The QR as a PNG data URL (seed 003's clients put it straight into ``<img src>``)."""
    return str(segno.make(qr, error="m", micro=False).png_data_uri(scale=4, border=4))


def with_qr_image(frame: bytes) -> bytes:
    """Adds ``qrImage`` to a ``session.qr.updated`` frame (from the secrets topic) on its way out. Made
    here, never stored: the QR is a secret that must not outlive its minute."""
    try:
        secret = secrets.from_record(frame, ())
        qr = secrets.qr_of(secret)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return frame
    if qr is None or not qr.qr:
        return frame
    return replace(secret, payload=secret.payload | {"qrImage": qr_data_url(qr.qr)}).value()


class Client:
    def __init__(self, tenant_id: str, maxsize: int, chats: frozenset[str] | None = None,
                 sessions: frozenset[str] | None = None) -> None:
        self.tenant_id = tenant_id
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize)
        self.overflowed = asyncio.Event()
        self.revoked = asyncio.Event()
        self.chats = chats  # an agent's assigned chats; None: not an agent
        self.sessions = sessions  # an API key's session scope; None: every session

    @property
    def filtered(self) -> bool:
        return self.chats is not None or self.sessions is not None

    def view(self, event: Event) -> bytes | None:
        """The frame this socket gets of ``event``, or None."""
        if self.sessions is not None:
            env = event.envelope
            if env is None or env.session_id not in self.sessions:
                return None
        if self.chats is not None:
            return for_agent(event, self.chats)
        return event.frame

    def offer(self, frame: bytes) -> None:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed.set()


class Hub:
    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics("ws-gateway")
        self.clients: dict[str, set[Client]] = defaultdict(set)
        self.delivered = 0
        self.ready = asyncio.Event()  # set once the pump is positioned at the live end

    def add(self, client: Client) -> None:
        self.clients[client.tenant_id].add(client)

    def remove(self, client: Client) -> None:
        group = self.clients.get(client.tenant_id)
        if group is not None:
            group.discard(client)
            if not group:
                del self.clients[client.tenant_id]

    def publish(self, tenant_id: str, frame: bytes, headers: Headers = ()) -> None:
        event: Event | None = None  # decoded once, for every filtered socket, only when there is one
        for client in list(self.clients.get(tenant_id, ())):
            if client.filtered:
                event = event or Event(frame, headers)
                view = client.view(event)
                if view is None:
                    continue
                client.offer(view)
            else:
                client.offer(frame)
            self.delivered += 1


CAMPAIGN_TYPES = frozenset({b"campaign.progress", b"campaign.status"})
"""What the tenant WebSocket forwards from the campaign event topic (the rest is for the read models)."""
PUMP_GROUP = "ws-gateway"  # the metrics' group label: the gateway reads without a consumer group
LAG_SAMPLE_S = 5.0


async def pump(hub: Hub, bootstrap: str, topic: str | Sequence[str], stopping: asyncio.Event,
               metrics: Metrics | None = None, only: frozenset[bytes] | None = None,
               signals_ready: bool = True, keys: KeyRing | None = None) -> None:
    """Tail every partition of event topics from their live end (read-committed); ``only``: these types.

    Given the session event topic and the secrets topic, records whose whole copy is on the secrets topic
    (``zs_redacted``) are skipped: the sockets get that copy, with the QR or pairing code, as always.
    ``keys`` decrypts the records' personal fields, so sockets get the clear text the runner produced.
    A record pushed to a tenant's sockets gets a CONSUMER span continuing its ``traceparent``: the last
    hop of the trace a request started."""
    metrics = metrics or hub.metrics
    tracer = telemetry.tracer("ws-gateway")
    tps: list[TopicPartition] = []
    for name in [topic] if isinstance(topic, str) else topic:
        partitions = await partitions_of(bootstrap, name)
        while not partitions:
            log.warning("waiting for topic %s", name)
            await asyncio.sleep(1)
            partitions = await partitions_of(bootstrap, name)
        tps += [TopicPartition(name, p) for p in sorted(partitions)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        if signals_ready:
            hub.ready.set()
        loop = asyncio.get_running_loop()
        sampled = 0.0
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            if loop.time() - sampled >= LAG_SAMPLE_S:
                sampled = loop.time()
                await record_consumer_lag(metrics, consumer, PUMP_GROUP)
            tracing = telemetry.enabled()
            for tp, records in batches.items():
                metrics.events_consumed.labels(tp.topic, PUMP_GROUP).inc(len(records))
                for record in records:
                    headers = dict(record.headers)
                    type_ = headers.get("ce_type", b"")
                    if (type_ in INTERNAL_TYPES or REDACTED_HEADER in headers
                            or (only is not None and type_ not in only)):
                        continue
                    tenant = headers.get("ce_tenantid", b"").decode()
                    if not tenant or tenant not in hub.clients:
                        continue
                    value = record.value if keys is None else await keys.open_value(record.value)
                    if not tracing:
                        hub.publish(tenant, with_qr_image(value) if type_ == QR_TYPE else value, record.headers)
                    else:
                        with telemetry.consume_span(tracer, f"push {type_.decode(errors='replace')}",
                                                    headers=record.headers):
                            hub.publish(tenant, with_qr_image(value) if type_ == QR_TYPE else value, record.headers)
    finally:
        await consumer.stop()

