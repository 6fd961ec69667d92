"""Identity: ``/users`` (register, verify, me) and ``/auth/*`` (login, refresh, logout, password reset)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import APIKeyCookie

from command_api.identity.schemas import (
    Accepted,
    EmailBody,
    LoginBody,
    RegisterBody,
    ResetConfirmBody,
    TokenAnswer,
    UserView,
    VerifyBody,
)
from command_api.identity.service import CHECK_YOUR_EMAIL, IdentityService
from command_api.settings import AuthSettings
from command_api.shared.bodies import IdPath
from command_api.shared.problems import AUTHED, COMMON, Problem, problem_response, responses
from command_api.shared.responses import ApiJson as JsonResponse
from command_api.shared.security import Who, require_user

router = APIRouter(tags=["identity"], responses=responses(*COMMON))
# For the OpenAPI document: /auth/refresh and /auth/logout read the HttpOnly refresh cookie.
refresh_cookie = APIKeyCookie(name="refresh_token", auto_error=False, scheme_name="refreshCookie",
                              description="The HttpOnly refresh-token cookie set by POST /auth/login.")


async def service(request: Request) -> IdentityService:
    identity: IdentityService = request.app.state.services.identity
    return identity


Service = Annotated[IdentityService, Depends(service)]


def client_ip(request: Request, auth: AuthSettings) -> str:
    if auth.trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded:
            candidate = forwarded.split(",")[-1].strip()
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass
    return request.client.host if request.client else "unknown"


def set_cookie(auth: AuthSettings, response: Response, refresh: str) -> None:
    response.set_cookie(auth.refresh_cookie_name, refresh, max_age=auth.refresh_token_ttl_s, path=auth.cookie_path,
                        httponly=True, secure=auth.cookie_secure, samesite=auth.cookie_samesite)


def clear_cookie(auth: AuthSettings, response: Response) -> None:
    response.delete_cookie(auth.refresh_cookie_name, path=auth.cookie_path, httponly=True,
                           secure=auth.cookie_secure, samesite=auth.cookie_samesite)


def cookie(request: Request, auth: AuthSettings) -> str | None:
    value = request.cookies.get(auth.refresh_cookie_name)
    return value if value and len(value) <= 256 else None


@router.post("/users", status_code=202, response_model=Accepted, responses=responses(429))
async def register(request: Request, body: RegisterBody, svc: Service) -> JsonResponse:
    """Register a new tenant with you as its owner. The answer is the same whether or not the address has an
    account: a new one gets a verification mail (6-digit code and a link with the user id), an existing one a
    notice."""
    return JsonResponse(await svc.register(body, client_ip(request, svc.auth)), status_code=202)


@router.get("/users/me", response_model=UserView, responses=responses(*AUTHED, 403))
async def me(who: Who, svc: Service) -> JsonResponse:
    require_user(who)
    return JsonResponse(await svc.me(who))


@router.delete("/users/me", status_code=204, response_class=Response, responses=responses(*AUTHED, 403))
async def delete_my_account(who: Who, svc: Service) -> Response:
    """Delete your own account: your personal data is erased (crypto-shredded) everywhere, including every
    copy in the event log, and you are signed out on every device."""
    await svc.erase(who, require_user(who))
    return Response(status_code=204)


@router.delete("/users/{user_id}", status_code=204, response_class=Response,
               responses=responses(*AUTHED, 403, 404))
async def erase_user(user_id: IdPath, who: Who, svc: Service) -> Response:
    """Erase a user of your tenant (owner or admin; only an owner may erase an owner): the account is closed
    and its e-mail and name become unreadable in every stored copy, the event log included."""
    await svc.erase(who, user_id)
    return Response(status_code=204)


@router.delete("/tenant", status_code=204, response_class=Response, responses=responses(*AUTHED, 403))
async def delete_tenant(who: Who, svc: Service) -> Response:
    """Delete your tenant (owner only). Its data keys are destroyed: message text, captions, names and phone
    numbers it left in the event log, and its users' e-mails and names, become unreadable in every copy
    (crypto-shredding). Every WhatsApp session of it is deleted with a purge: unlinked, and its messages,
    chats, contacts and the rest removed from the read models (no rebuild needed). Its users are erased and
    signed out and its API keys revoked. Idempotent (the caller's credentials no longer work afterwards)."""
    await svc.delete_tenant(who)
    return Response(status_code=204)


@router.post("/users/{user_id}/verify", response_model=UserView, responses=responses(429))
async def verify(request: Request, user_id: IdPath, body: VerifyBody, svc: Service) -> JsonResponse:
    """The 6-digit code or the link token from the verification mail."""
    return JsonResponse(await svc.verify(user_id, body, client_ip(request, svc.auth)))


@router.post("/auth/login", response_model=TokenAnswer, responses=responses(401, 403, 429))
async def login(request: Request, body: LoginBody, svc: Service) -> JsonResponse:
    """An access token, and an HttpOnly refresh-token cookie (path `/auth`)."""
    answer, refresh = await svc.login(body, client_ip(request, svc.auth))
    response = JsonResponse(answer, headers={"Cache-Control": "no-store"})
    set_cookie(svc.auth, response, refresh)
    return response


@router.post("/auth/refresh", response_model=TokenAnswer, responses=responses(401),
             dependencies=[Depends(refresh_cookie)])
async def refresh(request: Request, svc: Service) -> Response:
    """Rotate the refresh token; presenting a rotated one again revokes that login everywhere."""
    token = cookie(request, svc.auth)
    if token is None:
        raise Problem(401, "missing refresh token")
    try:
        answer, new = await svc.refresh(token)
    except Problem as exc:
        response = problem_response(exc.status, exc.detail, request.url.path)
        clear_cookie(svc.auth, response)
        return response
    response = JsonResponse(answer, headers={"Cache-Control": "no-store"})
    set_cookie(svc.auth, response, new)
    return response


@router.post("/auth/logout", status_code=204, response_class=Response, dependencies=[Depends(refresh_cookie)])
async def logout(request: Request, svc: Service) -> Response:
    """End this login."""
    token = cookie(request, svc.auth)
    if token is not None:
        await svc.logout(token)
    response = Response(status_code=204)
    clear_cookie(svc.auth, response)
    return response


@router.post("/auth/logout-all", status_code=204, response_class=Response, responses=responses(*AUTHED, 403))
async def logout_all(who: Who, svc: Service) -> Response:
    """End every login and every access token of the user."""
    require_user(who)
    await svc.logout_all(who)
    response = Response(status_code=204)
    clear_cookie(svc.auth, response)
    return response


@router.post("/auth/resend-verification", status_code=202, response_model=Accepted, responses=responses(429))
async def resend(request: Request, body: EmailBody, svc: Service) -> JsonResponse:
    """Always 202, whether or not the account exists."""
    await svc.resend_verification(body, client_ip(request, svc.auth))
    return JsonResponse(CHECK_YOUR_EMAIL, status_code=202)


@router.post("/auth/password-reset", status_code=202, response_model=Accepted, responses=responses(429))
async def reset(request: Request, body: EmailBody, svc: Service) -> JsonResponse:
    """Always 202, whether or not the account exists."""
    await svc.password_reset(body, client_ip(request, svc.auth))
    return JsonResponse(CHECK_YOUR_EMAIL, status_code=202)


@router.post("/auth/password-reset/confirm", status_code=204, response_class=Response, responses=responses(429))
async def reset_confirm(request: Request, body: ResetConfirmBody, svc: Service) -> Response:
    """Set a new password with the mailed code or token; ends every login."""
    await svc.password_reset_confirm(body, client_ip(request, svc.auth))
    return Response(status_code=204)
