"""The API's JSON response class: rendered by orjson (the project's only JSON codec).

A :class:`~starlette.responses.JSONResponse` subclass, so FastAPI documents each route's
``response_model`` as the schema of its answer.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class ApiJson(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
