"""Fan-out of the event topic to WebSocket clients, by tenant.

Each client has a bounded queue: a slow client is disconnected (close code
1013) rather than allowed to slow down everyone else or grow memory.

Clients with a narrower view get filtered frames: an API key scoped to some
sessions sees only those sessions' events; an agent sees session status events
(``session.status.*``) and, of the chat events, only the items of its assigned
chats. Batch events are filtered item by item (and their ``*Count`` adjusted);
an event left with no item, and every other event type (QR, created, deleted,
command outcomes), is dropped for agents.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import orjson
import segno
from aiokafka import AIOKafkaConsumer, TopicPartition

from zapstream_platform import telemetry
from zapstream_platform.metrics import Metrics, record_consumer_lag
from zapstream_platform.pii import KeyRing
from zapstream_platform.topics import partitions_of

log = logging.getLogger(__name__)

# Bookkeeping events of the runner, not part of the client's contract.
INTERNAL_TYPES = frozenset({b"session.messages.send_requested", b"session.started"})


STATUS_TYPES = frozenset({"session.status.connected", "session.status.disconnected", "session.status.logged_out"})
# event type → (list in the payload, key of the chat in each item)
CHAT_LISTS = {
    "session.messages.upsert": ("messages", "remoteJid"),
    "session.history.sync": ("messages", "remoteJid"),
    "session.messages.update": ("updates", "remoteJid"),
    "session.messages.edit": ("edits", "chatJid"),
    "session.messages.reaction": ("reactions", "chatJid"),
    "session.messages.media": ("media", "chatJid"),
    "session.contacts.upsert": ("contacts", "id"),
}


def _filter_items(payload: dict[str, Any], key: str, item_key: str, chats: frozenset[str],
                  default_chat: Any = None) -> dict[str, Any] | None:
    items = payload.get(key)
    if not isinstance(items, list):
        return None
    kept = [i for i in items if isinstance(i, dict) and i.get(item_key, default_chat) in chats]
    if not kept:
        return None
    if len(kept) == len(items):
        return payload
    out = payload | {key: kept}
    if f"{key}Count" in payload:
        out[f"{key}Count"] = len(kept)
    return out


def for_agent(event: dict[str, Any], chats: frozenset[str]) -> dict[str, Any] | None:
    """The part of ``event`` an agent assigned to ``chats`` may see, or None."""
    type_ = event.get("type")
    payload = event.get("payload")
    if type_ in STATUS_TYPES:
        return event
    if not isinstance(payload, dict):
        return None
    if type_ == "session.presence.update":
        return event if payload.get("chatJid") in chats else None
    if type_ == "session.messages.delete":
        if payload.get("scope") == "chat" or "deletes" not in payload:
            return event if payload.get("chatJid") in chats else None
        kept = _filter_items(payload, "deletes", "chatJid", chats, payload.get("chatJid"))
    elif type_ in CHAT_LISTS:
        key, item_key = CHAT_LISTS[type_]
        kept = _filter_items(payload, key, item_key, chats)
    else:
        return None
    if kept is None:
        return None
    return event if kept is payload else event | {"payload": kept}


QR_TYPE = b"session.qr.updated"


def qr_data_url(qr: str) -> str:
    """The QR as a PNG data URL (seed 003's clients put it straight into ``<img src>``)."""
    return str(segno.make(qr, error="m", micro=False).png_data_uri(scale=4, border=4))


def with_qr_image(frame: bytes) -> bytes:
    """Adds ``qrImage`` to a ``session.qr.updated`` frame on its way out. Made here, never stored:
    the QR is a secret that must not outlive its minute in the event log's copies."""
    try:
        event = orjson.loads(frame)
        qr = event["payload"]["qr"]
        if not isinstance(qr, str) or not qr:
            return frame
        event["payload"]["qrImage"] = qr_data_url(qr)
        return orjson.dumps(event)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return frame


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

    def view(self, event: dict[str, Any]) -> dict[str, Any] | None:
        if self.sessions is not None and event.get("sessionId") not in self.sessions:
            return None
        if self.chats is not None:
            return for_agent(event, self.chats)
        return event

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

    def publish(self, tenant_id: str, frame: bytes) -> None:
        event: Any = None
        for client in list(self.clients.get(tenant_id, ())):
            if client.filtered:
                if event is None:
                    try:
                        event = orjson.loads(frame)
                    except orjson.JSONDecodeError:
                        event = {}
                    if not isinstance(event, dict):
                        event = {}
                view = client.view(event)
                if view is None:
                    continue
                client.offer(frame if view is event else orjson.dumps(view))
            else:
                client.offer(frame)
            self.delivered += 1


CAMPAIGN_TYPES = frozenset({b"campaign.progress", b"campaign.status"})
"""What the tenant WebSocket forwards from the campaign event topic (the rest is for the read models)."""
PUMP_GROUP = "ws-gateway"  # the metrics' group label: the gateway reads without a consumer group
LAG_SAMPLE_S = 5.0


async def pump(hub: Hub, bootstrap: str, topic: str, stopping: asyncio.Event, metrics: Metrics | None = None,
               only: frozenset[bytes] | None = None, signals_ready: bool = True, keys: KeyRing | None = None) -> None:
    """Tail every partition of an event topic from its live end (read-committed); ``only``: these types.

    ``keys`` decrypts the records' personal fields, so sockets get the clear text the runner produced.
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
                    if not tenant or tenant not in hub.clients:
                        continue
                    value = record.value if keys is None else await keys.open_value(record.value)
                    if not tracing:
                        hub.publish(tenant, with_qr_image(value) if type_ == QR_TYPE else value)
                    else:
                        with telemetry.consume_span(tracer, f"push {type_.decode(errors='replace')}",
                                                    headers=record.headers):
                            hub.publish(tenant, with_qr_image(value) if type_ == QR_TYPE else value)
    finally:
        await consumer.stop()

