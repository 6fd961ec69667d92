"""Presence: subscribe to a contact's presence, send our chat state (typing, recording)."""

from __future__ import annotations

from session_runner.handlers.base import Context, Handler
from zapstream_contracts import commands as c
from zapstream_domain.jids import normalize_jid


async def subscribe(ctx: Context) -> None:
    session = ctx.decide()
    cmd: c.SubscribePresence = ctx.command

    async def call() -> str:
        jid = normalize_jid(cmd.jid)
        await ctx.driver.subscribe_presence(session.session_id, jid)
        return jid

    jid = await ctx.effect(call)
    if jid is not None:
        ctx.succeeded({"jid": jid})  # remembered: WhatsApp forgets subscriptions on every reconnect


async def send_presence(ctx: Context) -> None:
    session = ctx.decide()
    cmd: c.SendPresence = ctx.command

    async def call() -> bool:
        await ctx.driver.send_chat_presence(session.session_id, normalize_jid(cmd.chat_jid), cmd.presence)
        return True

    if await ctx.effect(call):
        ctx.succeeded()


HANDLERS: dict[type, Handler] = {
    c.SubscribePresence: subscribe,
    c.SendPresence: send_presence,
}
