"""schemas/ is generated from code; this fails when someone forgot ``make schemas``."""

from __future__ import annotations

from pathlib import Path

from zapstream_platform.schemagen import stale

ROOT = Path(__file__).resolve().parents[2] / "schemas"


def test_checked_in_schemas_match_the_code() -> None:
    assert stale(ROOT) == [], "schemas/ is stale: run `make schemas` and commit the result"
