"""Domain errors: every rejection carries a reason a client can read."""

from __future__ import annotations


class DomainError(Exception):
    """Base class for errors raised by the domain."""


class CommandRejected(DomainError):
    """A command is not allowed in the aggregate's current state."""

    def __init__(self, reason: str, code: str = "rejected") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class InvalidJid(DomainError):
    """A phone number or JID that WhatsApp would not accept."""
