"""Webhooks deliver QR and pairing codes from the secrets topic, in place of the redacted events (no I/O)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from webhooks.consumer import deliveries_for
from webhooks.secrets import SecretCopies, without_secret
from webhooks.store import Endpoint, NewDelivery
from zapstream_contracts import payloads as p
from zapstream_contracts import secrets
from zapstream_contracts.envelope import Envelope

TENANT = "t-hooks"
NOW_S = 1_800_000_000.0
HOUR_MS = 3_600_000


@dataclass
class Rec:
    value: bytes
    headers: list[tuple[str, bytes]]
    offset: int
    timestamp: int
    partition: int = 0


class FakeSource:
    """A secrets partition: ``arriving[n]`` records become readable on the n-th read (0 first)."""

    def __init__(self, *arriving: list[Rec]) -> None:
        self.arriving = list(arriving)
        self.reads = 0

    async def read_to_end(self, partition: int) -> list[Any]:
        self.reads += 1
        return self.arriving.pop(0) if self.arriving else []


def qr_event(session: str, version: int) -> Envelope:
    redacted = p.QrUpdated(tenant_id=TENANT, expires_at="2027-01-15T08:00:20.000Z")
    return Envelope("session.qr.updated", session, str(uuid.uuid4()), "2027-01-15T08:00:00.000Z",
                    redacted.model_dump(by_alias=True, mode="json"), version=version)


def msg_event(session: str, version: int) -> Envelope:
    return Envelope("session.status.connected", session, str(uuid.uuid4()), "2027-01-15T08:00:00.000Z",
                    {"tenantId": TENANT, "phone": "51999999999", "connectedAt": "2027-01-15T08:00:00.000Z"},
                    version=version)


def on_log(env: Envelope, offset: int, ts_ms: int) -> Rec:
    """The event-log record: redacted (with the header) for a QR, as is otherwise."""
    headers = secrets.redacted_headers(env, "t") if env.type == "session.qr.updated" else env.headers("t")
    return Rec(env.value(), headers, offset, ts_ms)


def on_secrets(env: Envelope, qr: str, offset: int, ts_ms: int) -> Rec:
    whole = secrets.with_qr(env, qr)
    return Rec(whole.value(), secrets.headers(whole, "t"), offset, ts_ms)


def endpoint(types: list[str] | None = None) -> Endpoint:
    return Endpoint(uuid.uuid4(), TENANT, types or [], [])


def deliveries(records: list[Rec], endpoints: list[Endpoint]) -> list[NewDelivery]:
    # Plain records (nothing sealed): decoded as the consumer does before decryption.
    return deliveries_for([Envelope.from_record(r.value, r.headers) for r in records], endpoints)


def copies(source: FakeSource, wait_s: float = 0.0) -> SecretCopies:
    return SecretCopies(source, retention_ms=HOUR_MS, wait_s=wait_s, clock=lambda: NOW_S)


NOW_MS = int(NOW_S * 1000)


async def test_a_redacted_qr_is_delivered_as_its_whole_copy_and_only_once() -> None:
    s = str(uuid.uuid4())
    qr, connected = qr_event(s, 3), msg_event(s, 4)
    log = [on_log(qr, 10, NOW_MS), on_log(connected, 11, NOW_MS)]
    orphan = on_secrets(qr_event(s, 1), "2@old", 4, NOW_MS - 1000)  # an event before this consumer's start
    source = FakeSource([orphan, on_secrets(qr, "2@code,xyz", 5, NOW_MS)])
    every, qr_only = endpoint(), endpoint(["session.qr.updated"])
    join = copies(source)

    joined = await join.join(0, log, deliveries(log, [every, qr_only]))

    # One delivery per (endpoint, event): the QR's body is the whole copy, in the redacted event's place.
    assert [(d.endpoint_id, d.event_id) for d in joined.deliveries] == \
        [(every.id, qr.event_id), (qr_only.id, qr.event_id), (every.id, connected.event_id)]
    bodies = [orjson.loads(d.body) for d in joined.deliveries]
    assert bodies[0] == bodies[1] == {**qr.to_wire(), "payload": {"tenantId": TENANT, "qr": "2@code,xyz",
                                                                   "expiresAt": "2027-01-15T08:00:20.000Z"}}
    assert joined.deliveries[2].body == connected.value()
    assert joined.next_offset == 6 and joined.missing == 0
    # Not consumed before the batch is stored: a failed transaction joins the same again.
    again = await join.join(0, log, deliveries(log, [every]))
    assert again.next_offset == 6 and orjson.loads(again.deliveries[0].body)["payload"]["qr"] == "2@code,xyz"
    join.advance(0, 6)
    assert join.buffers[0].records == []


async def test_nobody_wanting_the_qr_reads_no_secret() -> None:
    s = str(uuid.uuid4())
    log = [on_log(qr_event(s, 1), 0, NOW_MS), on_log(msg_event(s, 2), 1, NOW_MS)]
    source = FakeSource()
    joined = await copies(source).join(0, log, deliveries(log, [endpoint(["session.status.*"])]))
    assert source.reads == 0 and joined.next_offset is None and len(joined.deliveries) == 1


async def test_an_expired_copy_leaves_the_redacted_event_and_later_copies_still_match() -> None:
    s = str(uuid.uuid4())
    old, new = qr_event(s, 1), qr_event(s, 2)
    # The first event is older than the secrets topic's retention: its copy was deleted.
    log = [on_log(old, 0, NOW_MS - 2 * HOUR_MS), on_log(new, 1, NOW_MS)]
    source = FakeSource([on_secrets(new, "2@new", 7, NOW_MS)])
    joined = await copies(source, wait_s=30).join(0, log, deliveries(log, [endpoint()]))
    assert joined.deliveries[0].body == old.value()  # redacted: no "qr"
    assert "qr" not in orjson.loads(joined.deliveries[0].body)["payload"]
    assert orjson.loads(joined.deliveries[1].body)["payload"]["qr"] == "2@new"
    assert joined.missing == 1 and joined.next_offset == 8
    assert source.reads == 1  # an old event does not wait


async def test_a_young_event_waits_for_its_copy_to_become_readable() -> None:
    s = str(uuid.uuid4())
    qr = qr_event(s, 1)
    log = [on_log(qr, 0, NOW_MS)]
    # The transaction's marker reached the event partition first: the copy shows up on the third read.
    source = FakeSource([], [], [on_secrets(qr, "2@late", 0, NOW_MS)])
    joined = await copies(source, wait_s=30).join(0, log, deliveries(log, [endpoint()]))
    assert orjson.loads(joined.deliveries[0].body)["payload"]["qr"] == "2@late" and source.reads == 3

    # Without any wait allowed it goes out redacted rather than hold the session's other events back.
    gave_up = await copies(FakeSource([], [on_secrets(qr, "2@late", 0, NOW_MS)])).join(
        0, log, deliveries(log, [endpoint()]))
    assert gave_up.missing == 1 and gave_up.deliveries[0].body == qr.value()


def test_done_deliveries_keep_the_event_without_its_code() -> None:
    s = str(uuid.uuid4())
    qr = qr_event(s, 1)
    whole = secrets.with_qr(qr, "2@code").value()
    kept = without_secret("session.qr.updated", whole)
    assert kept is not None and orjson.loads(kept) == orjson.loads(qr.value())
    assert without_secret("session.qr.updated", qr.value()) is None  # already without it
    assert without_secret("session.status.connected", msg_event(s, 2).value()) is None

    succeeded = p.CommandSucceeded(tenant_id=TENANT, command_id="c-1", command_type="session.request_pair_code",
                                   result={"phone": "51999999999"})
    redacted = Envelope("session.command.succeeded", s, str(uuid.uuid4()), "2027-01-15T08:00:00.000Z",
                        succeeded.model_dump(by_alias=True, mode="json"), version=3)
    paired = secrets.with_pair_code(redacted, "ABCD-1234").value()
    assert orjson.loads(paired)["payload"]["result"] == {"code": "ABCD-1234", "phone": "51999999999"}
    kept = without_secret("session.command.succeeded", paired)
    assert kept is not None and orjson.loads(kept) == orjson.loads(redacted.value())
    other = dict(orjson.loads(redacted.value()), payload=dict(succeeded.model_dump(by_alias=True, mode="json"),
                                                              commandType="session.send_message"))
    assert without_secret("session.command.succeeded", orjson.dumps(other)) is None
