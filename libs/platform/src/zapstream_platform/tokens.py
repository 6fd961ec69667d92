"""Access tokens: compact JWS (RFC 7515/7519) signed with HMAC-SHA256, shared by the API and the gateway.

Hardening choices:

* the algorithm is pinned: a token whose header is not exactly ``alg=HS256,
  typ=JWT`` with a known ``kid`` is rejected (no ``none``, no algorithm
  confusion);
* every key has an id (``kid``); ``keys`` may hold several, ``active_kid``
  signs, the others still verify, so keys rotate without logging anyone out;
* signatures are compared in constant time (``hmac.compare_digest``);
* ``exp``, ``iss``, ``aud`` and ``typ`` are checked; a small leeway covers clock skew.

It is small enough to be read in one sitting, so it is implemented here with
the standard library instead of adding a JOSE dependency to every service.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, Field, SecretStr

ALGORITHM = "HS256"
ISSUER = "zapstream"
AUDIENCE = "zapstream"
_MAX_TOKEN = 4096
DEV_SECRET = "dev-only-secret-change-me-dev-only-secret-change-me"


class JwtSettings(BaseModel):
    """``<PREFIX>JWT__KEYS='{"k2026": "<32+ random bytes>"}'`` and ``<PREFIX>JWT__ACTIVE_KID=k2026``."""

    keys: dict[str, SecretStr] = Field(default_factory=lambda: {"dev": SecretStr(DEV_SECRET)})
    active_kid: str = "dev"
    leeway_s: int = 30


class InvalidToken(Exception):
    """The token is malformed, forged, expired or signed with an unknown key (never says which)."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    tenant_id: str
    role: str
    token_version: int
    issued_at: int
    expires_at: int


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    if not text or len(text) > _MAX_TOKEN:
        raise InvalidToken
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise InvalidToken from exc


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("ey")


class TokenSigner:
    def __init__(self, settings: JwtSettings) -> None:
        if settings.active_kid not in settings.keys:
            raise ValueError("jwt.active_kid must name one of jwt.keys")
        self._keys = {kid: secret.get_secret_value().encode() for kid, secret in settings.keys.items()}
        for kid, key in self._keys.items():
            if len(key) < 32:
                raise ValueError(f"jwt key {kid!r} is shorter than 32 bytes")
        self._active = settings.active_kid
        self._leeway = settings.leeway_s

    @property
    def uses_dev_key(self) -> bool:
        return any(key == DEV_SECRET.encode() for key in self._keys.values())

    def _sign(self, kid: str, signing_input: bytes) -> bytes:
        return hmac.new(self._keys[kid], signing_input, hashlib.sha256).digest()

    def issue(self, user_id: str, tenant_id: str, role: str, token_version: int, ttl_s: int,
              now: float | None = None) -> tuple[str, int]:
        """Return (token, expires_at as epoch seconds)."""
        iat = int(now if now is not None else time.time())
        exp = iat + ttl_s
        header = {"alg": ALGORITHM, "typ": "JWT", "kid": self._active}
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": user_id, "tid": tenant_id, "role": role,
                  "ver": token_version, "iat": iat, "exp": exp, "typ": "access"}
        signing_input = f"{_b64e(orjson.dumps(header))}.{_b64e(orjson.dumps(claims))}".encode()
        return f"{signing_input.decode()}.{_b64e(self._sign(self._active, signing_input))}", exp

    def verify(self, token: str, now: float | None = None, check_expiry: bool = True) -> AccessClaims:
        if not token or len(token) > _MAX_TOKEN or token.count(".") != 2:
            raise InvalidToken
        head_b64, body_b64, sig_b64 = token.split(".")
        try:
            header = orjson.loads(_b64d(head_b64))
        except orjson.JSONDecodeError as exc:
            raise InvalidToken from exc
        if not isinstance(header, dict) or header.get("alg") != ALGORITHM or header.get("typ") != "JWT":
            raise InvalidToken
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in self._keys or set(header) - {"alg", "typ", "kid"}:
            raise InvalidToken
        expected = self._sign(kid, f"{head_b64}.{body_b64}".encode())
        if not hmac.compare_digest(expected, _b64d(sig_b64)):
            raise InvalidToken
        try:
            claims: Any = orjson.loads(_b64d(body_b64))
        except orjson.JSONDecodeError as exc:
            raise InvalidToken from exc
        if not isinstance(claims, dict):
            raise InvalidToken
        current = now if now is not None else time.time()
        try:
            exp, iat, ver = int(claims["exp"]), int(claims["iat"]), int(claims["ver"])
            ok = (
                claims["iss"] == ISSUER and claims["aud"] == AUDIENCE and claims["typ"] == "access"
                and (not check_expiry or current <= exp + self._leeway) and iat <= current + self._leeway
                and all(isinstance(claims[k], str) for k in ("sub", "tid", "role"))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidToken from exc
        if not ok:
            raise InvalidToken
        return AccessClaims(claims["sub"], claims["tid"], claims["role"], ver, iat, exp)


# --- who is calling: shared by the command API and the gateway ------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: a user (owner, admin, agent) signed in with an access token, or a machine's API key."""

    tenant_id: str
    role: str  # owner | admin | agent | machine
    user_id: str | None = None
    key_id: str | None = None
    session_ids: frozenset[str] | None = None  # an API key's session scope; None: every session

    @property
    def is_admin(self) -> bool:
        return self.role in ("owner", "admin")

    @property
    def is_agent(self) -> bool:
        return self.role == "agent"

    @property
    def is_machine(self) -> bool:
        return self.role == "machine"


async def resolve(pool: Any, signer: TokenSigner, token: str, check_expiry: bool = True) -> Principal | None:
    """Access token (JWT) or API key → principal; ``None`` for anything not valid right now.

    A JWT is checked against the user's row too, so disabling a user, logout-all
    and a password reset (which bump ``token_version``) end its access tokens at once.
    ``check_expiry=False`` is for re-checking a WebSocket that was opened with a valid token.
    """
    from zapstream_platform import apikeys  # local: apikeys imports nothing from here

    if not token or len(token) > _MAX_TOKEN:
        return None
    if looks_like_jwt(token):
        try:
            claims = signer.verify(token, check_expiry=check_expiry)
            user_id = uuid.UUID(claims.user_id)
        except (InvalidToken, ValueError):
            return None
        row = await pool.fetchrow(
            "SELECT tenant_id, role, token_version, disabled_at FROM users WHERE id = $1", user_id
        )
        if (row is None or row["disabled_at"] is not None or row["token_version"] != claims.token_version
                or row["tenant_id"] != claims.tenant_id):
            return None
        return Principal(tenant_id=row["tenant_id"], role=row["role"], user_id=str(user_id))
    info = await apikeys.lookup(pool, token)
    if info is None:
        return None
    return Principal(tenant_id=info.tenant_id, role="machine", key_id=info.id, session_ids=info.session_ids)


async def assigned_chats(pool: Any, user_id: str) -> frozenset[str]:
    rows = await pool.fetch("SELECT chat_jid FROM chat_assignments WHERE user_id = $1", uuid.UUID(user_id))
    return frozenset(r["chat_jid"] for r in rows)


MIN_KEY_BYTES = 32  # 256 bits, the size of HS256's output


def require_strong_keys(settings: JwtSettings, dev_mode: bool, env_prefix: str) -> None:
    """Outside development mode, refuse the built-in (public) key and any key shorter than 256 bits."""
    if dev_mode:
        return
    for kid, secret in settings.keys.items():
        key = secret.get_secret_value().encode()
        if key == DEV_SECRET.encode():
            raise ValueError(f"jwt key {kid!r} is the built-in development key: set {env_prefix}JWT__KEYS "
                             f"(or {env_prefix}DEV_MODE=true for local development only)")
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"jwt key {kid!r} is shorter than {MIN_KEY_BYTES} bytes (256 bits)")
