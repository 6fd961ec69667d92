"""Messages: send (text or media), mark read, edit, delete, react.

A send is recorded as an intent in the command's transaction and handed to the send
pipeline after the commit; the others are idempotent calls made inside the transaction.
"""

from __future__ import annotations

from session_runner.handlers.base import Context, Handler
from zapstream_contracts import commands as c
from zapstream_contracts import payloads as p
from zapstream_domain.jids import normalize_jid


async def send(ctx: Context) -> None:
    session = ctx.decide()
    if not ctx.events:
        return  # a copy of a command already handled: its first copy is sent or on its way
    intent = getattr(ctx.events[-1], "payload", None)
    assert isinstance(intent, p.SendRequested)
    ctx.effects.sends.append((session.session_id, intent, ctx.trace))


async def read(ctx: Context) -> None:
    session = ctx.decide()
    cmd: c.ReadMessages = ctx.command

    async def call() -> str:
        chat = normalize_jid(cmd.chat_jid)
        await ctx.driver.mark_read(session.session_id, chat, cmd.message_ids)
        return chat

    chat = await ctx.effect(call)
    if chat is not None:
        session.record_read_by_me(ctx.at, chat, cmd.message_ids, int(ctx.at.timestamp()))
        ctx.succeeded()


async def edit(ctx: Context) -> None:
    session = ctx.decide()
    cmd: c.EditMessage = ctx.command

    async def call() -> tuple[str, int]:
        chat = normalize_jid(cmd.chat_jid)
        return chat, await ctx.driver.edit_message(session.session_id, chat, cmd.message_id, cmd.content)

    done = await ctx.effect(call)
    if done is not None:
        chat, ts = done
        session.record_edits(ctx.at, [p.MessageEdit(message_id=cmd.message_id, chat_jid=chat, text=cmd.content,
                                                    edited_at=ts, from_me=True)])
        ctx.succeeded()


async def delete(ctx: Context) -> None:
    session = ctx.decide()
    cmd: c.DeleteMessage = ctx.command

    async def call() -> tuple[str, int]:
        chat = normalize_jid(cmd.chat_jid)
        return chat, await ctx.driver.revoke_message(session.session_id, chat, cmd.message_id)

    done = await ctx.effect(call)
    if done is not None:
        chat, ts = done
        session.record_revokes(ctx.at, [p.MessageDelete(message_id=cmd.message_id, deleted_at=ts, chat_jid=chat,
                                                        from_me=True)])
        ctx.succeeded()


async def react(ctx: Context) -> None:
    session = ctx.decide()
    cmd: c.ReactToMessage = ctx.command
    me = f"{session.phone}@s.whatsapp.net" if session.phone else ""

    async def call() -> tuple[str, int]:
        chat = normalize_jid(cmd.chat_jid)
        return chat, await ctx.driver.react(session.session_id, chat, cmd.message_id, cmd.emoji or "")

    done = await ctx.effect(call)
    if done is not None:
        chat, ts = done
        session.record_reactions(ctx.at, [p.ReactionEntry(
            message_id=cmd.message_id, chat_jid=chat, actor_jid=me, from_me=True, emoji=cmd.emoji,
            reacted_at=ts, removed=cmd.emoji is None)])
        ctx.succeeded()


HANDLERS: dict[type, Handler] = {
    c.SendMessage: send,
    c.ReadMessages: read,
    c.EditMessage: edit,
    c.DeleteMessage: delete,
    c.ReactToMessage: react,
}
