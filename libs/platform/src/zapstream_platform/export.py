"""The analysts' export: one topic, read from offset 0, into one flat table per event type.

``python -m zapstream_platform export --topic zapstream.session.events --out ./export [--format parquet|csv]
[--since 2026-01-01T00:00:00Z] [--reveal]``

Reads every partition from its start to the end it had when the export began (read_committed, so
aborted transactions never show), upcasts session events to their current version, and writes
``<out>/<type>.parquet`` (or ``.csv``). Columns: the envelope (``type``, ``event_id``, ``occurred_on`` as
a UTC timestamp, ``session_id`` or ``tenant_id``, the record's ``partition``/``offset``, ``sequence`` and
``schema_version`` from the headers), then the payload flattened with ``.`` (``payload.phone``); lists
(e.g. the messages of an upsert) are kept as JSON text, ready for DuckDB's ``json`` functions.
With ``--reveal`` (needs the PostgreSQL key table), encrypted personal data is decrypted, and shows
``[erased]`` for erased subjects; without it, it stays as the ``zsenc:`` ciphertext.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from zapstream_contracts.envelope import schema_version_of
from zapstream_contracts.events import upcast

from .settings import KafkaSettings
from .topics import partitions_of

Row = dict[str, Any]
Reveal = Callable[[Any], Awaitable[Any]]


def flatten(value: Any, prefix: str, out: Row) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(v, f"{prefix}.{k}" if prefix else k, out)
    elif isinstance(value, list):
        out[prefix] = orjson.dumps(value).decode()
    else:
        out[prefix] = value


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def row_of(value: bytes, headers: dict[str, str], partition: int, offset: int) -> Row:
    """One record as a flat row (the payload upcast to its type's current version)."""
    body = orjson.loads(value)
    if isinstance(body.get("payload"), dict):
        body["payload"] = upcast(str(body.get("type")), schema_version_of(headers.get("ce_dataschema")),
                                 body["payload"])
    row: Row = {
        "type": body.get("type"),
        "event_id": body.get("eventId") or body.get("commandId"),
        "occurred_on": _timestamp(body.get("occurredOn") or body.get("issuedAt")),
        "session_id": body.get("sessionId"),
        "tenant_id": body.get("tenantId") or headers.get("ce_tenantid"),
        "partition": partition,
        "offset": offset,
        "sequence": int(headers["ce_sequence"]) if headers.get("ce_sequence", "").isdigit() else None,
        "schema_version": schema_version_of(headers.get("ce_dataschema")),
    }
    if "campaignId" in body:  # campaign topics: the aggregate is a campaign
        row["campaign_id"] = body["campaignId"]
    payload = body.get("payload")
    if isinstance(payload, dict):
        flatten(payload, "payload", row)
    else:  # commands: the fields sit at the top level
        skip = ("type", "commandId", "sessionId", "campaignId", "tenantId", "issuedAt")
        rest = {k: v for k, v in body.items() if k not in skip}
        flatten(rest, "", row)
    return row


def write_tables(rows_by_type: dict[str, list[Row]], out: Path, fmt: str) -> dict[str, Path]:
    """One file per type; a column whose values do not share one Arrow type is written as text."""
    import pyarrow as pa  # the export extra; imported here so services never load Arrow
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for type_, rows in sorted(rows_by_type.items()):
        names: dict[str, None] = {}
        for row in rows:
            names.update(dict.fromkeys(row))
        columns = {}
        for name in names:
            values = [row.get(name) for row in rows]
            try:
                columns[name] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                columns[name] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
        table = pa.table(columns)
        path = out / f"{type_}.{fmt}"
        if fmt == "parquet":
            pq.write_table(table, path)
        else:
            pacsv.write_csv(table, path)
        written[type_] = path
    return written


async def read_rows(kafka: KafkaSettings, topic: str, reveal: Reveal | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    since: datetime | None = None) -> dict[str, list[Row]]:
    """Every committed record of ``topic`` up to its end at the start, as rows grouped by type.

    ``since``: start at the first record whose Kafka timestamp is at or after it, instead of offset 0.
    """
    tps = [TopicPartition(topic, p) for p in await partitions_of(kafka, topic)]
    consumer = AIOKafkaConsumer(**kafka.client_options(), isolation_level="read_committed",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    rows: dict[str, list[Row]] = defaultdict(list)
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        if since is not None:
            found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
            for tp in tps:
                consumer.seek(tp, found[tp].offset if found.get(tp) is not None else ends[tp])
        starts = {tp: await consumer.position(tp) for tp in tps}
        total, done = sum(ends[tp] - starts[tp] for tp in tps), 0
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
                for record in batch.get(tp, []):
                    if record.offset >= ends[tp]:
                        break
                    headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
                    value = record.value
                    if reveal is not None:
                        value = orjson.dumps(await reveal(orjson.loads(value)))
                    row = row_of(value, headers, record.partition, record.offset)
                    rows[str(row["type"])].append(row)
                done = await consumer.position(tp) - starts[tp] + sum(
                    ends[t] - starts[t] for t in tps[: tps.index(tp)])
                if progress is not None:
                    progress(done, total)
        return rows
    finally:
        await consumer.stop()


def print_progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // total if total else width
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} records")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()
