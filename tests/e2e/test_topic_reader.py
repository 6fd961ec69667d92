"""A plain reader given only schemas/: every record of every topic, from offset 0, is valid (value and headers).

Records are produced through the real services (HTTP → command API → Kafka → runner → simulator; the
identity outbox relay; a poison command for the dead-letter topic), then each topic of this run is read
whole (read_committed) and checked against schemas/asyncapi.json and the JSON Schema its
``ce_dataschema`` header names. Run after the rest of the e2e suite it checks their records too.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from tests.conftest import Stack, Tenant
from tests.e2e.conftest import link_session, new_phone
from tests.support.clients import FORGED_SOURCE, WsCollector, eventually
from zapstream_contracts import commands as c
from zapstream_contracts.envelope import command_headers
from zapstream_platform.settings import KafkaSettings
from zapstream_platform.topics import read_all

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
BASE = "https://zapstream.dev/schemas/"


def _load(rel: str) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads((SCHEMAS / rel).read_bytes())
    return loaded


def _validate(schema: dict[str, Any], value: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    return [f"{list(e.absolute_path)}: {e.message[:160]}" for e in validator.iter_errors(value)]


class Reader:
    """What an analytics team would write: channels and header schemas from asyncapi.json, values by ce_dataschema."""

    def __init__(self, prefix: str) -> None:
        self.doc = _load("asyncapi.json")
        default_prefix = KafkaSettings().topic_prefix
        self.channels: dict[str, dict[str, Any]] = {}
        for channel in self.doc["channels"].values():
            suffix = channel["address"].removeprefix(default_prefix)
            self.channels[prefix + suffix] = channel
        self.problems: list[str] = []
        self.count: dict[str, int] = defaultdict(int)
        self.sequences: dict[str, list[int]] = defaultdict(list)
        self.forged: set[str] = set()

    def message(self, channel: dict[str, Any]) -> dict[str, Any]:
        ref = next(iter(channel["messages"].values()))["$ref"]
        message: dict[str, Any] = self.doc["components"]["messages"][ref.rsplit("/", 1)[1]]
        return message

    def header_schema(self, channel: dict[str, Any]) -> dict[str, Any] | None:
        ref = self.message(channel).get("headers", {}).get("$ref")
        return self.doc["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else None

    def check(self, topic: str, record: Any) -> None:
        where = f"{topic}@{record.partition}:{record.offset}"
        channel = self.channels.get(topic)
        if channel is None:
            self.problems.append(f"{where}: topic not described in asyncapi.json")
            return
        headers = {k: v.decode() for k, v in record.headers or ()}
        if headers.get("ce_source") == FORGED_SOURCE:
            # Corruption a test wrote on purpose (a poison event for the projector): not a producer's record.
            self.forged.add(orjson.loads(record.value).get("sessionId", ""))
            return
        self.count[topic] += 1
        if record.key is None:
            self.problems.append(f"{where}: no key")
        hschema = self.header_schema(channel)
        if hschema is not None:
            self.problems += [f"{where} headers {p}" for p in _validate(hschema, headers)]
        value = orjson.loads(record.value)
        if channel["address"].endswith(".snapshots"):
            name = "Checkpoint" if record.key == b"__checkpoint__" else "SessionSnapshot"
            schema = self.doc["components"]["schemas"][name]
            self.problems += [f"{where} value {p}" for p in _validate(schema, value)]
            return
        if channel["address"].endswith(".dlq"):
            return  # the value is the original record's, byte for byte: it may be why it failed
        uri = headers.get("ce_dataschema", "")
        if not uri.startswith(BASE) or not (SCHEMAS / uri.removeprefix(BASE)).exists():
            self.problems.append(f"{where}: ce_dataschema {uri!r} names no file in schemas/")
            return
        if value.get("type") != headers.get("ce_type"):
            self.problems.append(f"{where}: value type {value.get('type')!r} != ce_type {headers.get('ce_type')!r}")
        self.problems += [f"{where} value {p}" for p in _validate(_load(uri.removeprefix(BASE)), value)]
        if channel["address"].endswith(".session.events") and "ce_sequence" in headers:
            self.sequences[value["sessionId"]].append(int(headers["ce_sequence"]))


async def _run_topics(kafka: KafkaSettings) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if t.startswith(f"{kafka.topic_prefix}."))
    finally:
        await admin.close()


async def test_every_record_of_every_topic_is_valid(stack: Stack, tenant: Tenant, kafka: KafkaSettings,
                                                    ws_url) -> None:  # type: ignore[no-untyped-def]
    # Identity events: a sign-up (tenant.created, user.registered, user.verification_requested).
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=10) as api:
        email = f"reader-{uuid.uuid4().hex[:8]}@example.com"
        r = await api.post("/users", json={"name": "Reader", "email": email, "password": "correct horse battery"},
                           headers={"X-Forwarded-For": f"10.9.{uuid.uuid4().int % 250}.1"})
        assert r.status_code == 202, r.text

    # Session commands and events: link, send, stop.
    async with WsCollector(ws_url(tenant)) as ws:
        sid, _ = await link_session(stack, tenant, ws)
        r = await tenant.http.post(f"/sessions/{sid}/messages", json={"to": new_phone(), "content": "hola"})
        assert r.status_code == 202, r.text
        command_id = r.json()["commandId"]
        await ws.wait_for(lambda e: e["type"] == "session.command.succeeded"
                          and e["payload"]["commandId"] == command_id)
        r = await tenant.http.post(f"/sessions/{sid}/stop")
        assert r.status_code == 202, r.text
        await ws.wait_for(lambda e: e["type"] == "session.status.disconnected" and e["sessionId"] == sid)

    # A dead letter: a command that is valid on the wire (headers and schema) but that no decision can take
    # (its sessionId is not a UUID), as a buggy producer could write; the runner moves it aside after retries.
    poison = c.CreateSession(command_id=str(uuid.uuid4()), session_id="not-a-uuid", tenant_id=tenant.id,
                             issued_at="2026-01-01T00:00:00.000Z")
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(f"{kafka.topic_prefix}.session.commands", poison.model_dump_json(
            by_alias=True).encode(), key=sid.encode(), headers=command_headers(poison, "/tests/reader"))
    finally:
        await producer.stop()

    async def all_topics_have_records() -> list[str] | None:
        names = await _run_topics(kafka)
        wanted = {f"{kafka.topic_prefix}.{t}" for t in ("identity.events", "session.commands.dlq")}
        if not wanted <= set(names):
            return None
        for t in wanted:
            if not await read_all(kafka.bootstrap_servers, t):
                return None
        return names

    names = await eventually(all_topics_have_records, timeout=60, interval=1)
    reader = Reader(kafka.topic_prefix)
    for topic in names:
        for record in await read_all(kafka.bootstrap_servers, topic):
            reader.check(topic, record)

    assert reader.problems == [], "\n".join(reader.problems[:40])
    # session.secrets: the QR codes of the linking above (whole copies of their redacted events).
    for suffix in ("session.commands", "session.events", "session.commands.dlq", "identity.events",
                   "session.secrets"):
        assert reader.count[f"{kafka.topic_prefix}.{suffix}"] > 0, suffix
    # Per session, the aggregate versions are 1, 2, 3, … (orphan failures carry 0 and belong to no stream).
    for session_id, seqs in reader.sequences.items():
        if session_id in reader.forged:
            continue
        stream = sorted(s for s in seqs if s > 0)
        assert stream == list(range(1, len(stream) + 1)), session_id
