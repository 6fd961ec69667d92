"""Groups: each operation is a command to the session's runner (202); the invite link waits for its outcome."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from command_api.shared.access import Access
from command_api.shared.commands import Answer, Commands
from command_api.shared.idempotency import Idem
from command_api.shared.problems import Problem
from zapstream_contracts import commands as c
from zapstream_platform.tokens import Principal


class OutcomeStore(Protocol):
    async def command(self, tenant_id: str, command_id: str) -> dict[str, Any] | None: ...


class GroupsStore(Protocol):
    async def groups(self, tenant_id: str, session_id: str) -> list[dict[str, Any]]: ...
    async def group(self, tenant_id: str, session_id: str, jid: str) -> dict[str, Any] | None: ...


class GroupsService:
    def __init__(self, store: GroupsStore, outcomes: OutcomeStore, access: Access, commands: Commands,
                 polls: int = 50, poll_interval_s: float = 0.1) -> None:
        self.store = store
        self.outcomes = outcomes
        self.access = access
        self.commands = commands
        self.polls = polls
        self.poll_interval_s = poll_interval_s

    async def _session(self, who: Principal, session_id: str | None) -> str:
        # Groups are the account's business, like linking it: admins and machines, not agents.
        self.access.manage_sessions(who)
        return await self.access.session_or_404(who, session_id)

    async def listing(self, who: Principal, session_id: str | None) -> dict[str, Any]:
        """The groups of the read model (after a create or a sync); an empty list without a session."""
        self.access.manage_sessions(who)
        sid = await self.access.session_for(who, session_id)
        if sid is None:
            return {"sessionId": None, "groups": []}
        return {"sessionId": sid, "groups": await self.store.groups(who.tenant_id, sid)}

    async def get(self, who: Principal, jid: str, session_id: str | None) -> dict[str, Any]:
        sid = await self._session(who, session_id)
        group = await self.store.group(who.tenant_id, sid, jid)
        if group is None:
            raise Problem(404, "group not found (POST /groups/sync lists the account's groups)")
        return group

    async def create(self, who: Principal, idem: Idem, traceparent: str | None, subject: str,
                     participants: list[str], session_id: str | None) -> Answer:
        sid = await self._session(who, session_id)
        return await self.commands.accept(who, idem, traceparent, c.CreateGroup, sid, subject=subject,
                                          participants=participants)

    async def participants(self, who: Principal, idem: Idem, traceparent: str | None, group: str, action: str,
                           participants: list[str], session_id: str | None) -> Answer:
        sid = await self._session(who, session_id)
        return await self.commands.accept(who, idem, traceparent, c.UpdateGroupParticipants, sid,
                                          group_jid=group, action=action, participants=participants)

    async def leave(self, who: Principal, idem: Idem, traceparent: str | None, group: str,
                    session_id: str | None) -> Answer:
        sid = await self._session(who, session_id)
        return await self.commands.accept(who, idem, traceparent, c.LeaveGroup, sid, group_jid=group)

    async def sync(self, who: Principal, idem: Idem, traceparent: str | None, session_id: str | None) -> Answer:
        sid = await self._session(who, session_id)
        return await self.commands.accept(who, idem, traceparent, c.SyncGroups, sid)

    async def invite_link(self, who: Principal, idem: Idem, traceparent: str | None, group: str, reset: bool,
                          session_id: str | None) -> tuple[dict[str, Any], bool, bool]:
        """(answer, replayed, done): the link once the runner has it, else the accepted command to poll."""
        sid = await self._session(who, session_id)
        accepted, replayed = await self.commands.accept(who, idem, traceparent, c.GetGroupInviteLink, sid,
                                                        group_jid=group, reset=reset)
        command_id = accepted["commandId"]
        for _ in range(self.polls):  # the link comes back through Kafka and the projector
            outcome = await self.outcomes.command(who.tenant_id, command_id)
            if outcome is not None:
                if outcome["status"] == "failed":
                    raise Problem(409, outcome["reason"] or "WhatsApp refused", code=outcome["code"],
                                  commandId=command_id)
                result = outcome["result"]
                return {"commandId": command_id, "groupJid": result["groupJid"],
                        "inviteLink": result["inviteLink"]}, replayed, True
            await asyncio.sleep(self.poll_interval_s)
        return accepted, replayed, False
