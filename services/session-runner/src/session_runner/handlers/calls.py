"""Calls: the session's setting to reject incoming calls (optionally answering with a text).

The calls themselves are driver events (:func:`session_runner.observe.on_call`): recorded as
``session.call.received``, rejected after the commit when the setting says so, and the auto-reply
goes through the send pipeline as an intent like any send.
"""

from __future__ import annotations

from session_runner.handlers.base import Context, Handler
from zapstream_contracts import commands as c


async def configure(ctx: Context) -> None:
    ctx.decide()
    ctx.succeeded()


HANDLERS: dict[type, Handler] = {c.ConfigureCalls: configure}
