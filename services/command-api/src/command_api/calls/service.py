"""Calls: the per-session setting, as a command to the session's runner."""

from __future__ import annotations

from command_api.shared.access import Access
from command_api.shared.commands import Answer, Commands
from command_api.shared.idempotency import Idem
from zapstream_contracts import commands as c
from zapstream_platform.tokens import Principal


class CallsService:
    def __init__(self, access: Access, commands: Commands) -> None:
        self.access = access
        self.commands = commands

    async def configure(self, who: Principal, idem: Idem, traceparent: str | None, session_id: str,
                        reject: bool, reply_text: str | None) -> Answer:
        self.access.manage_sessions(who)
        sid = await self.access.owned(who, session_id)
        return await self.commands.accept(who, idem, traceparent, c.ConfigureCalls, sid, reject_calls=reject,
                                          reply_text=reply_text if reject else None)
