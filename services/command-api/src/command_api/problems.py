"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from zapstream_platform.http import JsonResponse

log = logging.getLogger(__name__)
ModelT = TypeVar("ModelT", bound=BaseModel)

TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 413: "Payload Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
    429: "Too Many Requests", 503: "Service Unavailable",
}


class Problem(Exception):
    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


def problem_response(status: int, detail: str, instance: str, **extra: Any) -> JsonResponse:
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status, "detail": detail,
            "instance": instance, **extra}
    return JsonResponse(body, status_code=status, media_type="application/problem+json")


def _clean(errors: list[Any]) -> list[dict[str, Any]]:
    # Echoing 'input' back could leak what the client sent into logs and proxies.
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors]


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JsonResponse:
        return problem_response(exc.status, exc.detail, request.url.path, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JsonResponse:
        return problem_response(422, "request failed validation", request.url.path, errors=_clean(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JsonResponse:
        return problem_response(exc.status_code, str(exc.detail), request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JsonResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(503, "temporarily unable to handle the request", request.url.path)


DEFAULT_MAX_BODY = 1024 * 1024


async def read_body(request: Request, max_bytes: int = DEFAULT_MAX_BODY) -> bytes:
    """The body, refusing (413) more than ``max_bytes`` before reading it all, chunked or not."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise Problem(413, f"body exceeds {max_bytes} bytes", limit=max_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise Problem(413, f"body exceeds {max_bytes} bytes", limit=max_bytes)
        chunks.append(chunk)
    raw = b"".join(chunks)
    request._body = raw  # so later readers (the Idempotency-Key fingerprint) see the same bytes
    return raw


async def parse_body(request: Request, model: type[ModelT], max_bytes: int = DEFAULT_MAX_BODY) -> ModelT:
    """The JSON body as ``model``; 4xx problems for anything else (never a 500, never echoing input)."""
    raw = await read_body(request, max_bytes)
    if b"\\u0000" in raw:  # PostgreSQL text cannot hold NUL; refuse it here rather than fail later
        raise Problem(422, "NUL characters are not allowed")
    try:
        data = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise Problem(422, "body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise Problem(422, "body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise Problem(422, "request failed validation", errors=errors) from exc
