"""Session lifecycle: create, start, stop (with its reason), delete, pair by code."""

from __future__ import annotations

from session_runner.handlers.base import Context, Handler
from zapstream_contracts import commands as c


async def create_or_start(ctx: Context) -> None:
    """A new session, or a stopped one started again: connect once the decision is committed."""
    session = ctx.decide()
    ctx.succeeded()
    ctx.effects.connect.append(session.session_id)


async def stop(ctx: Context) -> None:
    session = ctx.decide()
    ctx.succeeded()
    # ``logout`` unlinks the device and erases its credentials; a plain stop keeps it linked
    # so that a later start reconnects without a QR.
    if session.status == "logged_out":
        ctx.effects.logout.append(session.session_id)
    else:
        ctx.effects.disconnect.append(session.session_id)


async def delete(ctx: Context) -> None:
    session = ctx.decide()
    ctx.succeeded()
    ctx.effects.logout.append(session.session_id)


async def pair_code(ctx: Context) -> None:
    session = ctx.decide()
    cmd: c.RequestPairCode = ctx.command
    code = await ctx.effect(lambda: ctx.driver.pair_code(session.session_id, cmd.phone))
    if code is not None:
        # The code is a secret: it goes to the secrets topic with the success, never to the event log.
        ctx.secret = code
        ctx.succeeded({"phone": cmd.phone})


HANDLERS: dict[type, Handler] = {
    c.CreateSession: create_or_start,
    c.StartSession: create_or_start,
    c.StopSession: stop,
    c.DeleteSession: delete,
    c.RequestPairCode: pair_code,
}
