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

from zapstream_contracts.payloads import ContactCard, GroupInfo, Location, Poll

Rich = Location | ContactCard | Poll
"""A location, contact card or poll: the domain's own value types (pure data, no I/O)."""

ReceiptStatus = Literal["delivered", "read", "played"]
Presence = Literal["available", "unavailable", "composing", "paused", "recording"]
MediaKind = Literal["image", "video", "audio", "document", "sticker"]
GroupAction = Literal["add", "remove", "promote", "demote"]


@dataclass(frozen=True, slots=True)
class OutgoingMedia:
    """A file to send, already in its final form on local disk.

    The driver reads ``path`` and uploads it to WhatsApp's media servers itself
    (neonize: ``client.upload``; the simulator: its media endpoint). ``ptt``
    marks an audio as a voice note; it must then be Opus in OGG.
    """

    path: str
    kind: MediaKind
    mime: str
    size: int
    file_name: str | None = None
    caption: str | None = None
    ptt: bool = False
    width: int | None = None
    height: int | None = None
    duration: int | None = None  # seconds


@dataclass(frozen=True, slots=True)
class IncomingMedia:
    """Media attached to a received message, as the message describes it.

    The bytes are not in the event: fetch them with :meth:`WhatsAppDriver.download_media`.
    ``handle`` is the driver's own locator for them (simulator: the media URL;
    neonize: the serialized ``Message``); nothing outside the driver reads it.
    """

    kind: MediaKind
    mime: str
    handle: str
    size: int | None = None
    file_name: str | None = None
    ptt: bool = False
    width: int | None = None
    height: int | None = None
    duration: int | None = None  # seconds


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
    text: str | None  # for media: the caption
    reply_to_id: str | None = None
    forwarded: bool = False
    push_name: str | None = None
    media: IncomingMedia | None = None
    rich: Rich | None = None  # a location, contact card or poll (``text`` is then None)
    mentions: tuple[str, ...] = ()  # JIDs @-mentioned in the text


@dataclass(frozen=True, slots=True)
class MessageEdited:
    """A message's text was edited (by its author, from any device)."""

    seq: int
    chat_jid: str
    message_id: str
    text: str
    timestamp: int
    from_me: bool


@dataclass(frozen=True, slots=True)
class MessageRevoked:
    """A message was deleted for everyone."""

    seq: int
    chat_jid: str
    message_id: str
    timestamp: int
    from_me: bool


@dataclass(frozen=True, slots=True)
class ChatCleared:
    """Every message of a chat was deleted (e.g. "clear chat" on the phone)."""

    seq: int
    chat_jid: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class Reaction:
    """A reaction set on a message; ``emoji == ""`` means the actor removed theirs."""

    seq: int
    chat_jid: str
    message_id: str
    actor_jid: str
    emoji: str
    timestamp: int
    from_me: bool


@dataclass(frozen=True, slots=True)
class ContactsUpdate:
    """Contacts and push names learned by the device: (jid, saved name, push name)."""

    seq: int
    contacts: tuple[tuple[str, str | None, str | None], ...]


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
class GroupParticipantsChanged:
    """Someone (``author``) changed a group's participants: ``add``, ``remove``, ``promote``, ``demote`` or
    ``leave`` (participants who left on their own)."""

    seq: int
    group_jid: str
    action: Literal["add", "remove", "promote", "demote", "leave"]
    participants: tuple[str, ...]
    author: str | None = None


@dataclass(frozen=True, slots=True)
class PollVote:
    """A voter's current choice on a poll: by option name (``options``) or, as WhatsApp encrypts votes,
    by the SHA-256 hex of each option name (``option_hashes``); empty withdraws the vote."""

    seq: int
    chat_jid: str
    poll_id: str
    voter_jid: str
    timestamp: int
    options: tuple[str, ...] | None = None
    option_hashes: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """Someone is calling the account (a call offer); reject it with :meth:`WhatsAppDriver.reject_call`."""

    seq: int
    call_id: str
    caller_jid: str
    timestamp: int
    video: bool = False
    group: bool = False


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
    QrCode
    | Connected
    | Disconnected
    | LoggedOut
    | IncomingMessage
    | Receipt
    | PresenceUpdate
    | HistorySync
    | MessageEdited
    | MessageRevoked
    | ChatCleared
    | Reaction
    | ContactsUpdate
    | IncomingCall
    | PollVote
    | GroupParticipantsChanged
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
        forwarded: bool = False,
        mentions: tuple[str, ...] = (),
    ) -> SendResult:
        """Send a text; idempotent on ``message_id`` where supported. ``mentions`` are the JIDs the text
        @-mentions (``@<digits>`` in the text), for group chats.

        ``reply_to_id`` quotes a message of the same chat; ``forwarded`` marks the
        text as forwarded (neonize: ``contextInfo.isForwarded``).
        """

    async def send_media(
        self,
        session_id: str,
        to_jid: str,
        media: OutgoingMedia,
        *,
        message_id: str,
        reply_to_id: str | None = None,
        forwarded: bool = False,
    ) -> SendResult:
        """Upload ``media.path`` and send it as one message; idempotent on ``message_id`` like ``send_text``.

        Raises :class:`DriverError` when the file cannot be read or the upload is
        refused (nothing was sent), :class:`OutcomeUnknown` when the send's answer is lost.
        """

    async def send_rich(
        self,
        session_id: str,
        to_jid: str,
        content: Rich,
        *,
        message_id: str,
        reply_to_id: str | None = None,
    ) -> SendResult:
        """Send a location, a contact card (vCard) or a poll; idempotent on ``message_id`` like ``send_text``."""

    async def create_group(self, session_id: str, subject: str, participants: list[str]) -> GroupInfo:
        """Create a group with us as owner; returns its metadata (participants that could not be added are
        absent from it)."""

    async def update_group_participants(self, session_id: str, group_jid: str, action: GroupAction,
                                        participants: list[str]) -> list[str]:
        """Add, remove, promote or demote; returns the participants the change applied to."""

    async def leave_group(self, session_id: str, group_jid: str) -> None:
        """Leave the group (it stays in WhatsApp for the others)."""

    async def group_invite_link(self, session_id: str, group_jid: str, reset: bool = False) -> str:
        """The ``https://chat.whatsapp.com/…`` link; ``reset`` revokes the previous one first."""

    async def joined_groups(self, session_id: str) -> list[GroupInfo]:
        """Every group the account is in, with metadata."""

    async def profile_photo(self, session_id: str, jid: str) -> bytes | None:
        """The JPEG of ``jid``'s profile photo (a contact or a group); None when it has none or hides it."""

    async def reject_call(self, session_id: str, caller_jid: str, call_id: str) -> None:
        """Reject a ringing call (harmless when it already ended)."""

    async def download_media(self, session_id: str, media: IncomingMedia, dest_path: str) -> int:
        """Write the bytes of ``media`` to ``dest_path``; returns their size.

        Raises :class:`DriverError` when they cannot be fetched (expired, gone, corrupt).
        """

    async def edit_message(self, session_id: str, chat_jid: str, message_id: str, text: str) -> int:
        """Edit one of our own messages; returns the edit's timestamp (epoch seconds)."""

    async def revoke_message(self, session_id: str, chat_jid: str, message_id: str) -> int:
        """Delete a message for everyone; returns the revoke's timestamp."""

    async def react(self, session_id: str, chat_jid: str, message_id: str, emoji: str) -> int:
        """Set our reaction on a message (``""`` removes it); returns its timestamp."""

    async def subscribe_presence(self, session_id: str, jid: str) -> None:
        """Ask to receive :class:`PresenceUpdate` events for ``jid``."""

    async def send_chat_presence(self, session_id: str, chat_jid: str, presence: Presence) -> None:
        """Show ``composing``/``recording``/``paused`` in a chat (typing indicators)."""

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
