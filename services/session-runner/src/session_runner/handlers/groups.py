"""Groups: create, add/remove/promote/demote participants, leave, invite link, list with metadata.

Each is a WhatsApp call made inside the command's transaction, like the other non-send effects,
and its outcome is recorded as ``session.groups.upsert`` / ``session.groups.participants``. One
caveat: creating a group is not idempotent at WhatsApp, so a runner crash after the call and
before the commit re-creates it when the command is re-read (a second group with the same
subject); participant changes, leaving and links repeat harmlessly.
"""

from __future__ import annotations

from session_runner.handlers.base import Context, Handler
from zapstream_contracts import commands as c
from zapstream_contracts import payloads as p
from zapstream_domain.jids import normalize_jid


async def create(ctx: Context) -> None:
    session = ctx.decide()
    cmd: c.CreateGroup = ctx.command

    async def call() -> p.GroupInfo:
        members = [normalize_jid(x) for x in cmd.participants]
        return await ctx.driver.create_group(session.session_id, cmd.subject, members)

    info = await ctx.effect(call)
    if info is not None:
        session.record_groups(ctx.at, [info])
        ctx.succeeded({"groupJid": info.id})


async def participants(ctx: Context) -> None:
    session = ctx.decide()
    cmd: c.UpdateGroupParticipants = ctx.command

    async def call() -> tuple[str, list[str]]:
        group = normalize_jid(cmd.group_jid)
        members = [normalize_jid(x) for x in cmd.participants]
        return group, await ctx.driver.update_group_participants(session.session_id, group, cmd.action, members)

    done = await ctx.effect(call)
    if done is not None:
        group, changed = done
        session.record_group_participants(ctx.at, group, cmd.action, changed, author=_me(session.phone))
        ctx.succeeded({"groupJid": group, "changed": str(len(changed))})


async def leave(ctx: Context) -> None:
    session = ctx.decide()
    cmd: c.LeaveGroup = ctx.command

    async def call() -> str:
        group = normalize_jid(cmd.group_jid)
        await ctx.driver.leave_group(session.session_id, group)
        return group

    group = await ctx.effect(call)
    if group is not None:
        me = _me(session.phone)
        session.record_group_participants(ctx.at, group, "leave", [me] if me else [], author=me)
        ctx.succeeded({"groupJid": group})


async def invite_link(ctx: Context) -> None:
    session = ctx.decide()
    cmd: c.GetGroupInviteLink = ctx.command

    async def call() -> tuple[str, str]:
        group = normalize_jid(cmd.group_jid)
        return group, await ctx.driver.group_invite_link(session.session_id, group, cmd.reset)

    done = await ctx.effect(call)
    if done is not None:
        ctx.succeeded({"groupJid": done[0], "inviteLink": done[1]})


async def sync(ctx: Context) -> None:
    session = ctx.decide()

    async def call() -> list[p.GroupInfo]:
        return await ctx.driver.joined_groups(session.session_id)

    groups = await ctx.effect(call)
    if groups is not None:
        session.record_groups(ctx.at, groups)
        ctx.succeeded({"groups": str(len(groups))})


def _me(phone: str | None) -> str | None:
    return f"{phone}@s.whatsapp.net" if phone else None


HANDLERS: dict[type, Handler] = {
    c.CreateGroup: create,
    c.UpdateGroupParticipants: participants,
    c.LeaveGroup: leave,
    c.GetGroupInviteLink: invite_link,
    c.SyncGroups: sync,
}
