"""RFC 9457 problem details for every error the API returns, and their OpenAPI description."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from command_api.shared.responses import ApiJson as JsonResponse

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 413: "Payload Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
    429: "Too Many Requests", 503: "Service Unavailable",
}

# What each status means on this API, shown in the OpenAPI document next to the shared schema.
MEANINGS = {
    400: "Malformed request.",
    401: "Missing or invalid credentials.",
    403: "Authenticated, but not allowed to do this.",
    404: "Not found for this tenant (another tenant's ids look exactly like missing ones).",
    409: "Conflicts with the current state (or an Idempotency-Key whose first request is still running).",
    413: "Body larger than allowed.",
    415: "Unsupported media type.",
    422: "The request failed validation.",
    429: "Rate limited; see Retry-After and RateLimit.",
    503: "A dependency (Kafka, PostgreSQL, storage) is unavailable right now; retry.",
}


class ValidationItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ProblemDetail(BaseModel):
    """RFC 9457 problem details (``application/problem+json``); extension members may follow."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "type": "about:blank", "title": "Not Found", "status": 404, "detail": "session not found",
        "instance": "/sessions/4b1a9c08-6b70-4c1c-9d5b-2b7d8fd5b901"}]})

    type: str = Field(default="about:blank", description="A URI naming the problem type.")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str = Field(description="The request path.")
    errors: list[ValidationItem] | None = Field(default=None, description="Validation errors (422 only).")


RATE_LIMIT_HEADERS: dict[str, Any] = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
    "RateLimit": {"description": "Remaining quota (IETF draft-ietf-httpapi-ratelimit-headers).",
                  "schema": {"type": "string"}},
    "RateLimit-Policy": {"description": "The quota policy that applied.", "schema": {"type": "string"}},
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses, all with the shared problem+json schema."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ProblemDetail, "description": MEANINGS.get(status, TITLES.get(status, "")),
                                 "content": {PROBLEM_JSON: {}}}
        if status == 429:
            entry["headers"] = RATE_LIMIT_HEADERS
        out[status] = entry
    return out


# Every route can answer these: bad input, and a dependency that is down.
COMMON = (422, 503)
# Every authenticated route adds these.
AUTHED = (401, 429, *COMMON)


class Problem(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers
        self.extra = extra


def problem_response(status: int, detail: str, instance: str, headers: dict[str, str] | None = None,
                     **extra: Any) -> JsonResponse:
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status, "detail": detail,
            "instance": instance, **extra}
    return JsonResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def clean_errors(errors: list[Any]) -> list[dict[str, Any]]:
    # Echoing 'input' back could leak what the client sent into logs and proxies.
    return [{"loc": [str(x) if not isinstance(x, int) else x for x in e.get("loc", ())],
             "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors]


async def _problem(request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc.status, exc.detail, request.url.path, exc.headers, **exc.extra)


async def _invalid(request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(422, "request failed validation", request.url.path, errors=clean_errors(list(exc.errors())))


def routes_of(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI keeps included routers as nodes
            yield from routes_of(route.original_router.routes)
        elif hasattr(route, "path_regex"):
            yield route


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first matching route's)."""
    methods: set[str] = set()
    for route in routes_of(request.app.router.routes):
        if route.path_regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _http(request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
    return problem_response(exc.status_code, str(exc.detail), request.url.path, headers or None)


async def _unexpected(request: Request, exc: Exception) -> JsonResponse:
    log.exception("unhandled error on %s", request.url.path)
    return problem_response(503, "temporarily unable to handle the request", request.url.path)


def install(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
