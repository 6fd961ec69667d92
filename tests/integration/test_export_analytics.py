"""docs/analytics.md, checked: a known data set through the ``zapstream`` CLI, then the doc's own queries.

Two tenants over two days: sent and received messages (one upserted twice), receipts at known delays, and
a campaign whose recipients end skipped, read, delivered and failed. The export is run as an analyst runs it
(the console script, in its own process) and the SQL blocks of docs/analytics.md run on its files unchanged
but for the directory; so are the polars lines. Counts and percentiles are exact: every time is chosen here.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from tests.integration.test_export import ZAPSTREAM, _topic, cli
from tests.support.clients import produce_envelopes
from tests.support.stack import REPO
from zapstream_contracts import campaign_payloads as cp
from zapstream_contracts import payloads as p
from zapstream_contracts.campaign_envelope import CampaignEnvelope
from zapstream_contracts.envelope import Envelope
from zapstream_contracts.timefmt import iso
from zapstream_platform.settings import KafkaSettings

DOC = REPO / "docs" / "analytics.md"
DAY1 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
JID = "595981000111@s.whatsapp.net"


def doc_queries() -> dict[str, str]:
    """The doc's SQL blocks by their first comment line (``-- campaign funnel``); the rest under ``setup``."""
    queries: dict[str, str] = {}
    for block in re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S):
        title = re.match(r"-- (.+)\n", block)
        queries[title.group(1) if title else "setup"] = block
    return queries


def doc_polars() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1
    return str(blocks[0])


class Session:
    """Envelopes of one session with increasing sequence numbers, as the runner writes them."""

    def __init__(self, tenant: str) -> None:
        self.tenant, self.id, self.version, self.envelopes = tenant, str(uuid.uuid4()), 0, list[Envelope]()

    def add(self, type_: str, at: datetime, payload: BaseModel) -> None:
        self.version += 1
        self.envelopes.append(Envelope(type_, self.id, str(uuid.uuid4()), iso(at),
                                       payload.model_dump(by_alias=True, mode="json"), self.version))

    def upsert(self, at: datetime, *messages: tuple[str, bool], upsert_type: str = "notify",
               requested: bool = True) -> None:
        """Messages seen at ``at``; each one sent through the API is first requested, half a second before."""
        for mid, mine in messages:
            if mine and requested:
                self.add("session.messages.send_requested", at - timedelta(milliseconds=500), p.SendRequested(
                    tenant_id=self.tenant, command_id=str(uuid.uuid4()), message_id=mid, to=JID, text="x"))
        summaries = [p.MessageSummary(id=mid, remote_jid=JID, from_me=mine, timestamp=int(at.timestamp()),
                                      text="x") for mid, mine in messages]
        self.add("session.messages.upsert", at, p.MessagesUpsert(
            tenant_id=self.tenant, upsert_type=upsert_type,  # type: ignore[arg-type]
            messages_count=len(summaries), messages=summaries))

    def receipt(self, at: datetime, *updates: tuple[str, str]) -> None:
        self.add("session.messages.update", at, p.MessagesUpdate(
            tenant_id=self.tenant, updates_count=len(updates),
            updates=[p.StatusUpdate(message_id=mid, remote_jid=JID, status=status,  # type: ignore[arg-type]
                                    status_at=int(at.timestamp())) for mid, status in updates]))


def sessions(a: str, b: str) -> list[Session]:
    sa, sb = Session(a), Session(b)
    # Tenant a, day 1: three sent (delivered after 1 s, 2 s and 3 s, the last two in one receipt batch) and
    # two received; day 2: two sent (4 s and 10 s; the second read before its delivered receipt was seen), one
    # received, and a history append that repeats a day-1 message (counted once).
    sa.upsert(DAY1, ("a1", True))
    sa.upsert(DAY1 + timedelta(seconds=1), ("a2", True), ("a3", True))
    sa.receipt(DAY1 + timedelta(seconds=1), ("a1", "delivered"))
    sa.receipt(DAY1 + timedelta(seconds=3), ("a2", "delivered"), ("a3", "server_ack"))
    sa.receipt(DAY1 + timedelta(seconds=4), ("a3", "delivered"), ("a1", "read"))
    sa.upsert(DAY1 + timedelta(minutes=5), ("a4", False), ("a5", False))
    sa.upsert(DAY2, ("a6", True))
    sa.upsert(DAY2 + timedelta(seconds=1), ("a7", True))
    sa.receipt(DAY2 + timedelta(seconds=4), ("a6", "delivered"))
    sa.receipt(DAY2 + timedelta(seconds=11), ("a7", "read"))
    sa.upsert(DAY2 + timedelta(minutes=1), ("a8", False))
    sa.upsert(DAY2 + timedelta(minutes=2), ("a2", True), upsert_type="append", requested=False)
    # Tenant b, day 1: one sent, delivered after 0.5 s, and one received; one sent never delivered.
    sb.upsert(DAY1, ("b1", True))
    sb.receipt(DAY1 + timedelta(milliseconds=500), ("b1", "delivered"))
    sb.upsert(DAY1 + timedelta(seconds=2), ("b2", False))
    sb.upsert(DAY1 + timedelta(seconds=3), ("b3", True))
    return [sa, sb]


def campaign(tenant: str, session_id: str) -> list[CampaignEnvelope]:
    """Four recipients: one skipped (suppressed), one read, one delivered, one failed after a retry."""
    cid, at, out = str(uuid.uuid4()), DAY1 + timedelta(hours=1), list[CampaignEnvelope]()

    def add(type_: str, seconds: int, payload: BaseModel) -> None:
        out.append(CampaignEnvelope(type_, cid, str(uuid.uuid4()), iso(at + timedelta(seconds=seconds)),
                                    payload.model_dump(by_alias=True, mode="json"), len(out) + 1))

    add("campaign.created", 0, cp.CampaignCreated(
        tenant_id=tenant, name="promo marzo", message=cp.CampaignMessage(text="Hola {nombre}"),
        sessions=[cp.CampaignSession(session_id=session_id)], pacing=cp.Pacing(), timezone="America/Asuncion",
        expected_recipients=4, created_at=iso(at)))
    add("campaign.recipients.added", 0, cp.RecipientsAdded(tenant_id=tenant, chunk=0, recipients=[
        cp.Recipient(id=f"r{n}", seq=n, phone=f"59598100000{n}",
                     skip_reason="suppressed" if n == 4 else None) for n in range(1, 5)]))
    add("campaign.recipients.dispatched", 1, cp.RecipientsDispatched(tenant_id=tenant, items=[
        cp.Dispatch(recipient_id=f"r{n}", session_id=session_id, attempt=1, command_ids=[f"c{n}"], parts=[0],
                    at=iso(at)) for n in (1, 2, 3)]))

    def updated(seconds: int, *updates: tuple[str, str]) -> None:
        add("campaign.recipients.updated", seconds, cp.RecipientsUpdated(tenant_id=tenant, updates=[
            cp.RecipientUpdate(recipient_id=r, status=s, at=iso(at)) for r, s in updates]))  # type: ignore[arg-type]

    updated(2, ("r1", "sent"), ("r2", "sent"), ("r3", "retrying"))
    updated(3, ("r1", "delivered"), ("r2", "delivered"))
    updated(4, ("r1", "read"), ("r3", "failed"))
    return out


async def test_the_docs_queries_answer_from_the_export(kafka: KafkaSettings, infra: str, tmp_path: Path) -> None:
    a, b = f"t-a{uuid.uuid4().hex[:6]}", f"t-b{uuid.uuid4().hex[:6]}"
    session_topic, campaign_topic = await _topic(kafka), await _topic(kafka)
    made = sessions(a, b)
    await produce_envelopes(kafka.bootstrap_servers, session_topic, [e for s in made for e in s.envelopes])
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        for env in campaign(a, made[0].id):
            await producer.send_and_wait(campaign_topic, env.value(), key=env.campaign_id.encode(),
                                         headers=env.headers())
    finally:
        await producer.stop()

    out = tmp_path / "export"
    for topic in (session_topic, campaign_topic):
        code, stdout, err = await cli(kafka, ZAPSTREAM, "events", "export", "--topic", topic, "--since",
                                      "2026-01-01", "--format", "parquet", "--out", str(out))
        assert code == 0, err
    assert "campaign.recipients.added__recipients: 4 rows" in stdout

    queries = doc_queries()
    db = duckdb.connect()
    db.execute(queries["setup"])

    def run(title: str) -> list[tuple[Any, ...]]:
        return db.sql(queries[title].replace("'export/", f"'{out}/")).fetchall()

    day1, day2 = DAY1.date(), DAY2.date()
    assert run("messages per day per tenant") == [(day1, a, 3, 2), (day1, b, 2, 1), (day2, a, 2, 1)]
    # From the request: a: 1500, 2500, 3500, 4500, 10500 ms; b: 1000 ms (b3 was never delivered).
    assert run("delivery latency percentiles") == [
        (a, 5, 3500.0, 8100.0, 10260.0, 10500), (b, 1, 1000.0, 1000.0, 1000.0, 1000)]
    assert run("campaign funnel") == [(a, "promo marzo", 4, 1, 3, 2, 2, 1, 1)]

    namespace: dict[str, Any] = {"print": lambda *_: None}
    exec(doc_polars().replace('"export/', f'"{out}/'), namespace)
    polars_rows = [tuple(r.values()) for r in namespace["per_day"].to_dicts()]
    assert polars_rows == run("messages per day per tenant")
