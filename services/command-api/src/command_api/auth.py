"""Users and their credentials: registration, e-mail verification, login, refresh rotation, logout, resets.

Hardening: argon2id password hashes (verified in a worker thread, and against a
dummy hash when the account does not exist, so timing does not tell);
refresh tokens are random, stored as SHA-256 digests, rotated on every use, and
a rotated token presented again revokes its whole family; verification and
reset codes are stored hashed, expire, and die after a few wrong attempts;
login, verification and reset are rate-limited per account and per IP; reset
and resend answers are the same whether or not the account exists.
"""


import asyncio
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from command_api import mailer, outbox
from command_api.problems import Problem, parse_body, problem_response
from command_api.settings import AuthSettings, Limit, Settings
from zapstream_platform.http import JsonResponse
from zapstream_platform.tokens import Principal, TokenSigner, resolve

log = logging.getLogger(__name__)

_hasher = PasswordHasher()  # argon2id, the library's (RFC 9106 low-memory) defaults
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


# --- request bodies -------------------------------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


Password = Annotated[str, Field(min_length=8, max_length=256)]
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")


def _email(value: str) -> str:
    value = value.strip()
    if not _EMAIL.match(value):
        raise ValueError("not a valid e-mail address")
    return value


Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]


class RegisterBody(Body):
    name: str = Field(min_length=1, max_length=200)
    email: Email
    password: Password
    tenant_name: str | None = Field(default=None, max_length=200)


class LoginBody(Body):
    email: Email
    password: str = Field(min_length=1, max_length=256)


class EmailBody(Body):
    email: Email


class VerifyBody(Body):
    code: str | None = Field(default=None, min_length=1, max_length=32)
    token: str | None = Field(default=None, min_length=1, max_length=256)


class ResetConfirmBody(VerifyBody):
    email: Email
    new_password: Password


class NewUserBody(Body):
    name: str = Field(min_length=1, max_length=200)
    email: Email
    password: Password
    role: str = "agent"

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        if value not in ("agent", "admin"):
            raise ValueError("role must be 'agent' or 'admin'")
        return value


parse = parse_body


# --- primitives -----------------------------------------------------------------------------------


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("rate limited")
        self.retry_after = retry_after


def rate_limited_response(request: Request, exc: RateLimited) -> JsonResponse:
    response = problem_response(429, "too many attempts; retry later", request.url.path)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def account_key(email: str) -> str:
    """Rate-limit buckets name accounts by a digest of the e-mail, never the address itself."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def user_view(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(r["id"]), "tenantId": r["tenant_id"], "email": r["email"], "name": r["name"], "role": r["role"],
        "emailVerified": r["email_verified_at"] is not None, "disabled": r["disabled_at"] is not None,
        "createdAt": r["created_at"].isoformat(),
    }


def user_event(r: asyncpg.Record) -> dict[str, Any]:
    return {"userId": str(r["id"]), "email": r["email"], "name": r["name"], "role": r["role"]}


@dataclass(frozen=True, slots=True)
class Codes:
    code: str
    token: str


class AuthService:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, signer: TokenSigner) -> None:
        self.pool = pool
        self.settings = settings
        self.auth: AuthSettings = settings.auth
        self.signer = signer

    # -- rate limits --

    async def limit(self, bucket: str, spec: str) -> None:
        limit = Limit.parse(spec)
        row = await self.pool.fetchrow(
            """INSERT INTO rate_limits AS r (bucket, window_start, hits) VALUES ($1, now(), 1)
               ON CONFLICT (bucket) DO UPDATE SET
                 window_start = CASE WHEN r.window_start <= now() - make_interval(secs => $2)
                                     THEN now() ELSE r.window_start END,
                 hits = CASE WHEN r.window_start <= now() - make_interval(secs => $2) THEN 1 ELSE r.hits + 1 END
               RETURNING hits, extract(epoch FROM (window_start + make_interval(secs => $2) - now()))::float8 AS left""",
            bucket, float(limit.window_s),
        )
        assert row is not None
        if row["hits"] > limit.hits:
            raise RateLimited(max(1, math.ceil(row["left"])))

    async def limit_both(self, action: str, email: str | None, ip: str, account: str, per_ip: str) -> None:
        # Count both before refusing, so a flood from one IP also spends that IP's budget.
        errors: list[RateLimited] = []
        for bucket, lim in ((f"{action}:ip:{ip}", per_ip), *(((f"{action}:acct:{account_key(email)}", account),)
                                                              if email else ())):
            try:
                await self.limit(bucket, lim)
            except RateLimited as exc:
                errors.append(exc)
        if errors:
            raise RateLimited(max(e.retry_after for e in errors))

    # -- codes --

    async def new_codes(self, conn: asyncpg.Connection, user_id: uuid.UUID, purpose: str, ttl_s: int) -> Codes:
        codes = Codes(f"{secrets.randbelow(10**6):06d}", secrets.token_urlsafe(32))
        await conn.execute(
            """INSERT INTO one_time_codes (user_id, purpose, code_hash, token_hash, expires_at)
               VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
               ON CONFLICT (user_id, purpose) DO UPDATE SET code_hash = EXCLUDED.code_hash,
                 token_hash = EXCLUDED.token_hash, attempts = 0, expires_at = EXCLUDED.expires_at, created_at = now()""",
            user_id, purpose, sha256(f"{user_id}:{purpose}:{codes.code}"), sha256(codes.token), float(ttl_s),
        )
        return codes

    async def consume_code(self, conn: asyncpg.Connection, user_id: uuid.UUID, purpose: str,
                           code: str | None, token: str | None) -> bool:
        """Inside a transaction: True (and the code is gone) when ``code`` or ``token`` matches a live code."""
        row = await conn.fetchrow(
            "SELECT * FROM one_time_codes WHERE user_id = $1 AND purpose = $2 FOR UPDATE", user_id, purpose
        )
        if row is None or row["expires_at"] <= datetime.now(UTC) or row["attempts"] >= self.auth.code_max_attempts:
            return False
        ok = False
        if token is not None:
            ok = hmac.compare_digest(bytes(row["token_hash"]), sha256(token))
        elif code is not None:
            ok = hmac.compare_digest(bytes(row["code_hash"]), sha256(f"{user_id}:{purpose}:{code.strip()}"))
        if ok:
            await conn.execute("DELETE FROM one_time_codes WHERE user_id = $1 AND purpose = $2", user_id, purpose)
        else:
            await conn.execute("UPDATE one_time_codes SET attempts = attempts + 1 WHERE user_id = $1 AND purpose = $2",
                               user_id, purpose)
        return ok

    def link(self, path: str, **params: str) -> str:
        return f"{self.settings.app_base_url.rstrip('/')}{path}?{urlencode(params)}"

    async def send_verification(self, conn: asyncpg.Connection, user: asyncpg.Record) -> None:
        codes = await self.new_codes(conn, user["id"], "verify", self.auth.verification_ttl_s)
        subject, body = mailer.verification_mail(
            user["name"], codes.code, self.link("/verify", userId=str(user["id"]), token=codes.token))
        await mailer.enqueue(conn, user["email"], subject, body)
        await outbox.record(conn, "user.verification_requested", user["tenant_id"], {"userId": str(user["id"])})

    # -- flows --

    async def register(self, body: RegisterBody) -> dict[str, Any]:
        password_hash = await hash_password(body.password)
        tenant_id, user_id = str(uuid.uuid4()), uuid.uuid4()
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant_id,
                                   body.tenant_name or body.name)
                user = await conn.fetchrow(
                    """INSERT INTO users (id, tenant_id, email, name, password_hash, role)
                       VALUES ($1, $2, $3, $4, $5, 'owner') RETURNING *""",
                    user_id, tenant_id, str(body.email), body.name, password_hash,
                )
                assert user is not None
                await outbox.record(conn, "tenant.created", tenant_id,
                                    {"tenantId": tenant_id, "name": body.tenant_name or body.name})
                await outbox.record(conn, "user.registered", tenant_id, user_event(user))
                await self.send_verification(conn, user)
        except asyncpg.UniqueViolationError as exc:
            raise Problem(409, "an account with this e-mail address already exists") from exc
        return user_view(user)

    async def verify(self, user_id: str, body: VerifyBody, ip: str) -> dict[str, Any]:
        if (body.code is None) == (body.token is None):
            raise Problem(422, "send exactly one of code or token")
        try:
            uid = uuid.UUID(user_id)
        except ValueError as exc:
            raise Problem(422, "invalid or expired code") from exc
        await self.limit_both("verify", str(uid), ip, self.auth.rate_limits.code_account,
                              self.auth.rate_limits.code_ip)
        async with self.pool.acquire() as conn, conn.transaction():
            user = await conn.fetchrow("SELECT * FROM users WHERE id = $1 FOR UPDATE", uid)
            if user is None or not await self.consume_code(conn, uid, "verify", body.code, body.token):
                raise Problem(422, "invalid or expired code")
            user = await conn.fetchrow(
                "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now() "
                "WHERE id = $1 RETURNING *", uid)
            assert user is not None
            await outbox.record(conn, "user.email_verified", user["tenant_id"], {"userId": str(uid)})
        return user_view(user)

    async def _issue(self, conn: asyncpg.Connection, user: asyncpg.Record, family: uuid.UUID) -> tuple[str, str, int]:
        """(access token, refresh token, access expiry) for ``user``, the refresh token in ``family``."""
        refresh = secrets.token_urlsafe(32)
        await conn.execute(
            """INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, expires_at)
               VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))""",
            uuid.uuid4(), family, user["id"], sha256(refresh), float(self.auth.refresh_token_ttl_s),
        )
        access, exp = self.signer.issue(str(user["id"]), user["tenant_id"], user["role"], user["token_version"],
                                        self.auth.access_token_ttl_s)
        return access, refresh, exp

    async def login(self, body: LoginBody, ip: str) -> tuple[dict[str, Any], str]:
        await self.limit_both("login", str(body.email), ip, self.auth.rate_limits.login_account,
                              self.auth.rate_limits.login_ip)
        user = await self.pool.fetchrow("SELECT * FROM users WHERE lower(email) = lower($1)", str(body.email))
        ok = await verify_password(user["password_hash"] if user else None, body.password)
        if user is None or not ok or user["disabled_at"] is not None:
            raise Problem(401, "invalid e-mail or password")
        if self.auth.require_verified_email and user["email_verified_at"] is None:
            raise Problem(403, "e-mail address not verified")
        if _hasher.check_needs_rehash(user["password_hash"]):
            await self.pool.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user["id"],
                                    await hash_password(body.password))
        async with self.pool.acquire() as conn, conn.transaction():
            access, refresh, exp = await self._issue(conn, user, uuid.uuid4())
            await outbox.record(conn, "user.logged_in", user["tenant_id"], {"userId": str(user["id"])})
        return self.token_body(access, exp, user), refresh

    def token_body(self, access: str, exp: int, user: asyncpg.Record) -> dict[str, Any]:
        return {"accessToken": access, "tokenType": "Bearer", "expiresIn": self.auth.access_token_ttl_s,
                "expiresAt": exp, "user": user_view(user)}

    async def refresh(self, token: str) -> tuple[dict[str, Any], str]:
        """Rotate ``token``. A token already rotated or revoked revokes its whole family (reuse detection)."""
        reused = False
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE", sha256(token))
            if row is None:
                raise Problem(401, "invalid refresh token")
            user = await conn.fetchrow("SELECT * FROM users WHERE id = $1", row["user_id"])
            assert user is not None
            if row["rotated_at"] is not None or row["revoked_at"] is not None:
                if row["rotated_at"] is not None:  # a stolen copy, or the thief's: nobody keeps this family
                    reused = True
                    await conn.execute(
                        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
                        row["family_id"])
                    await outbox.record(conn, "user.refresh_token_reused", user["tenant_id"],
                                        {"userId": str(user["id"]), "familyId": str(row["family_id"])})
            elif row["expires_at"] > datetime.now(UTC) and user["disabled_at"] is None:
                await conn.execute("UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1", row["id"])
                access, refresh, exp = await self._issue(conn, user, row["family_id"])
                return self.token_body(access, exp, user), refresh
        if reused:
            log.warning("refresh token reuse detected; family revoked", extra={"fields": {"userId": str(user["id"])}})
        raise Problem(401, "invalid refresh token")

    async def logout(self, token: str) -> None:
        await self.pool.execute(
            """UPDATE refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL
               AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)""",
            sha256(token))

    async def revoke_everything(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
        """End every login of the user: refresh families revoked, access tokens outdated."""
        await conn.execute("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
                           user_id)
        await conn.execute("UPDATE users SET token_version = token_version + 1, updated_at = now() WHERE id = $1",
                           user_id)

    async def logout_all(self, who: Principal) -> None:
        assert who.user_id is not None
        async with self.pool.acquire() as conn, conn.transaction():
            await self.revoke_everything(conn, uuid.UUID(who.user_id))
            await outbox.record(conn, "user.logged_out_everywhere", who.tenant_id, {"userId": who.user_id})

    async def resend_verification(self, body: EmailBody, ip: str) -> None:
        await self.limit_both("mail", str(body.email), ip, self.auth.rate_limits.mail_account,
                              self.auth.rate_limits.mail_ip)
        async with self.pool.acquire() as conn, conn.transaction():
            user = await conn.fetchrow("SELECT * FROM users WHERE lower(email) = lower($1) FOR UPDATE",
                                       str(body.email))
            if user is not None and user["email_verified_at"] is None and user["disabled_at"] is None:
                await self.send_verification(conn, user)

    async def password_reset(self, body: EmailBody, ip: str) -> None:
        await self.limit_both("mail", str(body.email), ip, self.auth.rate_limits.mail_account,
                              self.auth.rate_limits.mail_ip)
        async with self.pool.acquire() as conn, conn.transaction():
            user = await conn.fetchrow("SELECT * FROM users WHERE lower(email) = lower($1) FOR UPDATE",
                                       str(body.email))
            if user is not None and user["disabled_at"] is None:
                codes = await self.new_codes(conn, user["id"], "reset", self.auth.password_reset_ttl_s)
                subject, text = mailer.reset_mail(
                    user["name"], codes.code, self.link("/reset-password", email=user["email"], token=codes.token))
                await mailer.enqueue(conn, user["email"], subject, text)
                await outbox.record(conn, "user.password_reset_requested", user["tenant_id"],
                                    {"userId": str(user["id"])})

    async def password_reset_confirm(self, body: ResetConfirmBody, ip: str) -> None:
        if (body.code is None) == (body.token is None):
            raise Problem(422, "send exactly one of code or token")
        await self.limit_both("reset", str(body.email), ip, self.auth.rate_limits.code_account,
                              self.auth.rate_limits.code_ip)
        password_hash = await hash_password(body.new_password)
        async with self.pool.acquire() as conn, conn.transaction():
            user = await conn.fetchrow("SELECT * FROM users WHERE lower(email) = lower($1) FOR UPDATE",
                                       str(body.email))
            if user is None or user["disabled_at"] is not None or not await self.consume_code(
                    conn, user["id"], "reset", body.code, body.token):
                raise Problem(422, "invalid or expired code")
            await conn.execute(
                """UPDATE users SET password_hash = $2, email_verified_at = coalesce(email_verified_at, now())
                   WHERE id = $1""", user["id"], password_hash)
            await self.revoke_everything(conn, user["id"])
            await outbox.record(conn, "user.password_reset", user["tenant_id"], {"userId": str(user["id"])})

    async def me(self, who: Principal) -> dict[str, Any]:
        assert who.user_id is not None
        row = await self.pool.fetchrow("SELECT * FROM users WHERE id = $1", uuid.UUID(who.user_id))
        if row is None:
            raise Problem(401, "missing or invalid credentials")
        return user_view(row)


# --- HTTP -----------------------------------------------------------------------------------------


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


def principal_dependency(pool: asyncpg.Pool, signer: TokenSigner) -> Any:
    async def principal(
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> Principal:
        token = x_api_key or ""
        if authorization and authorization[:7].lower() == "bearer ":
            token = authorization[7:].strip()
        who = await resolve(pool, signer, token) if token else None
        if who is None:
            raise Problem(401, "missing or invalid credentials")
        return who

    return principal


def build_auth_router(service: AuthService, principal: Any) -> APIRouter:
    auth = service.auth
    router = APIRouter(tags=["auth"])
    Who = Annotated[Principal, Depends(principal)]

    def set_cookie(response: Response, refresh: str) -> None:
        response.set_cookie(auth.refresh_cookie_name, refresh, max_age=auth.refresh_token_ttl_s, path=auth.cookie_path,
                            httponly=True, secure=auth.cookie_secure, samesite=auth.cookie_samesite)

    def clear_cookie(response: Response) -> None:
        response.delete_cookie(auth.refresh_cookie_name, path=auth.cookie_path, httponly=True,
                               secure=auth.cookie_secure, samesite=auth.cookie_samesite)

    def cookie(request: Request) -> str | None:
        value = request.cookies.get(auth.refresh_cookie_name)
        return value if value and len(value) <= 256 else None

    accepted = {"status": "accepted",
                "detail": "if the account exists and needs it, an e-mail is on its way"}

    @router.post("/users", status_code=201)
    async def register(request: Request) -> JsonResponse:
        ip = client_ip(request, auth)
        body = await parse(request, RegisterBody)
        await service.limit(f"register:ip:{ip}", auth.rate_limits.register_ip)
        return JsonResponse(await service.register(body), status_code=201)

    @router.get("/users/me")
    async def me(who: Who) -> JsonResponse:
        if who.user_id is None:
            raise Problem(403, "API keys are not users")
        return JsonResponse(await service.me(who))

    @router.post("/users/{user_id}/verify")
    async def verify(user_id: str, request: Request) -> JsonResponse:
        body = await parse(request, VerifyBody)
        return JsonResponse(await service.verify(user_id, body, client_ip(request, auth)))

    @router.post("/auth/login")
    async def login(request: Request) -> JsonResponse:
        body = await parse(request, LoginBody)
        answer, refresh = await service.login(body, client_ip(request, auth))
        response = JsonResponse(answer, headers={"Cache-Control": "no-store"})
        set_cookie(response, refresh)
        return response

    @router.post("/auth/refresh")
    async def refresh(request: Request) -> JsonResponse:
        token = cookie(request)
        if token is None:
            raise Problem(401, "missing refresh token")
        try:
            answer, new = await service.refresh(token)
        except Problem as exc:
            response = problem_response(exc.status, exc.detail, request.url.path)
            clear_cookie(response)
            return response
        response = JsonResponse(answer, headers={"Cache-Control": "no-store"})
        set_cookie(response, new)
        return response

    @router.post("/auth/logout", status_code=204)
    async def logout(request: Request) -> Response:
        token = cookie(request)
        if token is not None:
            await service.logout(token)
        response = Response(status_code=204)
        clear_cookie(response)
        return response

    @router.post("/auth/logout-all", status_code=204)
    async def logout_all(who: Who) -> Response:
        if who.user_id is None:
            raise Problem(403, "API keys are not users")
        await service.logout_all(who)
        response = Response(status_code=204)
        clear_cookie(response)
        return response

    @router.post("/auth/resend-verification", status_code=202)
    async def resend(request: Request) -> JsonResponse:
        body = await parse(request, EmailBody)
        await service.resend_verification(body, client_ip(request, auth))
        return JsonResponse(accepted, status_code=202)

    @router.post("/auth/password-reset", status_code=202)
    async def reset(request: Request) -> JsonResponse:
        body = await parse(request, EmailBody)
        await service.password_reset(body, client_ip(request, auth))
        return JsonResponse(accepted, status_code=202)

    @router.post("/auth/password-reset/confirm", status_code=204)
    async def reset_confirm(request: Request) -> Response:
        body = await parse(request, ResetConfirmBody)
        await service.password_reset_confirm(body, client_ip(request, auth))
        return Response(status_code=204)

    return router
