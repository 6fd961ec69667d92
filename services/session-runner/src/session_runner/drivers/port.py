"""The WhatsApp driver port.

Shaped after neonize's async client (``NewAClient``): one connection per linked
device, calls for connect / pair-by-code / send / mark-read, and a stream of
events (QR, message, receipt, presence, history sync, disconnected, logged out).

Adapters: ``SimDriver`` (talks to the simulator process) and, later,
``NeonizeDriver``. Both must pass ``tests/integration/test_driver_contract.py``.

Delivery guarantee: every inbound event carries a per-device ``seq``. The
server (simulator or WhatsApp) re-delivers everything after the last
acknowledged ``seq`` when the device reconnects, so the runner calls
:meth:`WhatsAppDriver.ack` only after the resulting domain events are committed
to Kafka. That is what makes a runner crash lose nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

ReceiptStatus = Literal["delivered", "read", "played"]
Presence = Literal["available", "unavailable", "composing", "paused", "recording"]


@dataclass(frozen=True, slots=True)
class QrCode:
    """A new QR code to show the user; it stops being valid at ``expires_at`` (epoch ms)."""

    seq: int
    code: str
    expires_at_ms: int


@dataclass(frozen=True, slots=True)
class Connected:
    """The device is linked and online; ``phone`` is the account's E.164 digits."""

    seq: int
    phone: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection dropped; the device is still linked.

    ``seq`` is 0 when the driver itself noticed (nothing to acknowledge).
    ``replaced`` is True when a newer connection took the device over, as
    during failover: the session is not down, it has moved.
    """

    seq: int
    reason: str
    replaced: bool = False


@dataclass(frozen=True, slots=True)
class LoggedOut:
    """The device was unlinked (from the phone or by the server); credentials are void."""

    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message in one of the device's chats (sent by a contact, or by this account elsewhere)."""

    seq: int
    id: str
    chat_jid: str
    sender_jid: str
    from_me: bool
    timestamp: int  # epoch seconds
    text: str | None
    reply_to_id: str | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    """Delivery/read receipts for messages this device sent."""

    seq: int
    chat_jid: str
    message_ids: tuple[str, ...]
    status: ReceiptStatus
    timestamp: int  # epoch seconds


@dataclass(frozen=True, slots=True)
class PresenceUpdate:
    seq: int
    chat_jid: str
    jid: str
    presence: Presence
    last_seen: int | None = None


@dataclass(frozen=True, slots=True)
class HistorySync:
    """One batch of history sent after first pairing."""

    seq: int
    sync_type: str
    progress: int
    is_latest: bool
    messages: tuple[IncomingMessage, ...] = field(default_factory=tuple)
    contacts: tuple[tuple[str, str | None], ...] = field(default_factory=tuple)  # (jid, push name)


DriverEvent = (
    QrCode | Connected | Disconnected | LoggedOut | IncomingMessage | Receipt | PresenceUpdate | HistorySync
)

EventHandler = Callable[[str, DriverEvent], Awaitable[None]]
"""Called as ``handler(session_id, event)``; events of one session arrive in order."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the server answered to a send: the id it kept and its timestamp (epoch seconds)."""

    message_id: str
    timestamp: int
    duplicate: bool = False  # True when the server had already accepted this id


class DriverError(Exception):
    """A call the driver could not complete (not connected, server refused, ...).

    The request certainly did not take effect, unless it is an :class:`OutcomeUnknown`.
    """


class OutcomeUnknown(DriverError):
    """The request was sent but its answer was lost: it may or may not have taken effect."""


class WhatsAppDriver(Protocol):
    """Port through which the session runner drives WhatsApp connections."""

    supports_client_message_ids: bool
    """True when ``send_text`` honours the caller's ``message_id`` (safe re-send)."""

    async def connect(self, session_id: str, on_event: EventHandler) -> None:
        """Open (or resume) the device for ``session_id``.

        Unlinked devices then emit :class:`QrCode` events; linked ones emit
        :class:`Connected`. Returns once the connection is open.
        """

    async def pair_code(self, session_id: str, phone: str) -> str:
        """Ask for a pairing code to type on the phone instead of scanning a QR."""

    async def send_text(
        self,
        session_id: str,
        to_jid: str,
        text: str,
        *,
        message_id: str,
        reply_to_id: str | None = None,
    ) -> SendResult:
        """Send a text; idempotent on ``message_id`` where supported."""

    async def mark_read(self, session_id: str, chat_jid: str, message_ids: list[str]) -> None:
        """Send read receipts for messages received in ``chat_jid``."""

    async def ack(self, session_id: str, seq: int) -> None:
        """Tell the server every event up to ``seq`` is durably handled."""

    async def disconnect(self, session_id: str) -> None:
        """Close the connection, keeping the device linked."""

    async def logout(self, session_id: str) -> None:
        """Unlink the device; its credentials become void."""

    async def aclose(self) -> None:
        """Close every connection this driver holds."""
