"""Tenant administration of agents: create, list, disable/enable, assign chats.

Only the owner and admins may use these; ids of another tenant look missing (404). Every
change is written with its outbox event in one transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from command_api.agents.repository import AgentsRepository
from command_api.agents.schemas import NewAgentBody
from command_api.identity.repository import IdentityRepository
from command_api.identity.service import IdentityService, hash_password, user_event, user_view
from command_api.shared import mailer, outbox
from command_api.shared.bodies import jid_or_422
from command_api.shared.problems import Problem
from command_api.shared.security import require_admin
from zapstream_platform.tokens import Principal

CREATED_DETAIL = ("the agent can sign in with this address and password, unless the address already had an "
                  "account (its owner was told); GET /agents lists the tenant's agents")


class AgentsService:
    def __init__(self, repo: AgentsRepository, users: IdentityRepository, identity: IdentityService) -> None:
        self.repo = repo
        self.users = users
        self.identity = identity

    async def _member(self, conn: Any, who: Principal, user_id: str, lock: bool = False) -> asyncpg.Record:
        try:
            uid = uuid.UUID(user_id)
        except ValueError as exc:
            raise Problem(404, "user not found") from exc
        row = await self.repo.member(conn, who.tenant_id, uid, lock)
        if row is None:
            raise Problem(404, "user not found")
        return row

    async def create(self, who: Principal, body: NewAgentBody) -> dict[str, Any]:
        """Created verified (an admin vouches for the address). An address that already has an account, in
        this tenant or another, gets the same answer and its owner a notice: nothing tells which."""
        require_admin(who)
        if body.role == "admin" and who.role != "owner":
            raise Problem(403, "only the owner may create admins")
        password_hash = await hash_password(body.password)
        try:
            async with self.users.transaction() as conn:
                row = await self.users.insert_user(
                    conn, uuid.uuid4(), who.tenant_id, str(body.email), body.name, password_hash, body.role,
                    verified=True, created_by=uuid.UUID(who.user_id) if who.user_id else None)
                await outbox.record(conn, "user.created", who.tenant_id, user_event(row) | {"createdBy": who.user_id})
        except asyncpg.UniqueViolationError:
            async with self.users.transaction() as conn:
                existing = await self.users.user_by_email(conn, str(body.email))
                if existing is not None:
                    subject, text = mailer.existing_account_mail(
                        existing["name"], self.identity.link("/login"),
                        self.identity.link("/reset-password", email=existing["email"]))
                    await mailer.enqueue(conn, existing["email"], subject, text)
        return {"status": "accepted", "email": str(body.email), "detail": CREATED_DETAIL}

    async def list(self, who: Principal) -> list[dict[str, Any]]:
        require_admin(who)
        return [user_view(r) for r in await self.repo.members(who.tenant_id)]

    async def set_disabled(self, who: Principal, user_id: str, disabled: bool) -> dict[str, Any]:
        require_admin(who)
        async with self.users.transaction() as conn:
            row = await self._member(conn, who, user_id, lock=True)
            if row["role"] == "owner" or (row["role"] == "admin" and who.role != "owner"):
                raise Problem(403, "you may not change this user")
            row = await self.repo.set_disabled(conn, row["id"], disabled)
            if disabled:
                await self.identity.revoke_everything(conn, row["id"], who.tenant_id)
            await outbox.record(conn, "user.disabled" if disabled else "user.enabled", who.tenant_id,
                                {"userId": str(row["id"]), "by": who.user_id})
        self.identity.evict(who.tenant_id)
        return user_view(row)

    async def assignments(self, who: Principal, user_id: str) -> dict[str, Any]:
        require_admin(who)
        row = await self._member(None, who, user_id)
        rows = await self.repo.assignments(row["id"])
        return {"userId": str(row["id"]),
                "chats": [{"chatJid": r["chat_jid"], "assignedAt": r["assigned_at"].isoformat()} for r in rows]}

    async def assign(self, who: Principal, user_id: str, chat_jid: str) -> dict[str, Any]:
        require_admin(who)
        chat = jid_or_422(chat_jid)
        async with self.users.transaction() as conn:
            row = await self._member(conn, who, user_id)
            if row["role"] != "agent":
                raise Problem(422, "chats are assigned to agents only")
            by = uuid.UUID(who.user_id) if who.user_id else None
            if await self.repo.assign(conn, who.tenant_id, row["id"], chat, by):
                await outbox.record(conn, "chat.assigned", who.tenant_id,
                                    {"userId": str(row["id"]), "chatJid": chat, "by": who.user_id})
        return {"userId": str(row["id"]), "chatJid": chat}

    async def unassign(self, who: Principal, user_id: str, jid: str) -> None:
        require_admin(who)
        chat = jid_or_422(jid)
        async with self.users.transaction() as conn:
            row = await self._member(conn, who, user_id)
            if not await self.repo.unassign(conn, row["id"], chat):
                raise Problem(404, "chat not assigned to this agent")
            await outbox.record(conn, "chat.unassigned", who.tenant_id,
                                {"userId": str(row["id"]), "chatJid": chat, "by": who.user_id})
