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
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import orjson
import segno
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from zapstream_contracts import events as ev
from zapstream_contracts import payloads as p
from zapstream_contracts.envelope import Envelope
from zapstream_contracts.events import SESSION_EVENTS, EventSpec
from zapstream_contracts.payloads import Wire
from zapstream_platform import telemetry
from zapstream_platform.metrics import Metrics, record_consumer_lag
from zapstream_platform.topics import partitions_of

log = logging.getLogger(__name__)

# Bookkeeping events of the runner, not part of the client's contract.
INTERNAL_TYPES = frozenset({b"session.messages.send_requested", b"session.started"})


STATUS_TYPES = frozenset({"session.status.connected", "session.status.disconnected", "session.status.logged_out"})


W = TypeVar("W", bound=Wire)
Headers = list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]


def _narrowed(d: W, total: int, kept: list[Any], **update: Any) -> W | None:
    """``d`` with only the ``kept`` items (None: none kept; ``d`` itself: all kept, so its frame goes out as is)."""
    if not kept:
        return None
    if len(kept) == total:
        return d
    return d.model_copy(update=update)


def _upsert(d: p.MessagesUpsert, chats: frozenset[str]) -> p.MessagesUpsert | None:
    kept = [m for m in d.messages if m.remote_jid in chats]
    return _narrowed(d, len(d.messages), kept, messages=kept, messages_count=len(kept))


def _history(d: p.HistorySync, chats: frozenset[str]) -> p.HistorySync | None:
    kept = [m for m in d.messages if m.remote_jid in chats]
    return _narrowed(d, len(d.messages), kept, messages=kept, messages_count=len(kept))


def _update(d: p.MessagesUpdate, chats: frozenset[str]) -> p.MessagesUpdate | None:
    kept = [u for u in d.updates if u.remote_jid in chats]
    return _narrowed(d, len(d.updates), kept, updates=kept, updates_count=len(kept))


def _edit(d: p.MessagesEdit, chats: frozenset[str]) -> p.MessagesEdit | None:
    kept = [e for e in d.edits if e.chat_jid in chats]
    return _narrowed(d, len(d.edits), kept, edits=kept, edits_count=len(kept))


def _reaction(d: p.MessagesReaction, chats: frozenset[str]) -> p.MessagesReaction | None:
    kept = [r for r in d.reactions if r.chat_jid in chats]
    return _narrowed(d, len(d.reactions), kept, reactions=kept, reactions_count=len(kept))


def _media(d: p.MessagesMedia, chats: frozenset[str]) -> p.MessagesMedia | None:
    kept = [m for m in d.media if m.chat_jid in chats]
    return _narrowed(d, len(d.media), kept, media=kept, media_count=len(kept))


def _contacts(d: p.ContactsUpsert, chats: frozenset[str]) -> p.ContactsUpsert | None:
    kept = [c for c in d.contacts if c.id in chats]
    return _narrowed(d, len(d.contacts), kept, contacts=kept, contacts_count=len(kept))


def _presence(d: p.PresenceUpdate, chats: frozenset[str]) -> p.PresenceUpdate | None:
    return d if d.chat_jid in chats else None


def _delete(d: p.MessagesDelete, chats: frozenset[str]) -> p.MessagesDelete | None:
    if d.scope == "chat":
        return d if d.chat_jid in chats else None
    # A revoked message names its chat; the event's chat stands in for an item that does not.
    kept = [x for x in d.deletes if (x.chat_jid if x.chat_jid is not None else d.chat_jid) in chats]
    return _narrowed(d, len(d.deletes), kept, deletes=kept, deletes_count=len(kept))


_FILTERS: list[tuple[EventSpec[Any], Callable[[Any, frozenset[str]], Wire | None]]] = [
    (ev.MESSAGES_UPSERT, _upsert), (ev.HISTORY_SYNC, _history), (ev.MESSAGES_UPDATE, _update),
    (ev.MESSAGES_EDIT, _edit), (ev.MESSAGES_REACTION, _reaction), (ev.MESSAGES_MEDIA, _media),
    (ev.CONTACTS_UPSERT, _contacts), (ev.PRESENCE_UPDATE, _presence), (ev.MESSAGES_DELETE, _delete),
]
CHAT_FILTERS: dict[str, Callable[[Any, frozenset[str]], Wire | None]] = {spec.type: fn for spec, fn in _FILTERS}
"""The chat events an agent sees: event type → its payload narrowed to the agent's chats (each batch item by
item, with its count adjusted; None when nothing is left)."""


class Event:
    """One record on its way to a tenant's sockets: the frame, sent as it is, and what filtering reads from it,
    decoded on first need and then once for every socket (the typed payload only for a chat event)."""

    __slots__ = ("_data", "_env", "frame", "headers")

    def __init__(self, frame: bytes, headers: Headers = ()) -> None:
        self.frame = frame
        self.headers = headers
        self._env: Envelope | bool | None = False
        self._data: Wire | bool | None = False

    @property
    def envelope(self) -> Envelope | None:
        """The session event's envelope; None for a campaign event or a frame that is not one."""
        if self._env is False:
            self._env = decode(self.frame, self.headers)
        return self._env if isinstance(self._env, Envelope) else None

    def chat_data(self) -> Wire | None:
        """The payload of a chat event as its contract model; None for other types or a payload that is not valid."""
        if self._data is False:
            self._data = None
            env = self.envelope
            if env is not None and env.type in CHAT_FILTERS:
                try:
                    self._data = env.data(SESSION_EVENTS[env.type].payload)
                except ValidationError:
                    log.warning("dropping an invalid %s for filtered sockets", env.type)
        return self._data if isinstance(self._data, Wire) else None


def decode(frame: bytes, headers: Headers = ()) -> Envelope | None:
    """A session event frame as its envelope (None when it is not one, e.g. a campaign event)."""
    try:
        return Envelope.from_record(frame, headers)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


def for_agent(event: Event, chats: frozenset[str]) -> bytes | None:
    """The frame an agent assigned to ``chats`` may see of ``event``, or None."""
    env = event.envelope
    if env is None:
        return None
    if env.type in STATUS_TYPES:
        return event.frame
    narrow = CHAT_FILTERS.get(env.type)
    data = event.chat_data() if narrow is not None else None
    if narrow is None or data is None:
        return None
    kept = narrow(data, chats)
    if kept is None:
        return None
    if kept is data:
        return event.frame
    return replace(env, payload=kept.model_dump(by_alias=True, mode="json")).value()


QR_TYPE = b"session.qr.updated"


def qr_data_url(qr: str) -> str:
    """The QR as a PNG data URL (seed 003's clients put it straight into ``<img src>``)."""
    return str(segno.make(qr, error="m", micro=False).png_data_uri(scale=4, border=4))


def with_qr_image(frame: bytes) -> bytes:
    """Adds ``qrImage`` to a ``session.qr.updated`` frame on its way out. Made here, never stored:
    the QR is a secret that must not outlive its minute in the event log's copies."""
    env = decode(frame)
    if env is None:
        return frame
    try:
        qr = env.data(p.QrUpdated).qr
    except (ValidationError, TypeError):
        return frame
    if not qr:
        return frame
    return replace(env, payload=env.payload | {"qrImage": qr_data_url(qr)}).value()


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


async def pump(hub: Hub, bootstrap: str, topic: str, stopping: asyncio.Event, metrics: Metrics | None = None,
               only: frozenset[bytes] | None = None, signals_ready: bool = True) -> None:
    """Tail every partition of an event topic from its live end (read-committed); ``only``: these types.

    A record pushed to a tenant's sockets gets a CONSUMER span continuing its ``traceparent``: the last
    hop of the trace a request started."""
    metrics = metrics or hub.metrics
    tracer = telemetry.tracer("ws-gateway")
    partitions = await partitions_of(bootstrap, topic)
    while not partitions:
        log.warning("waiting for topic %s", topic)
        await asyncio.sleep(1)
        partitions = await partitions_of(bootstrap, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
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
                    if type_ in INTERNAL_TYPES or (only is not None and type_ not in only):
                        continue
                    tenant = headers.get("ce_tenantid", b"").decode()
                    if tenant and tenant in hub.clients and not tracing:
                        hub.publish(tenant, with_qr_image(record.value) if type_ == QR_TYPE else record.value,
                                    record.headers)
                    elif tenant and tenant in hub.clients:
                        with telemetry.consume_span(tracer, f"push {type_.decode(errors='replace')}",
                                                    headers=record.headers):
                            hub.publish(tenant, with_qr_image(record.value) if type_ == QR_TYPE else record.value,
                                        record.headers)
    finally:
        await consumer.stop()

