"""The export's tables without Kafka: rows of a record, one type per column, batches, and the CLI's arguments."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from zapstream_contracts.envelope import dataschema
from zapstream_platform import cli, export


def record(type_: str, payload: dict[str, object], version: int = 1) -> tuple[bytes, dict[str, str]]:
    body = {"type": type_, "sessionId": "s1", "eventId": f"e-{type_}", "occurredOn": "2026-01-01T00:00:00.000Z",
            "payload": payload}
    return orjson.dumps(body), {"ce_dataschema": dataschema(type_, version), "ce_sequence": "7"}


def test_a_record_is_its_event_row_and_a_row_per_item_of_each_list_of_objects() -> None:
    value, headers = record("session.messages.update", {"tenantId": "t1", "updatesCount": 2, "updates": [
        {"messageId": "m1", "status": "delivered", "statusAt": 1}, {"messageId": "m2", "status": "read", "statusAt": 2}],
        "tags": ["a", "b"]})
    rows = list(export.rows_of(value, headers, partition=3, offset=40))
    assert [t for t, _ in rows] == ["session.messages.update"] + ["session.messages.update__updates"] * 2
    event = rows[0][1]
    assert event["tenant_id"] == "t1" and event["sequence"] == 7 and event["offset"] == 40
    assert event["occurred_on"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert orjson.loads(event["payload.updates"])[1]["messageId"] == "m2"  # the list kept whole as JSON too
    assert event["payload.tags"] == '["a","b"]'  # a list of strings is no table
    item = rows[2][1]
    assert item == {"type": "session.messages.update", "event_id": "e-session.messages.update",
                    "occurred_on": event["occurred_on"], "session_id": "s1", "tenant_id": "t1", "item": 1,
                    "updates.messageId": "m2", "updates.status": "read", "updates.statusAt": 2}


def test_rows_are_upcast_through_the_contract() -> None:
    value, headers = record("session.messages.delete", {"tenantId": "t1", "chatJid": "x", "deletedAt": 1767225600},
                            version=1)
    row = export.row_of(value, headers, 0, 0)
    assert row["payload.deletedAt"] == "2026-01-01T00:00:00.000Z" and row["schema_version"] == 1


@pytest.mark.parametrize(("values", "kind"), [
    ([None, True, False], "bool"),
    ([1, None, 2], "int"),
    ([1, 2.5], "float"),
    (["2026-01-01T00:00:00.000Z", "2026-01-02T10:00:00+02:00", None], "timestamp"),
    (["2026-01-01T00:00:00.000Z", "not a time"], "string"),
    ([1, "one"], "string"),
    ([True, 1], "string"),  # a bool is no int
    ([2**70], "string"),  # beyond int64
    ([None, None], "null"),
])
def test_one_type_per_column(values: list[object], kind: str) -> None:
    merged = "null"
    for v in values:
        merged = export.merge_kinds(merged, export.kind_of(v))
    assert merged == kind


def test_the_spool_writes_typed_columns_in_batches(tmp_path: Path) -> None:
    spool = export.Spool(tmp_path)
    rows = [{"n": i, "flag": i % 2 == 0, "at": f"2026-01-0{i + 1}T00:00:00.000Z", "mixed": i if i < 3 else "x",
             "later": None if i < 4 else 1.5, "never": None} for i in range(5)]
    for row in rows:
        spool.add("t", row)
    spool.add("t", {"n": 5, "occurred_on": None, "extra": "only here"})  # a column seen only at the end
    written = spool.write(tmp_path / "out", "parquet", batch_rows=2)
    table = pq.read_table(written["t"].path)
    assert written["t"].rows == 6 and table.num_rows == 6
    assert pq.ParquetFile(written["t"].path).num_row_groups == 3
    types = {f.name: str(f.type) for f in table.schema}
    assert types == {"n": "int64", "flag": "bool", "at": "timestamp[us, tz=UTC]", "mixed": "string",
                     "later": "double", "never": "string", "occurred_on": "timestamp[us, tz=UTC]", "extra": "string"}
    assert table.column("mixed").to_pylist() == ["0", "1", "2", "x", "x", None]
    assert table.column("at").to_pylist()[1] == datetime(2026, 1, 2, tzinfo=UTC)
    assert table.column("extra").to_pylist() == [None] * 5 + ["only here"]

    csv = export.write_tables({"t": rows}, tmp_path / "csv", "csv")
    assert pacsv.read_csv(csv["t"]).num_rows == 5


def test_since_takes_a_date_or_an_rfc3339_time() -> None:
    assert cli.utc_time("2026-01-01") == datetime(2026, 1, 1, tzinfo=UTC)
    assert cli.utc_time("2026-01-01T12:00:00Z") == datetime(2026, 1, 1, 12, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError):
        cli.utc_time("yesterday")
