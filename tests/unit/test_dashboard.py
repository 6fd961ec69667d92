"""The Grafana dashboard loads: its JSON has the shape Grafana needs, and every query names a real metric."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from zapstream_platform.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "infra" / "observability" / "grafana" / "dashboards" / "zapstream.json"
PANEL_TYPES = {"row", "timeseries", "stat"}
METRIC = re.compile(r"\b(zapstream_[a-z_]+)\b")


def load() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(DASHBOARD.read_bytes())
    return data


def exported_series() -> set[str]:
    """Every series name the metrics module can expose (histograms add _bucket/_sum/_count)."""
    names: set[str] = set()
    for family in Metrics("schema-check").registry.collect():
        base = family.name
        names |= {base, f"{base}_total", f"{base}_bucket", f"{base}_sum", f"{base}_count", f"{base}_created"}
    return names


def test_dashboard_top_level_shape() -> None:
    d = load()
    for key, kind in [("uid", str), ("title", str), ("panels", list), ("schemaVersion", int), ("time", dict),
                      ("templating", dict)]:
        assert isinstance(d.get(key), kind), key
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", d["uid"])
    assert {v["name"] for v in d["templating"]["list"]} >= {"datasource"}


def test_panels_are_well_formed_and_do_not_overlap() -> None:
    panels = load()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for p in panels:
        assert p["type"] in PANEL_TYPES, p["type"]
        g = p["gridPos"]
        assert set(g) == {"h", "w", "x", "y"} and g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"panel {p['title']!r} overlaps another"
        cells |= mine
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}"
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]


def test_every_query_names_an_exported_metric() -> None:
    known = exported_series()
    used: set[str] = set()
    for p in load()["panels"]:
        for t in p.get("targets", []):
            assert t["expr"].count("(") == t["expr"].count(")"), t["expr"]
            names = set(METRIC.findall(t["expr"]))
            assert names, t["expr"]
            assert names <= known, f"{p['title']}: unknown {names - known}"
            used |= names
    # Throughput, latency, lag, errors and sessions are all on the dashboard.
    for needed in ("zapstream_http_requests_total", "zapstream_http_request_duration_seconds_bucket",
                   "zapstream_kafka_consumer_lag", "zapstream_runner_sessions",
                   "zapstream_webhook_deliveries_total"):
        assert needed in used, needed
