"""Session snapshots in a compacted topic, so a new owner's rebuild does not grow with history.

Every ``checkpoint_events`` events a partition owner ends its transaction with a
**checkpoint**: the snapshot of every session that changed since its last snapshot,
then a checkpoint record saying from which event offset the snapshots are not
complete. Both are in the same Kafka transaction as the events they summarise, so
they can never disagree with the event topic.

A new owner reads its partition of the snapshot topic (compacted: about one record
per session), then the event topic from the checkpoint's offset: at most about
``checkpoint_events`` events, whatever the history. Without a checkpoint (a topic
written before snapshots existed) it replays the whole partition once and
checkpoints at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from zapstream_contracts import pii
from zapstream_contracts.envelope import Envelope
from zapstream_domain.decisions import event_from_wire, evolve
from zapstream_domain.session import EVENTS_BY_TYPE, Session
from zapstream_domain.snapshots import erased_session, session_from_snapshot, snapshot_of
from zapstream_platform.pii import KeyRing
from zapstream_platform.topics import Topics

log = logging.getLogger(__name__)

CHECKPOINT_KEY = b"__checkpoint__"
SEALED = "sealed"  # a snapshot's ``state`` when encrypted: ``{"sealed": "zsenc:1:<tenantId>:…"}``


class SnapshotLog:
    def __init__(self, topics: Topics, partition: int, bootstrap: str, checkpoint_events: int,
                 keys: KeyRing | None = None) -> None:
        self.topics = topics
        self.keys = keys  # to decrypt the events' personal fields: the rebuilt state is what was written
        self.partition = partition
        self.bootstrap = bootstrap
        self.checkpoint_events = checkpoint_events
        self.snapshot_versions: dict[str, int] = {}
        self.event_end = 0  # event offset after the last committed transaction of this owner
        self.since_checkpoint = 0
        self.due = False  # a checkpoint was asked for (take-over, hand-over)
        self.loaded = 0
        self.tail_read = 0
        self._sent: list[asyncio.Future[Any]] = []
        self._pending_versions: dict[str, int] = {}

    # ----- rebuild -------------------------------------------------------------

    async def load(self) -> dict[str, Session]:
        """Latest snapshots plus the events after the latest checkpoint."""
        snap_tp = TopicPartition(self.topics.session_snapshots, self.partition)
        event_tp = TopicPartition(self.topics.session_events, self.partition)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        await consumer.start()
        try:
            consumer.assign([snap_tp, event_tp])
            ends = await consumer.end_offsets([snap_tp, event_tp])
            latest: dict[bytes, bytes] = {}
            await consumer.seek_to_beginning(snap_tp)
            consumer.pause(event_tp)
            while await consumer.position(snap_tp) < ends[snap_tp]:
                batch = await consumer.getmany(snap_tp, timeout_ms=500, max_records=10_000)
                for record in batch.get(snap_tp, []):
                    if record.key is not None and record.value is not None:
                        latest[record.key] = record.value
            events_from = 0
            sessions: dict[str, Session] = {}
            erased: set[str] = set()
            checkpoint = latest.pop(CHECKPOINT_KEY, None)
            if checkpoint is not None:
                events_from = int(orjson.loads(checkpoint)["eventsFrom"])
                for raw in latest.values():
                    stored = orjson.loads(raw)
                    data = await self._opened(stored)
                    if data is None:
                        # Its tenant was deleted (key destroyed): its state is gone with it, but it stays as a
                        # deleted session at its version, so the purge the deletion asked for is still recorded.
                        session = erased_session(str(stored["id"]), pii.subject_of(str(stored["state"][SEALED])),
                                                 int(stored["version"]))
                        erased.add(session.session_id)
                    else:
                        session = session_from_snapshot(data)
                    sessions[session.session_id] = session
            self.snapshot_versions = {sid: s.version for sid, s in sessions.items()}
            self.loaded = len(sessions)
            consumer.pause(snap_tp)
            consumer.resume(event_tp)
            consumer.seek(event_tp, events_from)
            count = 0
            while await consumer.position(event_tp) < ends[event_tp]:
                batch = await consumer.getmany(event_tp, timeout_ms=500, max_records=10_000)
                for record in batch.get(event_tp, []):
                    env = Envelope.from_record(record.value, record.headers)
                    if self.keys is not None:
                        env = await self.keys.open(env)
                    if _apply_stored(sessions, env, erased):
                        count += 1
            self.tail_read = count
            self.event_end = ends[event_tp]
            self.since_checkpoint = count if checkpoint is not None else self.checkpoint_events
            log.info("rebuilt", extra={"fields": {"partition": self.partition, "snapshots": self.loaded,
                                                  "events_from": events_from, "events": count}})
            return sessions
        finally:
            await consumer.stop()

    # ----- writing -------------------------------------------------------------

    def begin(self) -> None:
        self._sent = []
        self._pending_versions = {}

    def track(self, sent: asyncio.Future[Any]) -> None:
        """An event record of the open transaction (its offset is known once it commits)."""
        self._sent.append(sent)

    async def write_if_due(self, producer: AIOKafkaProducer, sessions: dict[str, Session]) -> None:
        """End the open transaction with a checkpoint when enough events were written since the last."""
        if not self.due and self.since_checkpoint + len(self._sent) < self.checkpoint_events:
            return
        for sid, session in sessions.items():
            if self.snapshot_versions.get(sid) == session.version:
                continue
            await producer.send(self.topics.session_snapshots, key=sid.encode(),
                                value=orjson.dumps(await self._sealed(session)), partition=self.partition)
            self._pending_versions[sid] = session.version
        # Every event before ``event_end`` is in a snapshot now, and so are this transaction's.
        await producer.send(self.topics.session_snapshots, key=CHECKPOINT_KEY,
                            value=orjson.dumps({"eventsFrom": self.event_end}), partition=self.partition)
        self._pending_versions["__checkpoint__"] = 0

    async def _sealed(self, session: Session) -> dict[str, Any]:
        """The snapshot, its state encrypted with the tenant's key: it holds unsent texts, contact names and
        the account's number, and the compacted topic keeps the latest one for as long as the session lives."""
        data = snapshot_of(session)
        if self.keys is not None and session.tenant_id:
            key = await self.keys.writer_key(session.tenant_id)
            data["state"] = {SEALED: pii.encrypt(key, session.tenant_id, SEALED, orjson.dumps(data["state"]).decode())}
        return data

    async def _opened(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """A stored snapshot with its state decrypted (plain ones, from before encryption, as they are); None when
        the tenant's key is gone."""
        sealed = data.get("state", {}).get(SEALED)
        if not pii.is_encrypted(sealed):
            return data
        if self.keys is None:
            raise RuntimeError("a sealed snapshot needs the key ring (RUNNER_POSTGRES__DSN)")
        subject = pii.subject_of(str(sealed))
        key = (await self.keys.keys([subject])).get(subject)
        if key is None:
            return None
        return {**data, "state": orjson.loads(pii.decrypt(key, SEALED, str(sealed)))}

    def committed(self) -> None:
        offsets = [f.result().offset for f in self._sent if f.done() and not f.cancelled() and f.exception() is None]
        if offsets:
            self.event_end = max(max(offsets) + 1, self.event_end)
        if self._pending_versions.pop("__checkpoint__", None) is not None:
            self.snapshot_versions.update(self._pending_versions)
            self.since_checkpoint = 0
            self.due = False
        else:
            self.since_checkpoint += len(self._sent)
        self._sent = []
        self._pending_versions = {}


def _apply_stored(sessions: dict[str, Session], env: Envelope,
                  erased: frozenset[str] | set[str] = frozenset()) -> bool:
    if env.type not in EVENTS_BY_TYPE or env.version <= 0:
        return False
    current = sessions.get(env.session_id)
    if current is None and env.type != Session.Created.TYPE:
        return False
    if current is not None and env.version <= current.version:
        return False  # already in the snapshot
    if current is not None and env.session_id in erased and env.type != Session.Deleted.TYPE:
        # An erased session stays deleted: its later events only move its version on (their personal fields
        # are unreadable anyway); a session.deleted still applies, so a purge is recorded once.
        current.version = env.version
        return True
    event = event_from_wire(env.type, env.session_id, env.version, env.occurred_at(), env.payload)
    sessions[env.session_id] = evolve(current, event)
    return True
