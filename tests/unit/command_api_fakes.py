"""In-memory fakes of the command API's repositories and command bus, for fast tests without servers."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from command_api.settings import ApiRateLimits, PlanLimits
from command_api.shared.access import Access
from command_api.shared.commands import Commands
from command_api.shared.idempotency import Claim
from command_api.shared.ratelimit import RateLimiter
from command_api.shared.security import Authenticator, KeyAuth, UserAuth
from zapstream_contracts import commands as c
from zapstream_platform import apikeys
from zapstream_platform.tokens import JwtSettings, Principal, TokenSigner

SECRET = "unit-test-signing-key-unit-test-signing-key"


class FakeBus:
    def __init__(self) -> None:
        self.sent: list[c.Command] = []

    async def send(self, cls: type[c.Command], tenant_id: str, session_id: str, traceparent: str | None,
                   command_id: str | None = None, **fields: Any) -> str:
        from command_api.shared.bus import build_command

        command = build_command(cls, tenant_id, session_id, traceparent, command_id, **fields)
        self.sent.append(command)
        return command.command_id


class FakeIdempotency:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], tuple[bytes, dict[str, Any] | None]] = {}

    async def claim(self, tenant_id: str, key: str, fingerprint: bytes) -> Claim:
        row = self.rows.get((tenant_id, key))
        if row is None:
            self.rows[(tenant_id, key)] = (fingerprint, None)
            return Claim(True)
        return Claim(False, row[0], row[1])

    async def release(self, tenant_id: str, key: str) -> None:
        self.rows.pop((tenant_id, key), None)

    async def complete(self, tenant_id: str, key: str, body: dict[str, Any]) -> None:
        self.rows[(tenant_id, key)] = (self.rows[(tenant_id, key)][0], body)


@dataclass
class FakeSession:
    id: str
    tenant_id: str
    deleted: bool = False
    view: dict[str, Any] | None = None


class FakeSessions:
    """SessionDirectory and SessionsStore in memory; ``created`` orders "latest"."""

    def __init__(self) -> None:
        self.rows: list[FakeSession] = []
        self.commands: dict[str, dict[str, Any]] = {}
        self.declared: dict[tuple[str, str], str] = {}

    def add(self, tenant_id: str, status: str = "connected", qr: str | None = None) -> str:
        sid = str(uuid.uuid4())
        view = {"id": sid, "tenantId": tenant_id, "name": None, "status": status, "phone": None, "qr": qr,
                "qrExpiresAt": None, "connectedAt": None, "disconnectedAt": None, "disconnectedReason": None,
                "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z"}
        self.rows.append(FakeSession(sid, tenant_id, view=view))
        return sid

    async def register(self, tenant_id: str) -> str:
        sid = str(uuid.uuid4())
        self.rows.append(FakeSession(sid, tenant_id))
        return sid

    async def mark_deleted(self, tenant_id: str, session_id: str) -> None:
        for row in self.rows:
            if row.id == session_id and row.tenant_id == tenant_id:
                row.deleted = True

    async def owner_of(self, session_id: uuid.UUID) -> tuple[str, bool] | None:
        for row in self.rows:
            if row.id == str(session_id):
                return row.tenant_id, row.deleted
        return None

    async def latest_session(self, tenant_id: str, scope: Iterable[str] | None) -> str | None:
        allowed = None if scope is None else set(scope)
        for row in reversed(self.rows):
            if row.tenant_id == tenant_id and not row.deleted and (allowed is None or row.id in allowed):
                return row.id
        return None

    async def declared_session(self, tenant_id: str, name: str) -> str | None:
        return self.declared.get((tenant_id, name))

    async def list(self, tenant_id: str) -> list[dict[str, Any]]:
        return [r.view for r in reversed(self.rows) if r.tenant_id == tenant_id and not r.deleted and r.view]

    async def get(self, tenant_id: str, session_id: str) -> dict[str, Any] | None:
        for r in self.rows:
            if r.id == session_id and r.tenant_id == tenant_id and not r.deleted:
                return r.view
        return None

    async def command(self, tenant_id: str, command_id: str) -> dict[str, Any] | None:
        outcome = self.commands.get(command_id)
        return outcome if outcome and outcome.get("tenantId", tenant_id) == tenant_id else None


@dataclass
class FakeGrants:
    chats: dict[str, frozenset[str]] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)  # message id → chat
    issuers: set[tuple[str, str]] = field(default_factory=set)

    async def assigned_chats(self, user_id: str) -> frozenset[str]:
        return self.chats.get(user_id, frozenset())

    async def message_chat(self, tenant_id: str, session_id: str, message_id: str) -> str | None:
        return self.messages.get(message_id)

    async def record_issuer(self, command_id: str, user_id: str) -> None:
        self.issuers.add((command_id, user_id))

    async def issued_by(self, command_id: str, user_id: str) -> bool:
        return (command_id, user_id) in self.issuers


class FakePrincipals:
    """PrincipalSource in memory; counts lookups so tests can see the cache working."""

    def __init__(self) -> None:
        self.users: dict[uuid.UUID, UserAuth] = {}
        self.keys: dict[bytes, KeyAuth] = {}
        self.lookups = 0

    def add_key(self, tenant_id: str, plan: str = "default", session_ids: frozenset[str] | None = None) -> str:
        key = apikeys.new_key()
        self.keys[apikeys.digest(key)] = KeyAuth(str(uuid.uuid4()), tenant_id, session_ids, plan)
        return key

    async def user_auth(self, user_id: uuid.UUID) -> UserAuth | None:
        self.lookups += 1
        return self.users.get(user_id)

    async def key_auth(self, digest: bytes) -> KeyAuth | None:
        self.lookups += 1
        return self.keys.get(digest)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def signer() -> TokenSigner:
    from pydantic import SecretStr

    return TokenSigner(JwtSettings(keys={"k1": SecretStr(SECRET)}, active_kid="k1"))


def limiter(clock: Clock | None = None, per_key: str = "1000/1", per_tenant: str = "2000/1",
            tiny: tuple[str, str] = ("3/60", "5/60")) -> RateLimiter:
    plans = {"default": PlanLimits(per_key=per_key, per_tenant=per_tenant),
             "tiny": PlanLimits(per_key=tiny[0], per_tenant=tiny[1])}
    return RateLimiter(ApiRateLimits(plans=plans), clock=clock or Clock())


@dataclass
class World:
    bus: FakeBus
    idem: FakeIdempotency
    sessions: FakeSessions
    grants: FakeGrants
    access: Access
    commands: Commands


def world() -> World:
    bus, idem, sessions, grants = FakeBus(), FakeIdempotency(), FakeSessions(), FakeGrants()
    access = Access(sessions, grants)
    return World(bus, idem, sessions, grants, access, Commands(bus, idem, access))


def machine(tenant: str, sessions: frozenset[str] | None = None) -> Principal:
    return Principal(tenant_id=tenant, role="machine", key_id="k-" + tenant, session_ids=sessions)


def user(tenant: str, role: str = "owner") -> Principal:
    return Principal(tenant_id=tenant, role=role, user_id=str(uuid.uuid4()))


def authenticator(source: FakePrincipals, clock: Clock | None = None, rate: RateLimiter | None = None,
                  ttl_s: float = 60.0) -> Authenticator:
    return Authenticator(source, signer(), rate or limiter(clock), ttl_s=ttl_s, clock=clock or Clock())
