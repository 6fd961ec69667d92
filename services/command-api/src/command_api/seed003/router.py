"""Seed 003's REST paths (mounted under ``/api`` as in the seed), thin aliases over our services.

Answers are seed 003's ``{success, message, data}``; errors stay ``application/problem+json`` with
``success: false`` and ``error`` (the detail) added, so its clients read them as they expect.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from command_api.agents.schemas import NewAgentBody
from command_api.identity.router import client_ip, set_cookie
from command_api.identity.schemas import LoginBody, RegisterBody
from command_api.seed003.schemas import (
    ChatMessageBody,
    ChatsAnswer,
    EmployeesAnswer,
    InitAnswer,
    LoginAnswer,
    LogoutAnswer,
    MediaAnswer,
    MessagesAnswer,
    PermissionAnswer,
    PermissionBody,
    PhotoAnswer,
    RegisterAnswer,
    SentAnswer,
    StationAnswer,
)
from command_api.seed003.service import Seed003Service
from command_api.shared.bodies import IDEMPOTENCY_HEADERS, JidPath, MessageIdPath, jid_or_422
from command_api.shared.idempotency import Idem, IdempotencyKey
from command_api.shared.problems import AUTHED, COMMON, Problem, clean_errors, responses
from command_api.shared.responses import ApiJson as JsonResponse
from command_api.shared.security import Admin, Who

TAG = "seed 003 compatibility"
Traceparent = Annotated[str | None, Header(include_in_schema=False)]


class Seed003Route(APIRoute):
    """Every error of these routes carries seed 003's ``success: false`` and ``error``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise Problem(422, "request failed validation", errors=clean_errors(list(exc.errors())),
                              success=False, error="request failed validation") from exc
            except Problem as exc:
                raise Problem(exc.status, exc.detail, exc.headers,
                              **({"success": False, "error": exc.detail} | exc.extra)) from exc

        return handle


public = APIRouter(prefix="/api", tags=[TAG], route_class=Seed003Route, responses=responses(*COMMON))
router = APIRouter(prefix="/api", tags=[TAG], route_class=Seed003Route, responses=responses(*AUTHED))


async def service(request: Request) -> Seed003Service:
    seed003: Seed003Service = request.app.state.services.seed003
    return seed003


Service = Annotated[Seed003Service, Depends(service)]


def answer(message: str, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JsonResponse:
    return JsonResponse({"success": True, "message": message, "data": data}, status_code=status, headers=headers)


def replayed(flag: bool) -> dict[str, str] | None:
    return {"Idempotent-Replayed": "true"} if flag else None


@public.post("/auth/register", status_code=202, response_model=RegisterAnswer, responses=responses(429))
async def register(request: Request, body: RegisterBody, svc: Service) -> JsonResponse:
    """Register an admin (a new tenant); the account is verified by the mailed code (`POST /users/{id}/verify`)."""
    return answer("check your e-mail", await svc.register(body, client_ip(request, svc.identity.auth)), 202)


@public.post("/auth/login", response_model=LoginAnswer, responses=responses(401, 403, 429))
async def login(request: Request, body: LoginBody, svc: Service) -> JsonResponse:
    """`data.accessToken` is the JWT for `Authorization: Bearer` and for Socket.IO's `auth.token`."""
    data, refresh = await svc.login(body, client_ip(request, svc.identity.auth))
    response = answer("logged in", data, headers={"Cache-Control": "no-store"})
    set_cookie(svc.identity.auth, response, refresh)
    return response


@router.post("/auth/create-station", status_code=202, response_model=StationAnswer, responses=responses(403))
async def create_station(body: NewAgentBody, who: Admin, svc: Service) -> JsonResponse:
    """A station is an employee: an agent of the tenant, who sees only the chats assigned to it."""
    return answer("station created", await svc.create_station(who, body), 202)


@router.get("/auth/employees", response_model=EmployeesAnswer, responses=responses(403))
async def employees(who: Admin, svc: Service) -> JsonResponse:
    return answer("employees", await svc.employees(who))


@router.post("/whatsapp/init", status_code=202, response_model=InitAnswer,
             responses={202: {"model": InitAnswer, "headers": IDEMPOTENCY_HEADERS,
                              "description": "Linking: the QR follows on Socket.IO (`qr`)."},
                        **responses(403, 404, 409)})
async def init(request: Request, who: Who, svc: Service, idempotency_key: IdempotencyKey = None,
               traceparent: Traceparent = None) -> JsonResponse:
    """Create the tenant's WhatsApp session, or start it again; `qr` and `session_status` follow on Socket.IO."""
    data, again = await svc.init(who, await Idem.of(request, idempotency_key), traceparent)
    return answer("session initializing" if data["status"] != "connected" else "session already connected", data,
                  202, replayed(again))


@router.post("/whatsapp/logout", status_code=202, response_model=LogoutAnswer,
             responses={202: {"model": LogoutAnswer, "headers": IDEMPOTENCY_HEADERS,
                              "description": "Accepted: the device is being unlinked."},
                        **responses(403, 404, 409)})
async def logout(request: Request, who: Who, svc: Service, idempotency_key: IdempotencyKey = None,
                 traceparent: Traceparent = None) -> JsonResponse:
    """Unlink the device of the tenant's session (a new QR is needed afterwards)."""
    body, again = await svc.logout(who, await Idem.of(request, idempotency_key), traceparent)
    return answer("logging out", body, 202, replayed(again))


@router.post("/permissions/assign", status_code=201, response_model=PermissionAnswer, responses=responses(403, 404))
async def assign(body: PermissionBody, who: Admin, svc: Service) -> JsonResponse:
    """Give an employee access to a chat."""
    return answer("permission granted", await svc.assign(who, body.employee_id, body.chat_id), 201)


@router.post("/permissions/revoke", response_model=PermissionAnswer, responses=responses(403, 404))
async def revoke(body: PermissionBody, who: Admin, svc: Service) -> JsonResponse:
    return answer("permission revoked", await svc.revoke(who, body.employee_id, body.chat_id))


@router.get("/chats", response_model=ChatsAnswer, responses=responses(404))
async def chats(who: Who, svc: Service) -> JsonResponse:
    """The tenant's chats (an employee sees its assigned ones), groups included."""
    return answer("chats", await svc.chat_list(who))


@router.get("/chats/{chat_id}/messages", response_model=MessagesAnswer, responses=responses(403, 404))
async def chat_messages(chat_id: JidPath, who: Who, svc: Service, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                        cursor: Annotated[str | None, Query(max_length=200)] = None) -> JsonResponse:
    return answer("messages", await svc.chat_messages(who, jid_or_422(chat_id), limit, cursor))


@router.post("/chats/{chat_id}/messages", status_code=202, response_model=SentAnswer,
             responses={202: {"model": SentAnswer, "headers": IDEMPOTENCY_HEADERS,
                              "description": "Accepted: the message is durably on Kafka."},
                        **responses(403, 404, 409)})
async def send(request: Request, chat_id: JidPath, body: ChatMessageBody, who: Who, svc: Service,
               idempotency_key: IdempotencyKey = None, traceparent: Traceparent = None) -> JsonResponse:
    assert body.message is not None
    data, again = await svc.send(who, await Idem.of(request, idempotency_key), traceparent, jid_or_422(chat_id),
                                 body.message)
    return answer("message queued", data, 202, replayed(again))


@router.get("/media/profile-photo/{chat_id}", response_model=PhotoAnswer, responses=responses(403, 404))
async def profile_photo(chat_id: JidPath, who: Who, svc: Service) -> JsonResponse:
    """The chat's profile photo URL (null when it has none or hides it)."""
    return answer("profile photo", await svc.profile_photo(who, jid_or_422(chat_id)))


@router.get("/media/{message_id}", response_model=MediaAnswer, responses=responses(403, 404))
async def media(message_id: MessageIdPath, who: Who, svc: Service) -> JsonResponse:
    """A message's media: type, name and a signed download URL."""
    return answer("media", await svc.media(who, message_id))
