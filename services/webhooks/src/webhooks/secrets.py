"""QR and pairing codes for webhook receivers: whole copies from the secrets topic, in their events' places.

The event log carries ``session.qr.updated`` and a pairing ``session.command.succeeded`` without their codes
(header ``zs_redacted``); the short-retention secrets topic carries the whole copy, with the same eventId, in
the **same partition number** and the same Kafka transaction (``zapstream_contracts.secrets``). Webhook
receivers are sent the whole copy, as before issue 17, and never the redacted one as well.

The event topic drives: a delivery is made where the redacted record sits, so a session's deliveries keep
its event order (a QR never overtakes the ``session.status.*`` before it), and its body is the whole copy
found by eventId in the same-numbered secrets partition. The secrets offset is stored with the event
offset in one PostgreSQL transaction, so a crash repeats neither and skips neither.

When the whole copy is not there the redacted copy is sent (the event still happened):
- the secrets topic no longer has it (kept ``KAFKA__SECRET_RETENTION_MS``, an hour: a consumer that lagged
  longer, or a replay of older events); the code had expired long before anyway;
- a young event's copy did not become readable within ``secret_wait_s`` (commit markers of one transaction
  reach the two partitions separately, so the copy may trail its event by milliseconds; longer means the
  secrets topic is broken, and holding the session's other events back would be worse).

Once a delivery holding a code is delivered or dead-lettered, its stored body is replaced by the redacted copy
(:func:`without_secret`): delivery rows are kept, codes must not be.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from webhooks import store
from zapstream_contracts import secrets
from zapstream_contracts.envelope import Envelope

log = logging.getLogger(__name__)

# Records younger than the retention less this are certainly still on the secrets topic (retention deletes
# whole segments whose newest record is older than it); the margin absorbs clock skew between hosts.
RETENTION_MARGIN_MS = 60_000
POLL_S = 0.1


class Source(Protocol):
    """Reads one secrets partition forward (Kafka in the service, a list in unit tests)."""

    async def read_to_end(self, partition: int) -> list[Any]:
        """Committed records from the current position to the partition's current end (maybe none)."""
        ...


class KafkaSource:
    """A group-less, read-committed consumer on the secrets topic, assigned what the event consumer owns."""

    def __init__(self, consumer: AIOKafkaConsumer, topic: str) -> None:
        self.consumer = consumer
        self.topic = topic

    async def assign(self, starts: dict[int, int | None]) -> None:
        """Own these partitions, each from its stored offset (None: the start of what the topic still has)."""
        tps = {p: TopicPartition(self.topic, p) for p in starts}
        self.consumer.assign(list(tps.values()))
        for p, start in starts.items():
            if start is None:
                await self.consumer.seek_to_beginning(tps[p])
            else:
                self.consumer.seek(tps[p], start)

    async def read_to_end(self, partition: int) -> list[Any]:
        tp = TopicPartition(self.topic, partition)
        end = (await self.consumer.end_offsets([tp]))[tp]
        out: list[Any] = []
        idle = 0
        while await self.consumer.position(tp) < end and idle < 20:
            batch = (await self.consumer.getmany(tp, timeout_ms=500, max_records=500)).get(tp, [])
            idle = 0 if batch else idle + 1
            out += batch
        return out


@dataclass(slots=True)
class Joined:
    deliveries: list[store.NewDelivery]
    # The secrets partition's next offset, to store with the batch's event offset (None: unchanged).
    next_offset: int | None = None
    missing: int = 0  # redacted events sent without their whole copy


@dataclass(slots=True)
class _Buffer:
    """Secrets records read but not yet consumed by a stored batch, in offset order, indexed by eventId."""

    records: list[Any] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)

    def extend(self, records: list[Any]) -> None:
        for r in records:
            self.index[_event_id(r)] = len(self.records)
            self.records.append(r)

    def drop_before(self, offset: int) -> None:
        kept = [r for r in self.records if r.offset >= offset]
        self.records, self.index = [], {}
        self.extend(kept)


def redacted_events(records: Sequence[Any]) -> list[tuple[str, int]]:
    """(eventId, record timestamp in ms) of the records whose whole copy is on the secrets topic, in order."""
    out = []
    for r in records:
        headers = dict(r.headers)
        if secrets.REDACTED_HEADER in headers and "ce_id" in headers:
            out.append((headers["ce_id"].decode(), int(r.timestamp)))
    return out


def _event_id(record: Any) -> str:
    return str(dict(record.headers).get("ce_id", b"").decode())


def decode_secret(record: Any) -> Envelope | None:
    try:
        return secrets.from_record(record.value, record.headers)
    except Exception:
        log.warning("unreadable secrets record skipped", extra={"fields": {"partition": record.partition,
                                                                           "offset": record.offset}})
        return None


class SecretCopies:
    """Finds the whole copies of a batch's redacted events, per partition, without consuming before commit.

    ``join`` only looks; ``advance`` (after the batch's transaction committed) forgets what was used, so a
    batch that failed to commit is joined again from the same place.
    """

    def __init__(self, source: Source, *, retention_ms: int, wait_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.retention_ms = retention_ms
        self.wait_s = wait_s
        self.clock = clock
        self.buffers: dict[int, _Buffer] = {}

    def reset(self, partitions: Sequence[int]) -> None:
        self.buffers = {p: _Buffer() for p in partitions}

    async def join(self, partition: int, records: Sequence[Any], deliveries: list[store.NewDelivery]) -> Joined:
        """``deliveries`` made from ``records`` (one event partition's batch), with the whole copies' bodies."""
        if not any(d.event_type in secrets.SECRET_EVENTS for d in deliveries):
            return Joined(deliveries)  # the usual batch: no header is looked at
        wanted = {d.event_id for d in deliveries if d.event_type in secrets.SECRET_EVENTS}
        needed = [(eid, ts) for eid, ts in redacted_events(records) if eid in wanted]
        if not needed:
            return Joined(deliveries)
        buf = self.buffers.setdefault(partition, _Buffer())
        cursor, next_offset, found = 0, None, {}
        read, may_wait = False, True
        for eid, ts in needed:
            at, read = await self._find(partition, buf, cursor, eid, read, young=may_wait and self._young(ts))
            if at is None:
                may_wait = False  # one wait per batch at most: the next ones would wait for the same reason
                continue
            whole = decode_secret(buf.records[at])
            cursor, next_offset = at + 1, buf.records[at].offset + 1
            if whole is not None and whole.event_id == eid and whole.type in secrets.SECRET_EVENTS:
                found[eid] = whole.value()
        out = [replace(d, body=found[d.event_id]) if d.event_id in found else d for d in deliveries]
        return Joined(out, next_offset, len({eid for eid, _ in needed} - found.keys()))

    def advance(self, partition: int, next_offset: int | None) -> None:
        """The batch joined with ``next_offset`` is stored: its records are used."""
        buf = self.buffers.get(partition)
        if buf is not None and next_offset is not None:
            buf.drop_before(next_offset)

    def _young(self, timestamp_ms: int) -> bool:
        return self.clock() * 1000 - timestamp_ms < self.retention_ms - RETENTION_MARGIN_MS

    async def _find(self, partition: int, buf: _Buffer, cursor: int, event_id: str, read: bool,
                    young: bool) -> tuple[int | None, bool]:
        """Index in ``buf`` of the copy of ``event_id`` at or after ``cursor`` (records before it are the copies
        of events this consumer started after: skipped), and whether the partition was read to its end.

        ``read``: already read to the end for this batch; an old event's copy missing then is gone for good.
        A young one's must come (same transaction): read again until ``wait_s`` has passed."""
        deadline = self.clock() + self.wait_s
        while True:
            at = buf.index.get(event_id)
            if at is not None and at >= cursor:
                return at, read
            if read and not young:
                return None, read
            before = len(buf.records)
            buf.extend(await self.source.read_to_end(partition))
            read = True
            if len(buf.records) > before:
                continue
            if not young or self.clock() >= deadline:
                return None, read
            await asyncio.sleep(POLL_S)


def without_secret(event_type: str, body: bytes) -> bytes | None:
    """The body to keep once a delivery is done: its redacted copy if it holds a code, else None (unchanged)."""
    if event_type not in secrets.SECRET_EVENTS:
        return None
    try:
        copy = secrets.redacted(secrets.from_record(body, ()))
    except Exception:  # not a whole copy (a redacted one sent after all): nothing to clear
        return None
    return None if copy is None else copy.value()
