"""Tenant administration: agents (seed 003's "stations"), their chat assignments, and API keys for machines.

Only the tenant's owner and admins may use these routes; agents and API keys
get 403. Ids of another tenant are indistinguishable from missing ones (404).
Every change is written with its outbox event in one transaction.
"""


import uuid
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field

from command_api import outbox
from command_api.auth import AuthService, Body, NewUserBody, hash_password, parse, user_event, user_view
from command_api.problems import Problem
from zapstream_domain.errors import InvalidJid
from zapstream_domain.jids import normalize_jid
from zapstream_platform import apikeys
from zapstream_platform.http import JsonResponse
from zapstream_platform.tokens import Principal


class AssignBody(Body):
    chat_jid: str = Field(min_length=1, max_length=200)


class ApiKeyBody(Body):
    name: str = Field(min_length=1, max_length=200)
    session_ids: list[str] | None = Field(default=None, max_length=100)


def jid_or_422(raw: str) -> str:
    try:
        return normalize_jid(raw)
    except InvalidJid as exc:
        raise Problem(422, str(exc)) from exc


def require_admin(who: Principal) -> None:
    if not who.is_admin:
        raise Problem(403, "only the tenant's owner and admins may do this")


def build_identity_router(pool: asyncpg.Pool, service: AuthService, principal: Any) -> APIRouter:
    router = APIRouter(tags=["identity"])
    Who = Annotated[Principal, Depends(principal)]

    async def member(conn: asyncpg.Connection | asyncpg.Pool, who: Principal, user_id: str,
                     lock: bool = False) -> asyncpg.Record:
        try:
            uid = uuid.UUID(user_id)
        except ValueError as exc:
            raise Problem(404, "user not found") from exc
        row = await conn.fetchrow(
            f"SELECT * FROM users WHERE id = $1 AND tenant_id = $2 {'FOR UPDATE' if lock else ''}",
            uid, who.tenant_id)
        if row is None:
            raise Problem(404, "user not found")
        return row

    # -- agents --

    @router.post("/agents", status_code=201)
    async def create_agent(who: Who, request: Request) -> JsonResponse:
        require_admin(who)
        body = await parse(request, NewUserBody)
        if body.role == "admin" and who.role != "owner":
            raise Problem(403, "only the owner may create admins")
        password_hash = await hash_password(body.password)
        try:
            async with pool.acquire() as conn, conn.transaction():
                # Created by an admin who vouches for the address: verified from the start.
                row = await conn.fetchrow(
                    """INSERT INTO users (id, tenant_id, email, name, password_hash, role, email_verified_at, created_by)
                       VALUES ($1, $2, $3, $4, $5, $6, now(), $7) RETURNING *""",
                    uuid.uuid4(), who.tenant_id, body.email, body.name, password_hash, body.role,
                    uuid.UUID(who.user_id) if who.user_id else None)
                assert row is not None
                await outbox.record(conn, "user.created", who.tenant_id, user_event(row) | {"createdBy": who.user_id})
        except asyncpg.UniqueViolationError as exc:
            raise Problem(409, "an account with this e-mail address already exists") from exc
        return JsonResponse(user_view(row), status_code=201)

    @router.get("/agents")
    async def list_agents(who: Who) -> JsonResponse:
        require_admin(who)
        rows = await pool.fetch(
            "SELECT * FROM users WHERE tenant_id = $1 AND role <> 'owner' ORDER BY created_at, id", who.tenant_id)
        return JsonResponse({"agents": [user_view(r) for r in rows]})

    async def set_disabled(who: Who, user_id: str, disabled: bool) -> JsonResponse:
        require_admin(who)
        async with pool.acquire() as conn, conn.transaction():
            row = await member(conn, who, user_id, lock=True)
            if row["role"] == "owner" or (row["role"] == "admin" and who.role != "owner"):
                raise Problem(403, "you may not change this user")
            row = await conn.fetchrow(
                f"UPDATE users SET disabled_at = {'coalesce(disabled_at, now())' if disabled else 'NULL'}, "
                "updated_at = now() WHERE id = $1 RETURNING *", row["id"])
            assert row is not None
            if disabled:
                await service.revoke_everything(conn, row["id"])
            await outbox.record(conn, "user.disabled" if disabled else "user.enabled", who.tenant_id,
                                {"userId": str(row["id"]), "by": who.user_id})
        return JsonResponse(user_view(row))

    @router.post("/agents/{user_id}/disable")
    async def disable(user_id: str, who: Who) -> JsonResponse:
        return await set_disabled(who, user_id, True)

    @router.post("/agents/{user_id}/enable")
    async def enable(user_id: str, who: Who) -> JsonResponse:
        return await set_disabled(who, user_id, False)

    # -- chat assignments --

    @router.get("/agents/{user_id}/chats")
    async def list_assignments(user_id: str, who: Who) -> JsonResponse:
        require_admin(who)
        row = await member(pool, who, user_id)
        rows = await pool.fetch(
            "SELECT chat_jid, assigned_at FROM chat_assignments WHERE user_id = $1 ORDER BY chat_jid", row["id"])
        return JsonResponse({"userId": str(row["id"]),
                             "chats": [{"chatJid": r["chat_jid"], "assignedAt": r["assigned_at"].isoformat()}
                                       for r in rows]})

    @router.post("/agents/{user_id}/chats", status_code=201)
    async def assign(user_id: str, who: Who, request: Request) -> JsonResponse:
        require_admin(who)
        body = await parse(request, AssignBody)
        chat = jid_or_422(body.chat_jid)
        async with pool.acquire() as conn, conn.transaction():
            row = await member(conn, who, user_id)
            if row["role"] != "agent":
                raise Problem(422, "chats are assigned to agents only")
            added = await conn.fetchval(
                """INSERT INTO chat_assignments (tenant_id, user_id, chat_jid, assigned_by) VALUES ($1, $2, $3, $4)
                   ON CONFLICT DO NOTHING RETURNING true""",
                who.tenant_id, row["id"], chat, uuid.UUID(who.user_id) if who.user_id else None)
            if added:
                await outbox.record(conn, "chat.assigned", who.tenant_id,
                                    {"userId": str(row["id"]), "chatJid": chat, "by": who.user_id})
        return JsonResponse({"userId": str(row["id"]), "chatJid": chat}, status_code=201)

    @router.delete("/agents/{user_id}/chats/{jid}", status_code=204)
    async def unassign(user_id: str, jid: str, who: Who) -> Response:
        require_admin(who)
        chat = jid_or_422(jid)
        async with pool.acquire() as conn, conn.transaction():
            row = await member(conn, who, user_id)
            removed = await conn.fetchval(
                "DELETE FROM chat_assignments WHERE user_id = $1 AND chat_jid = $2 RETURNING true", row["id"], chat)
            if not removed:
                raise Problem(404, "chat not assigned to this agent")
            await outbox.record(conn, "chat.unassigned", who.tenant_id,
                                {"userId": str(row["id"]), "chatJid": chat, "by": who.user_id})
        return Response(status_code=204)

    # -- API keys --

    @router.post("/api-keys", status_code=201)
    async def create_key(who: Who, request: Request) -> JsonResponse:
        require_admin(who)
        body = await parse(request, ApiKeyBody)
        scope: list[str] | None = None
        if body.session_ids is not None:
            try:
                ids = sorted({uuid.UUID(s) for s in body.session_ids})
            except ValueError as exc:
                raise Problem(422, "sessionIds must be session ids") from exc
            owned = await pool.fetchval(
                "SELECT count(*) FROM session_registry WHERE tenant_id = $1 AND id = ANY($2::uuid[])",
                who.tenant_id, ids)
            if owned != len(ids):
                raise Problem(404, "session not found")
            scope = [str(s) for s in ids]
        key = apikeys.new_key()
        async with pool.acquire() as conn, conn.transaction():
            await apikeys.create_key(conn, who.tenant_id, body.name, key=key, session_ids=scope,
                                     created_by=who.user_id)
            row = await conn.fetchrow("SELECT * FROM api_keys WHERE key_hash = $1", apikeys.digest(key))
            assert row is not None
            await outbox.record(conn, "apikey.created", who.tenant_id,
                                {"keyId": str(row["id"]), "name": body.name, "sessionIds": scope, "by": who.user_id})
        # The clear key exists only in this answer.
        return JsonResponse(apikeys.view(row) | {"key": key}, status_code=201, headers={"Cache-Control": "no-store"})

    @router.get("/api-keys")
    async def list_keys(who: Who) -> JsonResponse:
        require_admin(who)
        return JsonResponse({"apiKeys": await apikeys.list_keys(pool, who.tenant_id)})

    @router.delete("/api-keys/{key_id}", status_code=204)
    async def revoke_key(key_id: str, who: Who) -> Response:
        require_admin(who)
        async with pool.acquire() as conn, conn.transaction():
            if not await apikeys.revoke(conn, who.tenant_id, key_id):
                raise Problem(404, "API key not found")
            await outbox.record(conn, "apikey.revoked", who.tenant_id, {"keyId": key_id, "by": who.user_id})
        return Response(status_code=204)

    return router
