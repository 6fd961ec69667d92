"""The FastAPI app: every slice's router, included when the app is built.

Built without touching Kafka or PostgreSQL, so ``/openapi.json`` (and ``make schemas``) work
with nothing running. The services the handlers use are put on ``app.state.services`` by the
composition root (:mod:`command_api.bootstrap`) when the app starts, or by tests with fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from opentelemetry.trace import TracerProvider
from starlette.responses import Response

from command_api.address_book.router import router as address_book_router
from command_api.agents.router import router as agents_router
from command_api.agents.service import AgentsService
from command_api.calls.router import router as calls_router
from command_api.calls.service import CallsService
from command_api.campaigns.router import router as campaigns_router
from command_api.chats.router import router as chats_router
from command_api.chats.service import ChatsService
from command_api.dashboard.router import router as dashboard_router
from command_api.dead_letters.router import router as dead_letters_router
from command_api.dead_letters.service import DeadLettersService
from command_api.groups.router import router as groups_router
from command_api.groups.service import GroupsService
from command_api.identity.router import router as identity_router
from command_api.identity.service import IdentityService
from command_api.keys.router import router as keys_router
from command_api.keys.service import KeysService
from command_api.media.router import router as media_router
from command_api.media.service import MediaLibrary
from command_api.messages.router import router as messages_router
from command_api.messages.service import MessagesService
from command_api.photos.router import router as photos_router
from command_api.photos.service import PhotosService
from command_api.seed003.realtime import Realtime
from command_api.seed003.router import public as seed003_public
from command_api.seed003.router import router as seed003_router
from command_api.seed003.service import Seed003Service
from command_api.sessions.router import router as sessions_router
from command_api.sessions.service import SessionsService
from command_api.settings import Settings
from command_api.shared import problems
from command_api.shared.access import Access
from command_api.shared.commands import Commands
from command_api.shared.limits import BodyLimit
from command_api.shared.problems import MEANINGS, PROBLEM_JSON, routes_of
from command_api.shared.responses import ApiJson
from command_api.shared.security import SECURITY, SECURITY_SCHEMES, Authenticator, current_principal
from command_api.shared.wsproxy import router as ws_router
from command_api.suppressions.router import router as suppressions_router
from command_api.webhooks.router import router as webhooks_router
from zapstream_platform.metrics import HttpMetricsMiddleware, Metrics, exposition

VERSION = "0.2.0"
DESCRIPTION = """\
Multi-tenant WhatsApp sessions over HTTP. Commands answer `202` once they are durably on Kafka;
follow them with `GET /commands/{commandId}` or on the WebSocket `/ws/sessions?accessToken=…`
(also served on this address: `session.snapshot`, then the tenant's events).

Authenticate with `Authorization: Bearer <access token or API key>` or `X-Api-Key`. Errors are
`application/problem+json` (RFC 9457). Command routes accept `Idempotency-Key`.
"""


@dataclass
class Services:
    """What the handlers use, built by the composition root (or fakes in tests)."""

    auth: Authenticator
    access: Access
    commands: Commands  # for slices that publish commands (campaigns, …)
    sessions: SessionsService
    messages: MessagesService
    chats: ChatsService
    media: MediaLibrary
    identity: IdentityService
    keys: KeysService
    agents: AgentsService
    dead_letters: DeadLettersService
    seed003: Seed003Service
    groups: GroupsService
    calls: CallsService
    photos: PhotosService


health = APIRouter()


@health.get("/healthz", include_in_schema=False)
async def healthz() -> ApiJson:
    return ApiJson({"status": "ok"})


def body_limits(settings: Settings) -> Callable[[str], int | None]:
    media_body = settings.media.base64_body_max_bytes

    def limit_for(path: str) -> int | None:
        if path == "/media":
            return None  # streamed to storage with the kind's own limits
        if path.endswith("/messages") or path == "/api/send-pdf":
            return media_body  # may carry base64 media
        return settings.max_body_bytes

    return limit_for


def metrics_router(metrics: Metrics) -> APIRouter:
    """``GET /metrics``: Prometheus' exposition of this process's registry (unauthenticated, like every
    scrape target; bind the API's port privately or filter ``/metrics`` at the load balancer)."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def scrape() -> Response:
        body, content_type = exposition(metrics)
        return Response(body, media_type=content_type)

    return router


def build_app(settings: Settings,
              lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
              metrics: Metrics | None = None, tracer_provider: TracerProvider | None = None) -> FastAPI:
    """``tracer_provider`` (from the composition root when tracing is on) gets a SERVER span per request,
    continuing the caller's ``traceparent``; commands published inside it carry it on (shared/bus.py)."""
    metrics = metrics or Metrics("command-api")
    tracing = tracer_provider is not None or settings.otel
    app = FastAPIOffline(title="zapstream command API", version=VERSION, description=DESCRIPTION,
                         default_response_class=ApiJson, lifespan=lifespan,
                         telemetry={"tracing": tracing, "tracer_provider": tracer_provider,
                                    "metrics": settings.otel, "logs": settings.otel, "operation_spans": False,
                                    "exclude": _unobserved})
    problems.install(app)
    app.add_middleware(BodyLimit, limit_for=body_limits(settings))
    app.add_middleware(
        CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=True,
        allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Api-Key", "traceparent"],
        expose_headers=["Retry-After", "Idempotent-Replayed", "Location", "RateLimit", "RateLimit-Policy"],
    )
    # Outermost: every answer is counted, including the 413s and CORS preflights of the layers inside.
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    app.state.ws_gateway_url = settings.ws_gateway_url
    # One line per slice; slices added later (campaigns, address book, webhooks) add theirs here.
    app.include_router(health)
    app.include_router(metrics_router(metrics))
    app.include_router(sessions_router)
    app.include_router(messages_router)
    app.include_router(chats_router)
    app.include_router(media_router)
    app.include_router(identity_router)
    app.include_router(keys_router)
    app.include_router(agents_router)
    app.include_router(dead_letters_router)
    app.include_router(webhooks_router)
    app.include_router(address_book_router)
    app.include_router(campaigns_router)
    app.include_router(suppressions_router)
    app.include_router(dashboard_router)
    app.include_router(ws_router)
    app.include_router(groups_router)
    app.include_router(calls_router)
    app.include_router(photos_router)
    app.include_router(seed003_public)
    app.include_router(seed003_router)
    # Seed 003's Socket.IO (qr, session_status) at the API origin's /socket.io/ (before the console's catch-all).
    app.mount("/socket.io", Realtime(settings.ws_gateway_url, settings.cors_origins).asgi())
    mount_console(app, settings.console_dir)
    install_openapi(app)
    return app


def _unobserved(scope: Any) -> bool:
    """No spans for scrapes and probes: they would be most of the traces and say nothing."""
    return scope.get("path") in ("/metrics", "/healthz")


# The web console (console/, a Vite + React SPA built into console/dist by `npm run build`), served from this
# origin so the browser needs no CORS and the refresh cookie (path /auth, SameSite=Strict) just works. Only
# fixed prefixes that no API route uses (/console, and the account pages the API's mails link to); never a
# catch-all, so an API path can never be shadowed. Hidden from the OpenAPI document: it is not API.
CONSOLE_PAGES = ("/login", "/register", "/verify", "/reset-password")


def mount_console(app: FastAPI, dist: Path) -> None:
    index = dist / "index.html"

    async def page() -> FileResponse | HTMLResponse:
        if not index.is_file():  # read per request: building the console needs no API restart
            return HTMLResponse("<p>The console is not built: <code>cd console && npm ci && npm run build</code>"
                                "</p>", status_code=503)
        # The SPA's router picks the page (SPA fallback); hashed assets can be cached, index.html not.
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    # StaticFiles resolves paths inside the directory only (no traversal); check_dir=False: built later.
    app.mount("/console/assets", StaticFiles(directory=dist / "assets", check_dir=False), name="console-assets")
    for path in ("/console", "/console/{rest:path}", *CONSOLE_PAGES):
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False, response_model=None)


def _calls(dependant: Any) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def authenticated_operations(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route that depends on the caller's principal."""
    out = set()
    for route in routes_of(app.router.routes):
        dependant = getattr(route, "dependant", None)
        if dependant is not None and current_principal in set(_calls(dependant)):
            out |= {(method.lower(), route.path) for method in route.methods}
    return out


def install_openapi(app: FastAPI) -> None:
    """Security requirements on every route that authenticates the caller; error answers documented as
    ``application/problem+json`` only (FastAPI would add ``application/json``)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = plain()
            doc.setdefault("components", {}).setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
            protected = authenticated_operations(app)
            for path, item in doc.get("paths", {}).items():
                for method, operation in item.items():
                    if (method, path) in protected:
                        operation["security"] = SECURITY
                    answers = operation.get("responses", {})
                    if "requestBody" in operation and "413" not in answers and "422" in answers:
                        # Every body passes the size guard (shared/limits.py) before its route.
                        answers["413"] = {"description": MEANINGS[413], "content": answers["422"]["content"]}
                    for answer in operation.get("responses", {}).values():
                        content = answer.get("content", {})
                        if PROBLEM_JSON in content and "application/json" in content:
                            content[PROBLEM_JSON] = content.pop("application/json")
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


