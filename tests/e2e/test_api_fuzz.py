"""Schema-driven fuzzing (schemathesis) of every route of the OpenAPI document, with a valid API key.

Every answer must be a non-5xx status the document declares for that route, with the declared
content type, headers and schema. Few examples per route keep the run short.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Stack
from zapstream_platform import apikeys

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = schemathesis.openapi.from_dict(orjson.loads((ROOT / "schemas" / "openapi.json").read_bytes()))
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@pytest.fixture(scope="session")
async def fuzz_key(pg: Any) -> str:
    return await apikeys.create_key(pg, "t-fuzz", "fuzz")


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_route_conforms_to_its_openapi_document(label: str, stack: Stack, fuzz_key: str) -> None:
    operation = OPERATIONS[label]

    @given(case=operation.as_strategy())
    @settings(max_examples=6, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case: Any) -> None:
        case.call_and_validate(base_url=stack.api_url, headers={"Authorization": f"Bearer {fuzz_key}"},
                               checks=CHECKS, timeout=30)

    fuzz()
