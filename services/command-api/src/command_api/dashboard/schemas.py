"""Response models of seed 004's dashboards."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Totals(Model):
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0


class Summary(Model):
    range_start: str
    range_end: str
    timezone: str
    totals: Totals
    campaigns: int
    delivery_rate: float  # delivered-or-read / sent
    read_rate: float


class Point(Model):
    period: str  # local start of the period (ISO, tenant's time zone)
    totals: Totals


class Timeline(Model):
    interval: str
    timezone: str
    points: list[Point]


class Slice(Model):
    key: str
    totals: Totals


class Breakdown(Model):
    timezone: str
    items: list[Slice]
