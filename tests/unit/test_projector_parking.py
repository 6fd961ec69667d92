"""A payload that does not fit its contract fails to project, and a rebuild parks it and goes on (no database)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pydantic
import pytest
from aiokafka import TopicPartition

from projector.app import Projector
from projector.handlers import Batch
from projector.settings import Settings
from zapstream_contracts.envelope import Envelope
from zapstream_platform.metrics import Metrics

TP = TopicPartition("events", 0)


def test_a_payload_that_does_not_fit_its_model_fails_the_fold() -> None:
    broken = Envelope(type="session.messages.upsert", session_id=str(uuid.uuid4()), event_id=str(uuid.uuid4()),
                      occurred_on="2026-01-01T00:00:00.000Z", payload={"tenantId": "t"}, version=1)
    with pytest.raises(pydantic.ValidationError, match="MessagesUpsert"):
        Batch().apply(broken)


@dataclass(frozen=True)
class Record:
    offset: int
    poison: bool = False


class FakeProjector(Projector):  # type: ignore[misc]  # (aiokafka is untyped, so Projector's base is Any)
    """``apply_batch`` fails a batch holding a poison record (as a bad payload fails ``project``)."""

    def __init__(self) -> None:
        super().__init__(Settings(retry_backoff_s=0.0, max_attempts=3), pool=None, schema="rm_v9",
                         metrics=Metrics("projector-test"), parks_as="main")
        self.applied: list[int] = []
        self.attempts: list[list[int]] = []
        self.parked: list[tuple[int, str]] = []

    async def apply_batch(self, tp: TopicPartition, records: list[Any]) -> None:
        self.attempts.append([r.offset for r in records])
        if any(r.poison for r in records):
            raise ValueError(f"poison in {records[0].offset}..{records[-1].offset}")
        self.applied += [r.offset for r in records]

    async def dead_letter(self, tp: TopicPartition, record: Any, reason: str) -> None:
        self.parked.append((record.offset, reason))


async def test_a_rebuild_parks_each_poison_record_and_applies_every_other_one_in_order() -> None:
    projector = FakeProjector()
    records = [Record(i, poison=i in (5, 17)) for i in range(40)]
    assert await projector.apply_or_park(TP, records) == 2
    assert projector.applied == [i for i in range(40) if i not in (5, 17)]
    assert [offset for offset, _ in projector.parked] == [5, 17]
    assert projector.parked[0][1].startswith("ValueError: poison in 5..5")
    assert projector.attempts.count([5]) == 3  # max_attempts alone before it is parked, as in the live loop
    assert len(projector.attempts) < 40  # halving, not one transaction per record


async def test_an_outage_is_raised_not_parked() -> None:
    class Down(FakeProjector):
        async def apply_batch(self, tp: TopicPartition, records: list[Any]) -> None:
            raise ConnectionRefusedError("postgres is away")

    projector = Down()
    with pytest.raises(ConnectionRefusedError):
        await projector.apply_or_park(TP, [Record(0), Record(1)])
    assert projector.parked == []
