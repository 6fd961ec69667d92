"""The consumer loop: a consumer-group member over the session command topic.

Partition ownership is session ownership; failover is a rebalance. Three choices
make it quick and quiet (see docs/architecture.md, "Failover"):

* **Detection:** a short group session timeout with frequent heartbeats, so a
  SIGKILLed runner's partitions move within ~1.5 s. A graceful shutdown hands its
  partitions over (calls in flight finish, outcomes and a checkpoint commit) and
  then leaves the group at once.
* **Sticky assignment, lazy revocation:** aiokafka only speaks the eager protocol,
  which revokes every partition on every rebalance. Revocation therefore only
  *suspends* owners (nothing is committed, connections stay up); once the new
  assignment is known, only the partitions that really moved are released, and
  kept ones resume. With the sticky assignor a joining or leaving runner moves
  only the partitions it must.
* **One handler per runner:** driver events are routed to whichever owner holds
  the session now, so connections outlive owner objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import Counter

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.errors import ProducerFenced

from session_runner.drivers import port as d
from session_runner.media import MediaPipeline
from session_runner.partition import PartitionOwner
from session_runner.sends import Links
from session_runner.settings import Settings
from zapstream_platform.errors import is_infrastructure
from zapstream_platform.metrics import Metrics, record_consumer_lag
from zapstream_platform.pii import KeyRing
from zapstream_platform.topics import Topics

log = logging.getLogger(__name__)


class SessionRunner(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs partition owners for whatever partitions the group gives this instance."""

    def __init__(self, settings: Settings, driver: d.WhatsAppDriver, media: MediaPipeline | None = None,
                 metrics: Metrics | None = None, keys: KeyRing | None = None) -> None:
        self.settings = settings
        self.keys = keys  # None: events are written without encrypting personal fields (tests only)
        self.metrics = metrics or Metrics("session-runner")
        self._linked_before: set[str] = set()  # sessions this runner has seen connected (reconnect count)
        self.driver = driver
        self.media = media
        self.topics = Topics.from_settings(settings.kafka)
        self.links = Links()
        self.owners: dict[int, PartitionOwner] = {}
        self.session_owner: dict[str, PartitionOwner] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        # partition → (offset, attempts) of the batch that keeps failing there
        self._failures: dict[int, tuple[int, int]] = {}
        self._states_seen: set[str] = set()

    # driver events -------------------------------------------------------------------
    async def on_driver_event(self, session_id: str, event: d.DriverEvent) -> None:
        """The one handler every connection of this runner reports to."""
        if isinstance(event, d.Connected):
            self.links.up(session_id)
            if session_id in self._linked_before:
                self.metrics.runner_reconnects.inc()
            self._linked_before.add(session_id)
        elif isinstance(event, (d.Disconnected, d.LoggedOut)):
            self.links.down(session_id)
        owner = self.session_owner.get(session_id)
        if owner is not None:
            owner.inbox.put((session_id, event))
            if isinstance(event, d.Disconnected) and event.replaced:
                # A connect still in flight on the previous owner can win the race against ours;
                # as the partition's owner we take the device back.
                owner.reconnect_later(session_id)
        # No owner: the partition moved; unacknowledged, the event is re-delivered to the next one.

    # ConsumerRebalanceListener -------------------------------------------------
    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Lazy: suspend only. Whether a partition really moves is known at assignment.
        owners = [self.owners[tp.partition] for tp in revoked if tp.partition in self.owners]
        await asyncio.gather(*(o.suspend() for o in owners), return_exceptions=True)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # aiokafka may fetch for a partition while this listener still runs;
        # paused partitions return nothing until their owner is ready.
        assert self.consumer is not None
        if self._stopping.is_set():
            return  # leaving the group: whoever gets these partitions next starts them
        keep = {tp.partition for tp in assigned}
        await self._release([p for p in self.owners if p not in keep], disconnect=True)
        # A fenced owner (another runner held the partition meanwhile) cannot commit again: start afresh.
        await self._release([p for p in keep if p in self.owners and self.owners[p].fenced], disconnect=False)
        for part in keep & set(self.owners):
            # Records fetched while suspended were not handled: read on from what was committed.
            self.consumer.seek(TopicPartition(self.topics.session_commands, part), self.owners[part].next_offset)
            self.owners[part].resume()
        fresh = [tp for tp in assigned if tp.partition not in self.owners]
        if not fresh:
            return
        self.consumer.pause(*fresh)
        owners = [self._owner(tp.partition) for tp in fresh]
        committed = {tp.partition: await self.consumer.committed(tp) for tp in fresh}
        results = await asyncio.gather(*(o.start(committed[o.partition]) for o in owners), return_exceptions=True)
        for owner, result in zip(owners, results, strict=True):
            if isinstance(result, BaseException):
                # Fenced or broker trouble: leave it paused; the next rebalance (or restart) retries.
                log.error("partition start failed", extra={"fields": {"partition": owner.partition,
                                                                      "error": repr(result)[:300]}})
                await owner.stop(disconnect=False)
                continue
            self.owners[owner.partition] = owner
            self.consumer.resume(TopicPartition(self.topics.session_commands, owner.partition))

    def _owner(self, part: int) -> PartitionOwner:
        s = self.settings
        return PartitionOwner(
            partition=part,
            topics=self.topics,
            bootstrap_servers=s.kafka.bootstrap_servers,
            group_id=s.group_id,
            driver=self.driver,
            links=self.links,
            on_event=self.on_driver_event,
            register=self.session_owner.__setitem__,
            flush_max=s.batch_max,
            flush_linger_s=s.flush_linger_ms / 1000,
            media=self.media,
            media_attempts=s.media_attempts,
            hold_deadline_s=s.hold_deadline_s,
            sends_per_session=s.sends_per_session,
            checkpoint_events=s.checkpoint_events,
            metrics=self.metrics,
            keys=self.keys,
        )

    async def _release(self, parts: list[int], *, disconnect: bool) -> None:
        owners = [self.owners.pop(p) for p in parts if p in self.owners]
        for part in parts:  # a partition that moved away has no lag here any more
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(self.settings.group_id, self.topics.session_commands, str(part))
        await asyncio.gather(*(o.stop(disconnect=disconnect) for o in owners), return_exceptions=True)
        for sid in [sid for sid, o in self.session_owner.items() if o in owners]:
            del self.session_owner[sid]

    # loop ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        s = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka.bootstrap_servers,
            group_id=s.group_id,
            client_id=s.instance_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            partition_assignment_strategy=(StickyPartitionAssignor,),
            max_poll_records=s.batch_max,
            # Under load the broker gathers up to this many ms of commands per fetch: larger
            # batches mean fewer transactions (each costs several round trips).
            fetch_max_wait_ms=s.fetch_linger_ms,
            fetch_min_bytes=64 * 1024,
        )
        self.consumer = consumer
        await consumer.start()
        consumer.subscribe([self.topics.session_commands], listener=self)
        log.info("runner started", extra={"fields": {"instance": s.instance_id}})
        stopping = asyncio.ensure_future(self._stopping.wait())
        sampler = asyncio.create_task(self._sample_metrics(consumer), name="metrics")
        try:
            while not self._stopping.is_set():
                poll = asyncio.ensure_future(consumer.getmany(timeout_ms=s.poll_timeout_ms, max_records=s.batch_max))
                await asyncio.wait([poll, stopping], return_when=asyncio.FIRST_COMPLETED)
                if not poll.done():
                    poll.cancel()
                    await asyncio.gather(poll, return_exceptions=True)
                    break
                batches = poll.result()
                await asyncio.gather(*(self._dispatch(tp, records) for tp, records in batches.items() if records))
        finally:
            stopping.cancel()
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            await self._shutdown(consumer)

    async def _sample_metrics(self, consumer: AIOKafkaConsumer) -> None:
        """Now and then: the sessions this runner owns by state, and its consumer lag per partition."""
        while True:
            states: Counter[str] = Counter(str(s.status) for o in list(self.owners.values()) for s in list(o.sessions.values()))
            for state in set(states) | self._states_seen:
                self.metrics.runner_sessions.labels(state).set(states.get(state, 0))
            self._states_seen |= set(states)
            with contextlib.suppress(Exception):  # between rebalances the assignment can vanish under us
                await record_consumer_lag(self.metrics, consumer, self.settings.group_id)
            await asyncio.sleep(self.settings.metrics_interval_s)

    async def _shutdown(self, consumer: AIOKafkaConsumer) -> None:
        """Hand over: commit what is in flight, leave the group, let the next owner take the connections."""
        owners = list(self.owners.values())
        grace = self.settings.handover_timeout_s
        await asyncio.gather(*(o.hand_over(grace) for o in owners), return_exceptions=True)
        # Leaving now makes the group rebalance at once; our connections stay up until the next
        # owner's connect replaces them, so the devices see (almost) no gap.
        await consumer.stop()
        sessions = [sid for o in owners for sid in o.sessions if self.links.is_up(sid)]
        deadline = asyncio.get_running_loop().time() + grace
        while sessions and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
            sessions = [sid for sid in sessions if self.links.is_up(sid)]
        await self._release(list(self.owners), disconnect=True)
        log.info("runner stopped")

    def _seek(self, tp: TopicPartition, offset: int) -> None:
        """Seek, unless a rebalance took the partition away meanwhile (its next owner starts from the commit)."""
        assert self.consumer is not None
        if tp in self.consumer.assignment():
            self.consumer.seek(tp, offset)

    def _pause(self, tp: TopicPartition) -> None:
        assert self.consumer is not None
        if tp in self.consumer.assignment():
            self.consumer.pause(tp)

    async def _dispatch(self, tp: TopicPartition, records: list) -> None:  # type: ignore[type-arg]
        owner = self.owners.get(tp.partition)
        assert self.consumer is not None
        if owner is None:
            # Never drop records: fetch them again once the partition has an owner.
            self._seek(tp, records[0].offset)
            return
        failing = self._failures.get(tp.partition)
        if failing is not None and failing[0] == owner.next_offset:
            # After a failure, go one record at a time so the poison is the only one held back.
            pending = [r for r in records if r.offset >= owner.next_offset][:1]
            if pending and records[-1] is not pending[0]:
                self._seek(tp, pending[0].offset + 1)
            records = pending or records
        try:
            await owner.handle_commands(records)
            self._failures.pop(tp.partition, None)
            self.metrics.events_consumed.labels(tp.topic, self.settings.group_id).inc(len(records))
        except ProducerFenced:
            # Another runner owns this partition now. This owner can never commit again: release it and
            # hold the partition until the rebalance says who has it (a fresh owner starts if it is ours).
            log.warning("producer fenced; releasing the partition", extra={"fields": {"partition": tp.partition}})
            self._pause(tp)
            if self.owners.get(tp.partition) is owner:
                await self._release([tp.partition], disconnect=False)
        except Exception as exc:
            offset = owner.next_offset
            if is_infrastructure(exc):
                log.warning("infrastructure unavailable; retrying", extra={"fields": {"partition": tp.partition,
                                                                                     "error": repr(exc)[:300]}})
                await asyncio.sleep(1.0)
                self._seek(tp, offset)
                return
            attempts = self._failures.get(tp.partition, (offset, 0))[1] + 1 if failing and failing[0] == offset else 1
            self._failures[tp.partition] = (offset, attempts)
            log.exception("batch failed", extra={"fields": {"partition": tp.partition, "offset": offset,
                                                            "attempt": attempts}})
            poison = next((r for r in records if r.offset >= offset), None)
            if attempts >= self.settings.max_attempts and len(records) == 1 and poison is not None:
                try:
                    await owner.dead_letter(poison, f"{type(exc).__name__}: {exc}")
                    self._failures.pop(tp.partition, None)
                except Exception:
                    log.exception("dead-lettering failed; will retry", extra={"fields": {"partition": tp.partition}})
                    await asyncio.sleep(1.0)
            else:
                await asyncio.sleep(min(self.settings.retry_backoff_s * 2 ** (attempts - 1), 10.0))
            self._seek(tp, owner.next_offset)


def install_signal_handlers(runner: SessionRunner) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.request_stop)
