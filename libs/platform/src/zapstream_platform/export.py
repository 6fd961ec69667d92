"""The analysts' export: one topic, read from offset 0, into one flat, typed table per event type.

``zapstream events export --topic zapstream.session.events --since 2026-01-01 --format parquet --out ./export``
(also ``python -m zapstream_platform export …``; see docs/events.md and docs/analytics.md).

Reads every partition from its start (or ``--since``) to the end it had when the export began
(read_committed, so aborted transactions never show), upcasts each payload to its type's current version
(:func:`zapstream_contracts.events.upcast`), and writes ``<out>/<type>.parquet`` (or ``.csv``).

Columns: the envelope (``type``, ``event_id``, ``occurred_on`` as a UTC timestamp, ``session_id`` or
``campaign_id``, ``tenant_id``, the record's ``partition``/``offset``, ``sequence`` and ``schema_version``
from the headers), then the payload flattened with ``.`` (``payload.phone``). Each column has one type
across the whole file: booleans, 64-bit integers, floats, RFC 3339 strings as UTC timestamps, text; a
column whose values disagree is written as text. Lists stay as JSON text in their column, and a list of
objects (the messages of an upsert, the updates of a receipt batch, a campaign's recipients) is also
written as its own table, ``<type>__<field>``, one row per item, keyed by the event's ``event_id``.

Memory stays flat whatever the topic's size: rows are spooled to one JSON-lines file per table while the
column types are worked out, then written in batches (``ParquetWriter``/``CSVWriter``), so one table's
columns have their final type from the first batch on.

With ``--reveal`` (needs the PostgreSQL key table), encrypted personal data is decrypted, and shows
``[erased]`` for erased subjects; without it, it stays as the ``zsenc:`` ciphertext.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from zapstream_contracts.envelope import schema_version_of
from zapstream_contracts.events import upcast

from .settings import KafkaSettings
from .topics import partitions_of

Row = dict[str, Any]
Reveal = Callable[[Any], Awaitable[Any]]
Progress = Callable[[int, int], None]

CHILD_SEPARATOR = "__"
"""``session.messages.upsert__messages``: the table of one event type's list of objects."""

_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)$")
_INT64 = 2**63
# Envelope columns whose type is known whatever the values (a topic of nothing but nulls still types them).
_FIXED = {"occurred_on": "timestamp", "partition": "int", "offset": "int", "sequence": "int",
          "schema_version": "int", "item": "int"}


class TopicNotFoundError(LookupError):
    pass


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


def rows_of(value: bytes, headers: dict[str, str], partition: int, offset: int) -> Iterator[tuple[str, Row]]:
    """One record as ``(table, row)``: its event row, then one row per item of each list of objects."""
    body = orjson.loads(value)
    if isinstance(body.get("payload"), dict):
        body["payload"] = upcast(str(body.get("type")), schema_version_of(headers.get("ce_dataschema")),
                                 body["payload"])
    key: Row = {
        "type": body.get("type"),
        "event_id": body.get("eventId") or body.get("commandId"),
        "occurred_on": _timestamp(body.get("occurredOn") or body.get("issuedAt")),
        "session_id": body.get("sessionId"),
    }
    if "campaignId" in body:  # campaign topics: the aggregate is a campaign
        key["campaign_id"] = body["campaignId"]
    key["tenant_id"] = body.get("tenantId") or headers.get("ce_tenantid")
    row: Row = key | {
        "partition": partition,
        "offset": offset,
        "sequence": int(headers["ce_sequence"]) if headers.get("ce_sequence", "").isdigit() else None,
        "schema_version": schema_version_of(headers.get("ce_dataschema")),
    }
    payload = body.get("payload")
    if isinstance(payload, dict):
        flatten(payload, "payload", row)
        if key["tenant_id"] is None and isinstance(payload.get("tenantId"), str):
            row["tenant_id"] = key["tenant_id"] = payload["tenantId"]
    else:  # commands: the fields sit at the top level
        skip = ("type", "commandId", "sessionId", "campaignId", "tenantId", "issuedAt")
        payload = {k: v for k, v in body.items() if k not in skip}
        flatten(payload, "", row)
    table = str(row["type"])
    yield table, row
    for field, items in payload.items():
        if isinstance(items, list) and items and all(isinstance(i, dict) for i in items):
            for n, item in enumerate(items):
                child = key | {"item": n}
                flatten(item, field, child)
                yield f"{table}{CHILD_SEPARATOR}{field}", child


def row_of(value: bytes, headers: dict[str, str], partition: int, offset: int) -> Row:
    """One record as its flat event row (the payload upcast to its type's current version)."""
    return next(rows_of(value, headers, partition, offset))[1]


# --- column types --------------------------------------------------------------------------------------


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -_INT64 <= value < _INT64 else "string"
    if isinstance(value, float):
        return "float"
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.match(value)):
        return "timestamp"
    return "string"


def merge_kinds(a: str, b: str) -> str:
    """The type that holds values of both: null gives way, ints widen to floats, any other mix is text."""
    if a == b or b == "null":
        return a
    if a == "null":
        return b
    if {a, b} == {"int", "float"}:
        return "float"
    return "string"


def _arrow_type(kind: str) -> Any:
    import pyarrow as pa  # the export extra; imported here so services never load Arrow

    return {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(),
            "timestamp": pa.timestamp("us", tz="UTC")}.get(kind, pa.string())  # all-null columns: text


def _convert(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "timestamp":
        return value if isinstance(value, datetime) else _timestamp(value)
    if kind == "float":
        return float(value)
    if kind in ("string", "null"):
        return value if isinstance(value, str) else orjson.dumps(value).decode()
    return value


@dataclass
class Written:
    rows: int
    path: Path


class Spool:
    """Rows spooled to disk per table while each column's type is worked out; then written in batches."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.kinds: dict[str, dict[str, str]] = {}
        self.counts: dict[str, int] = defaultdict(int)
        self._files: dict[str, IO[bytes]] = {}

    def add(self, table: str, row: Row) -> None:
        file = self._files.get(table)
        if file is None:
            file = self._files[table] = (self.directory / f"{len(self._files)}.jsonl").open("wb")
        kinds = self.kinds.setdefault(table, {})
        for name, value in row.items():
            kinds[name] = _FIXED.get(name) or merge_kinds(kinds.get(name, "null"), kind_of(value))
        file.write(orjson.dumps(row) + b"\n")
        self.counts[table] += 1

    def write(self, out: Path, fmt: str, batch_rows: int = 10_000) -> dict[str, Written]:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        out.mkdir(parents=True, exist_ok=True)
        written: dict[str, Written] = {}
        for table in sorted(self._files):
            spool = self._files[table]
            spool.close()
            kinds = self.kinds[table]
            schema = pa.schema([(name, _arrow_type(kind)) for name, kind in kinds.items()])
            path = out / f"{table}.{fmt}"
            writer: Any = pq.ParquetWriter(path, schema) if fmt == "parquet" else pacsv.CSVWriter(path, schema)
            try:
                with Path(spool.name).open("rb") as lines:
                    for batch in _batches(lines, batch_rows):
                        columns = [pa.array([_convert(kind, row.get(name)) for row in batch], type=schema.field(name).type)
                                   for name, kind in kinds.items()]
                        writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            finally:
                writer.close()
            written[table] = Written(self.counts[table], path)
        return written

    def close(self) -> None:
        for file in self._files.values():
            file.close()


def _batches(lines: Iterable[bytes], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for line in lines:
        batch.append(orjson.loads(line))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_tables(rows_by_table: dict[str, list[Row]], out: Path, fmt: str) -> dict[str, Path]:
    """Rows already in memory (e.g. from :func:`read_rows`), one file per table."""
    with tempfile.TemporaryDirectory(prefix=".spool-", dir=_parent_of(out)) as tmp:
        spool = Spool(Path(tmp))
        try:
            for table, rows in rows_by_table.items():
                for row in rows:
                    spool.add(table, row)
            return {table: w.path for table, w in spool.write(out, fmt).items()}
        finally:
            spool.close()


def _parent_of(out: Path) -> Path:
    """The spool goes next to the output: same disk, and nothing left in it if the export fails."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent


# --- reading -------------------------------------------------------------------------------------------


async def read_records(kafka: KafkaSettings, topic: str, reveal: Reveal | None = None,
                       progress: Progress | None = None,
                       since: datetime | None = None) -> AsyncIterator[tuple[str, Row]]:
    """Every committed record of ``topic`` up to its end at the start, as ``(table, row)`` pairs.

    ``since``: start at the first record whose Kafka timestamp is at or after it, instead of offset 0.
    """
    partitions = await partitions_of(kafka, topic)
    if not partitions:
        raise TopicNotFoundError(f"topic {topic!r} does not exist")
    tps = [TopicPartition(topic, p) for p in partitions]
    consumer = AIOKafkaConsumer(**kafka.client_options(), isolation_level="read_committed",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        if since is not None:
            found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
            for tp in tps:
                consumer.seek(tp, found[tp].offset if found.get(tp) is not None else ends[tp])
        starts = {tp: await consumer.position(tp) for tp in tps}
        total = sum(ends[tp] - starts[tp] for tp in tps)
        if progress is not None:
            progress(0, total)
        before = 0  # the records of the partitions already read
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
                    for pair in rows_of(value, headers, record.partition, record.offset):
                        yield pair
                if progress is not None:
                    progress(before + min(await consumer.position(tp), ends[tp]) - starts[tp], total)
            before += ends[tp] - starts[tp]
    finally:
        await consumer.stop()


async def read_rows(kafka: KafkaSettings, topic: str, reveal: Reveal | None = None,
                    progress: Progress | None = None,
                    since: datetime | None = None) -> dict[str, list[Row]]:
    """The whole topic in memory, rows grouped by table (small topics and tests; the CLI streams)."""
    rows: dict[str, list[Row]] = defaultdict(list)
    async for table, row in read_records(kafka, topic, reveal, progress, since):
        rows[table].append(row)
    return dict(rows)


async def export_topic(kafka: KafkaSettings, topic: str, out: Path, fmt: str, reveal: Reveal | None = None,
                       progress: Progress | None = None, since: datetime | None = None,
                       batch_rows: int = 10_000) -> dict[str, Written]:
    """``topic`` into ``out``: one ``<table>.<fmt>`` per event type (and list of objects), streamed."""
    tmp = Path(tempfile.mkdtemp(prefix=".spool-", dir=_parent_of(out)))
    spool = Spool(tmp)
    try:
        async for table, row in read_records(kafka, topic, reveal, progress, since):
            spool.add(table, row)
        return spool.write(out, fmt, batch_rows)
    finally:
        spool.close()
        shutil.rmtree(tmp, ignore_errors=True)


def print_progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // total if total else width
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} records")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()
