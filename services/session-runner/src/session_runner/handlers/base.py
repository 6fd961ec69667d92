"""What a command handler gets (:class:`Context`) and what it leaves for after the commit (:class:`Effects`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opentelemetry.trace import SpanKind

from session_runner.drivers import port as d
from zapstream_contracts import commands as c
from zapstream_contracts import payloads as p
from zapstream_domain.decisions import decide
from zapstream_domain.errors import InvalidJid
from zapstream_domain.session import Session
from zapstream_platform import telemetry


@dataclass
class Effects:
    """Effects to run once the transaction has committed."""

    connect: list[str] = field(default_factory=list)
    disconnect: list[str] = field(default_factory=list)
    logout: list[str] = field(default_factory=list)
    sends: list[tuple[str, p.SendRequested, str | None]] = field(default_factory=list)


@dataclass
class Context:
    """One command being handled inside the partition's open transaction."""

    command: Any
    session: Session | None
    at: datetime
    driver: d.WhatsAppDriver
    effects: Effects
    trace: str | None
    # The runner's media pipeline (its object storage), for handlers that store files; None without storage.
    media: Any = None
    # Events returned by decide(); the runtime publishes them with the session's later ones.
    events: list[Session.Event] = field(default_factory=list)
    # A secret the command obtained (a pairing code): written with its success to the secrets topic only.
    secret: str | None = None

    def decide(self) -> Session:
        """Run the pure decision; raises ``CommandRejected`` (recorded as a failure by the runtime)."""
        session, events = decide(self.session, self.command, self.at)
        assert session is not None
        self.session = session
        self.events.extend(events)
        return session

    def succeeded(self, result: dict[str, str] | None = None) -> None:
        assert self.session is not None
        self.session.record_command_succeeded(self.at, self.command.command_id, self.command.TYPE, result)

    def failed(self, code: str, reason: str) -> None:
        assert self.session is not None
        self.session.record_command_failed(self.at, self.command.command_id, self.command.TYPE, code, reason)

    async def effect(self, call: Callable[[], Awaitable[Any]]) -> Any | None:
        """An idempotent WhatsApp call inside the command's transaction.

        A crash before the commit repeats the call once the command is re-read; repeating
        a read receipt, an edit to the same text, a revoke, a reaction or a presence is
        harmless, and the events still land exactly once. Returns None after recording a
        failure.
        """
        try:
            if not telemetry.enabled():
                return await call()
            # A CLIENT span, child of the command's handling span (partition.py).
            with telemetry.tracer("session-runner").start_as_current_span(
                    f"whatsapp {self.command.TYPE}", kind=SpanKind.CLIENT):
                return await call()
        except d.OutcomeUnknown as exc:
            self.failed("outcome_unknown", str(exc))
        except (d.DriverError, InvalidJid) as exc:
            self.failed("whatsapp_error", str(exc))
        return None


Handler = Callable[[Context], Awaitable[None]]

# Re-exported for handler modules.
Command = c.Command
