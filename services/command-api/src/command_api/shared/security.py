"""Who is calling: access tokens (JWT) and API keys → a principal, cached in process, rate-limited.

The cache keeps a resolved API key (by digest) or user (by id) for ``principal_cache_ttl_s``.
Every identity event of a tenant (a key revoked, a user disabled, logged out everywhere, reset
a password) evicts that tenant's entries: the identity-topic listener does it for changes made
through any API process, and this process evicts at once for changes it makes itself.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPBearer

from command_api.shared.problems import Problem
from command_api.shared.ratelimit import RateLimiter
from zapstream_platform import apikeys
from zapstream_platform.tokens import InvalidToken, Principal, TokenSigner, looks_like_jwt

_MAX_TOKEN = 4096


@dataclass(frozen=True, slots=True)
class UserAuth:
    tenant_id: str
    role: str
    token_version: int
    disabled: bool
    plan: str


@dataclass(frozen=True, slots=True)
class KeyAuth:
    key_id: str
    tenant_id: str
    session_ids: frozenset[str] | None
    plan: str


class PrincipalSource(Protocol):
    async def user_auth(self, user_id: uuid.UUID) -> UserAuth | None: ...
    async def key_auth(self, digest: bytes) -> KeyAuth | None: ...


@dataclass(slots=True)
class _Entry:
    value: UserAuth | KeyAuth | None
    expires: float


class Authenticator:
    def __init__(self, source: PrincipalSource, signer: TokenSigner, limiter: RateLimiter,
                 ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.signer = signer
        self.limiter = limiter
        self.ttl_s = ttl_s
        self.clock = clock
        # Entries are kept only while the identity listener is positioned on the identity topic;
        # without it nothing would evict a revoked key, so nothing is cached.
        self.listening = False
        self._cache: dict[bytes | uuid.UUID, _Entry] = {}
        self._by_tenant: dict[str, set[bytes | uuid.UUID]] = {}

    def evict_tenant(self, tenant_id: str) -> None:
        for key in self._by_tenant.pop(tenant_id, ()):
            self._cache.pop(key, None)

    def evict_all(self) -> None:
        self._cache.clear()
        self._by_tenant.clear()

    async def _cached(self, key: bytes | uuid.UUID) -> UserAuth | KeyAuth | None:
        entry = self._cache.get(key)
        if entry is not None and entry.expires > self.clock():
            return entry.value
        if isinstance(key, uuid.UUID):
            value: UserAuth | KeyAuth | None = await self.source.user_auth(key)
        else:
            value = await self.source.key_auth(key)
        if value is not None and self.ttl_s > 0 and self.listening:  # misses are not cached: a key may be created any moment
            if len(self._cache) > 100_000:
                self.evict_all()
            self._cache[key] = _Entry(value, self.clock() + self.ttl_s)
            self._by_tenant.setdefault(value.tenant_id, set()).add(key)
        return value

    async def resolve(self, token: str) -> tuple[Principal, str] | None:
        """(principal, plan) for a valid access token or API key; None otherwise."""
        if not token or len(token) > _MAX_TOKEN:
            return None
        if looks_like_jwt(token):
            try:
                claims = self.signer.verify(token)
                user_id = uuid.UUID(claims.user_id)
            except (InvalidToken, ValueError):
                return None
            user = await self._cached(user_id)
            if (not isinstance(user, UserAuth) or user.disabled or user.token_version != claims.token_version
                    or user.tenant_id != claims.tenant_id):
                return None
            return Principal(tenant_id=user.tenant_id, role=user.role, user_id=str(user_id)), user.plan
        key = await self._cached(apikeys.digest(token))
        if not isinstance(key, KeyAuth):
            return None
        return Principal(tenant_id=key.tenant_id, role="machine", key_id=key.key_id,
                         session_ids=key.session_ids), key.plan

    async def authenticate(self, token: str | None) -> Principal:
        found = await self.resolve(token or "")
        if found is None:
            raise Problem(401, "missing or invalid credentials", headers={"WWW-Authenticate": "Bearer"})
        who, plan = found
        self.limiter.check(plan, who.tenant_id, who.key_id or who.user_id or "?")
        return who


# Declared on every protected route in the OpenAPI document (see :func:`security_requirements`); either one
# authenticates. The dependency reads the two headers itself: running the scheme objects as sub-dependencies
# costs a measurable share of the ingest path and adds nothing.
bearer_scheme = HTTPBearer(auto_error=False, scheme_name="bearerAuth", bearerFormat="JWT",
                           description="An access token from POST /auth/login, or an API key.")
api_key_scheme = APIKeyHeader(name="X-Api-Key", auto_error=False, scheme_name="apiKey",
                              description="An API key (`zs_live_…`).")
SECURITY_SCHEMES = {"bearerAuth": bearer_scheme.model.model_dump(mode="json", by_alias=True, exclude_none=True),
                    "apiKey": api_key_scheme.model.model_dump(mode="json", by_alias=True, exclude_none=True)}
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKey": []}]


def authenticator(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.services.auth
    return auth


async def current_principal(request: Request) -> Principal:
    """``Authorization: Bearer <access token or API key>``, else ``X-Api-Key``."""
    headers = request.headers
    authorization = headers.get("authorization")
    if authorization and authorization[:7].lower() == "bearer ":
        token: str | None = authorization[7:].strip()
    else:
        token = headers.get("x-api-key")
    return await authenticator(request).authenticate(token)


Who = Annotated[Principal, Depends(current_principal)]


def require_admin(who: Principal) -> None:
    if not who.is_admin:
        raise Problem(403, "only the tenant's owner and admins may do this")


def require_user(who: Principal) -> str:
    if who.user_id is None:
        raise Problem(403, "API keys are not users")
    return who.user_id


async def admin_principal(who: Who) -> Principal:
    """The owner or an admin; checked before the body is validated, so others get 403, not 422."""
    require_admin(who)
    return who


Admin = Annotated[Principal, Depends(admin_principal)]
