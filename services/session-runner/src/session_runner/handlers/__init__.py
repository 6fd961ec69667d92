"""Command handlers: one module per command family, one entry per command type.

The runtime (:mod:`session_runner.partition`) only polls, looks the handler up here,
and commits. A handler decides (through the pure domain), runs WhatsApp calls whose
repetition is harmless inside the transaction, and lists the effects that must wait
for the commit (connections, sends). Adding a command type touches its family's
module and :data:`HANDLERS`.
"""

from __future__ import annotations

from session_runner.handlers import calls, groups, lifecycle, messages, photos, presence
from session_runner.handlers.base import Context, Effects, Handler

HANDLERS: dict[type, Handler] = {**lifecycle.HANDLERS, **messages.HANDLERS, **presence.HANDLERS,
                                 **groups.HANDLERS, **calls.HANDLERS, **photos.HANDLERS}

__all__ = ["HANDLERS", "Context", "Effects", "Handler"]
