"""The simulated WhatsApp servers: accounts, devices, messages and delivery rules.

Pure, synchronous, in-memory state. It never touches a socket: devices talk to it
through a :class:`Link` (push a frame, close) and it defers work through a
:class:`Scheduler`, so the whole behaviour can be unit-tested with fakes.

Event delivery is at-least-once: every server→device event frame carries a
per-device increasing ``seq``; events are retained until the device acks them and
replayed, in order, when it (re)connects. ``qr``, ``connected`` and ``presence``
events are ephemeral: they are only sent to a live connection and never replayed,
because each (re)connect derives them afresh.

Event types: ``qr``, ``connected``, ``presence`` (ephemeral); ``history_sync``,
``message``, ``receipt``, ``edit``, ``revoke``, ``reaction``, ``chat_clear``,
``contacts``, ``logged_out`` (retained until acked).

Presence: a device subscribes to a JID for the life of its connection (as on
WhatsApp, subscriptions are forgotten when it disconnects; re-subscribe after each
``connected``) and then gets that JID's ``available``/``unavailable`` changes.
Chat states (``composing``/``recording``/``paused``) are sent to every device of the
chat partner, subscribed or not.

Media, as on WhatsApp's CDN: the bytes are uploaded first, over HTTP (the app streams
them to disk and records the upload here with :meth:`Simulator.add_media`), then a
``send`` names the upload by its URL (``/v1/media/<id>``) in a ``media`` object:
``url, kind, mime, size, sha256?, fileName?, ptt?, width?, height?, duration?``. The
URL must be a stored upload, ``kind`` one of image/video/audio/document/sticker,
``size`` (and ``sha256`` when given) must match the upload, ``ptt`` is for audio only;
``text`` is then the caption (``null``/``""``: none). The message keeps the media, so
``message`` events, history syncs and the inbox/outbox views carry the same ``media``
object (every key present: absent ones ``null``, ``ptt`` false; ``media`` is ``null`` for
texts). Revoking a message drops its media. The core never touches the bytes.
"""

from __future__ import annotations

import base64
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from wa_simulator.config import Settings

JID_SUFFIX = "@s.whatsapp.net"

# WebSocket close codes the simulator uses; the driver decides on reconnecting from these.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_DROPPED = 4000  # fault injection: the device may reconnect
CLOSE_REPLACED = 4001  # a newer connection for the same device won: do not reconnect
CLOSE_LOGGED_OUT = 4002  # the device was unlinked: do not reconnect
CLOSE_RESET = 4003  # the simulator forgot everything: do not reconnect

_PAIR_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"
_MAX_ID_LEN = 128
_MAX_EMOJI_LEN = 32
CHAT_STATES = frozenset({"composing", "recording", "paused"})
PRESENCES = frozenset({"available", "unavailable"}) | CHAT_STATES
AUTO_REACT_TOKEN = "#react"  # a scripted contact reacts 👍 to our text containing it
AUTO_REACT_EMOJI = "\N{THUMBS UP SIGN}"
MEDIA_KINDS = frozenset({"image", "video", "audio", "document", "sticker"})
MEDIA_URL_PREFIX = "/v1/media/"
_MEDIA_KEYS = frozenset(
    {"url", "kind", "mime", "size", "sha256", "fileName", "ptt", "width", "height", "duration"}
)


class SimError(Exception):
    """A request the simulator refuses; ``status`` is the HTTP status for control calls."""

    status = 400


class NotFound(SimError):
    status = 404


class Forbidden(SimError):
    status = 403


class Conflict(SimError):
    status = 409


class TooLarge(SimError):
    status = 413


class Link(Protocol):
    """One live device connection, as the core sees it."""

    def push(self, frame: bytes) -> None:
        """Queue an encoded frame for the device (never blocks)."""

    def close(self, code: int, reason: str) -> None:
        """Send the queued frames, then close the connection with ``code``."""


class Timer(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """Clock and deferred calls (asyncio in the server, virtual time in unit tests)."""

    def now(self) -> float:
        """Current time, epoch seconds."""

    def call_later(self, delay: float, fn: Callable[..., None], *args: Any) -> Timer:
        """Run ``fn(*args)`` after ``delay`` seconds."""


def normalize_phone(raw: object) -> str:
    """E.164 digits (a leading ``+`` is tolerated); raises :class:`SimError` otherwise."""
    if not isinstance(raw, str):
        raise SimError("phone must be a string of digits")
    digits = raw[1:] if raw.startswith("+") else raw
    if not (digits.isascii() and digits.isdigit() and 5 <= len(digits) <= 15):
        raise SimError(f"invalid phone number {raw!r}: expected 5-15 E.164 digits")
    return digits


def phone_to_jid(phone: str) -> str:
    return phone + JID_SUFFIX


def jid_to_phone(jid: object) -> str:
    """The phone digits of a user JID; only ``<digits>@s.whatsapp.net`` is supported."""
    if not isinstance(jid, str) or not jid.endswith(JID_SUFFIX):
        raise SimError(f"unsupported JID {jid!r}: expected <digits>{JID_SUFFIX}")
    return normalize_phone(jid[: -len(JID_SUFFIX)])


def _check_id(msg_id: object) -> str:
    if not isinstance(msg_id, str) or not msg_id or len(msg_id) > _MAX_ID_LEN:
        raise SimError(f"message id must be a non-empty string of at most {_MAX_ID_LEN} characters")
    return msg_id


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """An upload of the media store; its bytes are on disk, never in the core."""

    id: str
    size: int
    sha256: str
    mime: str

    @property
    def url(self) -> str:
        return MEDIA_URL_PREFIX + self.id


@dataclass(frozen=True, slots=True)
class MessageMedia:
    """The media a message carries, as its sender described it (size and hash checked against the upload)."""

    url: str
    kind: str
    mime: str
    size: int
    sha256: str
    file_name: str | None = None
    ptt: bool = False
    width: int | None = None
    height: int | None = None
    duration: int | None = None  # seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "kind": self.kind,
            "mime": self.mime,
            "size": self.size,
            "sha256": self.sha256,
            "fileName": self.file_name,
            "ptt": self.ptt,
            "width": self.width,
            "height": self.height,
            "duration": self.duration,
        }


def _optional_count(raw: dict[str, Any], key: str) -> int | None:
    value = raw.get(key)
    # bool is an int subclass; `true` as a width is a client bug, not 1.
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise SimError(f"media.{key} must be a non-negative integer")
    return value


# A 1x1 JPEG: the profile photo every simulated phone has unless told otherwise.
DEFAULT_PHOTO = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f14"
    "1d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffc0000b080001000101011100"
    "ffc4001f0000010501010101010100000000000000000102030405060708090a0bffc400b5100002010303020403050504040000"
    "017d01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a"
    "3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a9293949596"
    "9798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2"
    "f3f4f5f6f7f8f9faffda0008010100003f00fbd3ffd9")


class Message:
    """One accepted message; shared by the sender's outbox and the recipient's inbox."""

    __slots__ = (
        "attempts",
        "deliveries",
        "edited_at",
        "forwarded",
        "id",
        "media",
        "mentions",
        "ordinal",
        "original_text",
        "reactions",
        "read",
        "reply_to",
        "revoked_at",
        "rich",
        "sender",
        "status",
        "text",
        "timestamp",
        "to",
    )

    def __init__(
        self,
        ordinal: int,
        msg_id: str,
        sender: str,
        to: str,
        text: str | None,
        reply_to: str | None,
        timestamp: int,
        forwarded: bool = False,
        media: MessageMedia | None = None,
        rich: dict[str, Any] | None = None,
    ) -> None:
        self.ordinal = ordinal
        self.rich = rich  # a location, contact card or poll, in the runner's wire shape
        self.mentions: list[str] | None = None  # JIDs @-mentioned (groups)
        self.id = msg_id
        self.sender = sender
        self.to = to
        self.text = text
        self.reply_to = reply_to
        self.timestamp = timestamp
        self.attempts = 1  # sends tried with this id by this sender
        self.deliveries = 0  # times it landed in the recipient's inbox; exactly-once means 1
        self.status = "sent"
        self.read = False
        self.forwarded = forwarded
        self.media = media
        self.edited_at: int | None = None
        self.original_text: str | None = None  # the text before the first edit
        self.revoked_at: int | None = None
        self.reactions: dict[str, tuple[str, int]] = {}  # reactor phone -> (emoji, timestamp)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from": self.sender,
            "to": self.to,
            "text": self.text,
            "replyTo": self.reply_to,
            "timestamp": self.timestamp,
            "count": self.deliveries,
            "attempts": self.attempts,
            "status": self.status,
            "read": self.read,
            "forwarded": self.forwarded,
            "edited": self.edited_at is not None,
            "editedAt": self.edited_at,
            "originalText": self.original_text,
            "revoked": self.revoked_at is not None,
            "revokedAt": self.revoked_at,
            "reactions": {phone: emoji for phone, (emoji, _ts) in self.reactions.items()},
            "media": self.media.as_dict() if self.media is not None else None,
            "rich": self.rich,
            "mentions": self.mentions,
        }


class Mailbox:
    """Messages of one phone number, account or scripted contact alike."""

    __slots__ = ("cleared", "inbox", "sent")

    def __init__(self) -> None:
        self.inbox: dict[tuple[str, str], Message] = {}  # (sender, id)
        self.sent: dict[str, Message] = {}  # id -> message: the idempotency table
        self.cleared: dict[str, int] = {}  # chat partner -> last message ordinal cleared ("clear chat")


class Account:
    __slots__ = ("devices", "known", "last_seen", "name", "online", "phone")

    def __init__(self, phone: str, name: str | None) -> None:
        self.phone = phone
        self.name = name
        self.devices: set[str] = set()  # linked session ids
        self.known: set[str] = set()  # numbers whose names the account's devices were told
        self.online = False  # some linked device is connected
        self.last_seen: int | None = None


@dataclass(slots=True)
class ContactBehaviour:
    """How a scripted contact reacts to messages from accounts."""

    auto_reply: bool
    auto_read: bool
    typing: bool
    name: str | None = None  # push name
    saved_name: str | None = None  # the name accounts have it saved under (one shared address book)

    def as_dict(self) -> dict[str, Any]:
        return {
            "autoReply": self.auto_reply,
            "autoRead": self.auto_read,
            "typing": self.typing,
            "name": self.name,
            "savedName": self.saved_name,
        }


class Device:
    """A companion device, keyed by the zapstream session id."""

    __slots__ = (
        "acked",
        "attached_at_ms",
        "connections",
        "detached_at_ms",
        "last_seq",
        "link",
        "pair_code",
        "phone",
        "qr_code",
        "qr_expires_ms",
        "qr_timer",
        "retained",
        "session_id",
        "subscriptions",
    )

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.phone: str | None = None  # set while linked
        self.link: Link | None = None
        self.last_seq = 0
        self.acked = 0
        self.retained: deque[tuple[int, bytes]] = deque()
        self.qr_code: str | None = None
        self.qr_expires_ms = 0
        self.qr_timer: Timer | None = None
        self.pair_code: str | None = None
        self.subscriptions: set[str] = set()  # phones whose presence this connection watches
        # Connection history, for failover figures: how often, and when it last came and went.
        self.connections = 0
        self.attached_at_ms = 0
        self.detached_at_ms = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sessionId": self.session_id,
            "phone": self.phone,
            "linked": self.phone is not None,
            "connected": self.link is not None,
            "lastSeq": self.last_seq,
            "ackedSeq": self.acked,
            "retained": len(self.retained),
            "qr": self.qr_code,
            "presenceSubscriptions": sorted(phone_to_jid(p) for p in self.subscriptions),
            "connections": self.connections,
            "attachedAtMs": self.attached_at_ms,
            "detachedAtMs": self.detached_at_ms,
        }


@dataclass(slots=True)
class Stats:
    send_attempts: int = 0
    messages: int = 0
    duplicates: int = 0
    deliveries: int = 0
    events_emitted: int = 0
    events_replayed: int = 0
    retained_dropped: int = 0
    connections: int = 0
    replaced: int = 0
    media_uploads: int = 0


class Simulator:
    """All simulator state and rules. Every method is synchronous and O(small)."""

    def __init__(self, settings: Settings, scheduler: Scheduler) -> None:
        self.settings = settings
        self.scheduler = scheduler
        self._init_state()

    def _init_state(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.devices: dict[str, Device] = {}
        self.mailboxes: dict[str, Mailbox] = {}
        self.contacts: dict[str, ContactBehaviour] = {}
        self.names: dict[str, str] = {}  # push names
        self.watchers: dict[str, set[str]] = {}  # phone -> session ids subscribed to its presence
        self.contact_presence: dict[str, tuple[str, int | None]] = {}  # scripted: (presence, last seen)
        self.chat_states: dict[str, dict[str, str]] = {}  # scripted contact -> {account phone: state}
        self.qr_index: dict[str, str] = {}  # qr code -> session id
        self.pair_codes: dict[str, tuple[str, str, int]] = {}  # code -> (session id, phone, expires ms)
        self.media: dict[str, StoredMedia] = {}  # upload id -> upload
        self.latency_ms = self.settings.send_latency_ms
        self.stats = Stats()
        from wa_simulator.groups import Groups  # local: that module builds on this one

        self.groups = Groups()
        self.calls: dict[str, dict[str, Any]] = {}  # call id -> {from, to, status, isVideo, timestamp}
        self.photos: dict[str, bytes | None] = {}  # phone -> its profile photo (None: hidden); default below
        self._ordinal = 0
        # Bumped by reset() so callbacks scheduled before it become no-ops.
        self._generation = getattr(self, "_generation", 0) + 1

    # ----------------------------------------------------------------- helpers

    def _now_s(self) -> int:
        return int(self.scheduler.now())

    def now_s(self) -> int:
        return self._now_s()

    def call(self, caller: str, to: str, video: bool = False) -> dict[str, Any]:
        """``caller``'s phone calls account ``to``: every device of ``to`` gets the offer."""
        caller, to = normalize_phone(caller), normalize_phone(to)
        if self._linked_account(to) is None:
            raise NotFound(f"{to} has no linked device")
        call_id = secrets.token_hex(8).upper()
        call: dict[str, Any] = {"id": call_id, "from": caller, "to": to, "status": "ringing",
                                "isVideo": bool(video), "timestamp": self._now_s()}
        self.calls[call_id] = call
        self._emit_to_account(to, {"type": "call", "id": call["id"], "from": phone_to_jid(caller),
                                   "timestamp": call["timestamp"], "isVideo": call["isVideo"]})
        return call

    def vote(self, voter: str, to: str, poll_id: str, options: list[str]) -> dict[str, Any]:
        """``voter``'s phone votes on poll ``poll_id`` that account ``to`` sent it (``[]`` withdraws)."""
        voter, to = normalize_phone(voter), normalize_phone(to)
        poll = self._mailbox(to).sent.get(poll_id)
        if poll is None or poll.rich is None or poll.rich.get("kind") != "poll" or poll.to != voter:
            raise NotFound(f"no poll {poll_id!r} from {to} to {voter}")
        unknown = [o for o in options if o not in poll.rich["options"]]
        if unknown:
            raise SimError(f"not options of the poll: {unknown}")
        body = {"type": "poll_vote", "chat": phone_to_jid(voter), "pollId": poll_id, "voter": phone_to_jid(voter),
                "options": options, "timestamp": self._now_s()}
        self._emit_to_account(to, body)
        return body

    def group_changed(self, session_id: str, group_jid: str, action: str, participants: list[str]) -> None:
        """Tell every member's devices (and those just removed) of a participant change, as WhatsApp's group
        notifications do; the acting device already knows."""
        group = self.groups.groups.get(group_jid)
        if group is None or not participants:
            return
        actor = self.phone_of(session_id)
        body = {"type": "group_participants", "group": group_jid, "action": action,
                "participants": participants, "author": phone_to_jid(actor), "timestamp": self._now_s()}
        affected = set(group.members) | {jid_to_phone(p) for p in participants}
        for phone in sorted(affected):
            self._emit_to_account(phone, body, skip=session_id)

    def profile_photo(self, session_id: str, jid: object) -> bytes | None:
        """Everyone has a small default photo unless the control API set another or hid it."""
        self.phone_of(session_id)
        if isinstance(jid, str) and jid.endswith("@g.us"):
            return DEFAULT_PHOTO if jid in self.groups.groups else None
        phone = jid_to_phone(jid)
        return self.photos.get(phone, DEFAULT_PHOTO)

    def reject_call(self, session_id: str, caller_jid: object, call_id: object) -> None:
        me = self.phone_of(session_id)
        call = self.calls.get(call_id) if isinstance(call_id, str) else None
        if call is None or call["to"] != me or phone_to_jid(call["from"]) != caller_jid:
            raise NotFound(f"no call {call_id!r} from {caller_jid!r}")
        if call["status"] == "ringing":
            call["status"] = "rejected"

    def phone_of(self, session_id: str) -> str:
        """The phone of a linked device (SimError when it is not linked)."""
        phone = self._linked_device(session_id).phone
        assert phone is not None
        return phone

    def _now_ms(self) -> int:
        return int(self.scheduler.now() * 1000)

    def _later(self, delay_s: float, fn: Callable[..., None], *args: Any) -> Timer:
        generation = self._generation

        def run() -> None:
            if generation == self._generation:
                fn(*args)

        return self.scheduler.call_later(delay_s, run)

    def _mailbox(self, phone: str) -> Mailbox:
        box = self.mailboxes.get(phone)
        if box is None:
            box = self.mailboxes[phone] = Mailbox()
        return box

    def _linked_account(self, phone: str) -> Account | None:
        """The account if it has a linked device; otherwise the number is a scripted contact."""
        account = self.accounts.get(phone)
        return account if account is not None and account.devices else None

    def behaviour(self, phone: str) -> ContactBehaviour:
        found = self.contacts.get(phone)
        if found is not None:
            return found
        s = self.settings
        return ContactBehaviour(s.contact_auto_reply, s.contact_auto_read, s.contact_typing)

    def _new_message_id(self) -> str:
        return "3EB0" + secrets.token_hex(8).upper()

    def _device(self, session_id: str) -> Device:
        device = self.devices.get(session_id)
        if device is None:
            raise NotFound(f"unknown device {session_id!r}")
        return device

    def _linked_device(self, session_id: str) -> Device:
        device = self._device(session_id)
        if device.phone is None:
            raise Conflict(f"device {session_id!r} is not linked")
        return device

    def check_linked(self, session_id: str) -> None:
        """Raise unless ``session_id`` is a linked device."""
        self._linked_device(session_id)

    def is_current(self, session_id: str, link: Link) -> bool:
        device = self.devices.get(session_id)
        return device is not None and device.link is link

    # ------------------------------------------------------------------ events

    def _emit(self, device: Device, body: dict[str, Any], *, retain: bool = True) -> None:
        if not retain and device.link is None:
            return  # ephemeral events only make sense to a live connection
        device.last_seq += 1
        frame = orjson.dumps({"op": "event", "seq": device.last_seq, **body})
        if retain:
            device.retained.append((device.last_seq, frame))
            if len(device.retained) > self.settings.max_retained_events:
                device.retained.popleft()
                self.stats.retained_dropped += 1
        if device.link is not None:
            device.link.push(frame)
        self.stats.events_emitted += 1

    def _emit_to_account(self, phone: str, body: dict[str, Any], *, skip: str | None = None) -> None:
        account = self.accounts.get(phone)
        if account is None:
            return
        for session_id in account.devices:
            if session_id != skip:
                self._emit(self.devices[session_id], body)

    def push_name(self, phone: str) -> str | None:
        """The name ``phone`` shows to others; scripted contacts get ``Contact <last 4 digits>``."""
        name = self.names.get(phone)
        if name is None and phone not in self.accounts:
            name = f"Contact {phone[-4:]}"
        return name

    def _message_body(self, msg: Message, viewer: str) -> dict[str, Any]:
        from_me = msg.sender == viewer
        group = msg.to.endswith("@g.us")
        return {
            "type": "message",
            "id": msg.id,
            "chat": msg.to if group else phone_to_jid(msg.to if from_me else msg.sender),
            "sender": phone_to_jid(msg.sender),
            "fromMe": from_me,
            "timestamp": msg.timestamp,
            "text": msg.text,
            "replyTo": msg.reply_to,
            "forwarded": msg.forwarded,
            "pushName": self.push_name(msg.sender),
            "media": msg.media.as_dict() if msg.media is not None else None,
            "rich": msg.rich,
            "mentions": msg.mentions,
        }

    def _emit_both(self, actor: str, other: str, body: dict[str, Any], origin: str | None) -> None:
        """Send ``body`` to the actor's other devices (fromMe) and to the chat partner's devices."""
        if self._linked_account(actor) is not None:
            self._emit_to_account(actor, {**body, "chat": phone_to_jid(other), "fromMe": True}, skip=origin)
        if other != actor and self._linked_account(other) is not None:
            self._emit_to_account(other, {**body, "chat": phone_to_jid(actor), "fromMe": False})

    def _apply_ack(self, device: Device, seq: int) -> None:
        seq = min(seq, device.last_seq)  # an ack from the future (e.g. after reset) must not eat new events
        if seq <= device.acked:
            return
        device.acked = seq
        retained = device.retained
        while retained and retained[0][0] <= seq:
            retained.popleft()

    # ------------------------------------------------------------- connections

    def attach(self, session_id: str, link: Link, ack: int | None = None) -> Device:
        """A device connected: newest connection wins, un-acked events are replayed, then QR/Connected."""
        device = self.devices.get(session_id)
        if device is None:
            device = self.devices[session_id] = Device(session_id)
        if device.link is not None:
            old = device.link
            self._detach(device, notify=False)  # the account stays online: no presence flap
            old.close(CLOSE_REPLACED, "replaced by a newer connection")
            self.stats.replaced += 1
        device.link = link
        device.connections += 1
        device.attached_at_ms = self._now_ms()
        self.stats.connections += 1
        if ack is not None:
            self._apply_ack(device, ack)
        for _seq, frame in device.retained:
            link.push(frame)
        self.stats.events_replayed += len(device.retained)
        if device.phone is not None:
            self._emit(device, {"type": "connected", "phone": device.phone}, retain=False)
            self._sync_presence(device.phone)
        else:
            self._show_qr(device)
        return device

    def detach(self, session_id: str, link: Link) -> None:
        """A connection ended; ignored when it was already replaced."""
        device = self.devices.get(session_id)
        if device is not None and device.link is link:
            self._detach(device)

    def _detach(self, device: Device, *, notify: bool = True) -> None:
        device.link = None
        if notify:  # a replaced connection hands over without a gap
            device.detached_at_ms = self._now_ms()
        self._clear_qr(device)
        self._clear_pair_code(device)
        for phone in device.subscriptions:  # presence subscriptions live as long as the connection
            watchers = self.watchers.get(phone)
            if watchers is not None:
                watchers.discard(device.session_id)
                if not watchers:
                    del self.watchers[phone]
        device.subscriptions.clear()
        if notify and device.phone is not None:
            self._sync_presence(device.phone)

    def ack(self, session_id: str, seq: int, link: Link | None = None) -> None:
        """Forget retained events up to ``seq``; acks from a replaced connection are ignored."""
        device = self.devices.get(session_id)
        if device is None or (link is not None and device.link is not link):
            return
        self._apply_ack(device, seq)

    def drop(
        self, session_id: str, reason: str = "connection dropped by the simulator", code: int = CLOSE_DROPPED
    ) -> None:
        """Close the device's connection; it stays linked and may reconnect."""
        device = self._device(session_id)
        link = device.link
        if link is None:
            raise Conflict(f"device {session_id!r} is not connected")
        self._detach(device)
        link.close(code, reason)

    def shutdown(self) -> None:
        for device in self.devices.values():
            if device.link is not None:
                link = device.link
                self._detach(device, notify=False)
                link.close(CLOSE_GOING_AWAY, "simulator shutting down")

    def reset(self) -> None:
        """Forget everything; live connections are closed with :data:`CLOSE_RESET`."""
        for device in self.devices.values():
            if device.link is not None:
                link = device.link
                self._detach(device, notify=False)
                link.close(CLOSE_RESET, "simulator reset")
        self._init_state()

    # ----------------------------------------------------------------- linking

    def _new_qr_code(self) -> str:
        # Same shape as WhatsApp's: ref,noise key,identity key,adv secret.
        parts = (base64.b64encode(secrets.token_bytes(n)).decode() for n in (18, 32, 32, 32))
        return "2@" + ",".join(parts)

    def _show_qr(self, device: Device) -> None:
        self._clear_qr(device)
        code = self._new_qr_code()
        device.qr_code = code
        device.qr_expires_ms = self._now_ms() + int(self.settings.qr_ttl_seconds * 1000)
        self.qr_index[code] = device.session_id
        self._emit(device, {"type": "qr", "code": code, "expiresAt": device.qr_expires_ms}, retain=False)
        device.qr_timer = self._later(self.settings.qr_rotate_seconds, self._rotate_qr, device, device.link)

    def _rotate_qr(self, device: Device, link: Link | None) -> None:
        if device.link is link and link is not None and device.phone is None:
            self._show_qr(device)

    def _clear_qr(self, device: Device) -> None:
        if device.qr_timer is not None:
            device.qr_timer.cancel()
            device.qr_timer = None
        if device.qr_code is not None:
            self.qr_index.pop(device.qr_code, None)
            device.qr_code = None

    def _clear_pair_code(self, device: Device) -> None:
        if device.pair_code is not None:
            self.pair_codes.pop(device.pair_code, None)
            device.pair_code = None

    def scan(
        self, phone: str, *, session_id: str | None = None, qr: str | None = None, name: str | None = None
    ) -> Device:
        """The phone scans a device's QR (by code, or directly by session id for tests)."""
        phone = normalize_phone(phone)
        if qr is not None:
            found = self.qr_index.get(qr)
            if found is None:
                raise NotFound("unknown or rotated QR code")
            device = self.devices[found]
            if self._now_ms() > device.qr_expires_ms:
                raise Conflict("QR code expired")
        elif session_id is not None:
            device = self._device(session_id)
        else:
            raise SimError("give sessionId or qr")
        if device.phone is not None:
            raise Conflict(f"device {device.session_id!r} is already linked")
        if device.link is None:
            raise Conflict(f"device {device.session_id!r} is not connected, so it shows no QR")
        self._link(device, phone, name)
        return device

    def request_pair_code(self, session_id: str, phone: object) -> str:
        """A device asks for a code to type on ``phone`` instead of scanning."""
        phone = normalize_phone(phone)
        device = self._device(session_id)
        if device.phone is not None:
            raise Conflict(f"device {session_id!r} is already linked")
        if device.link is None:
            raise Conflict(f"device {session_id!r} is not connected")
        self._clear_pair_code(device)
        raw = "".join(secrets.choice(_PAIR_ALPHABET) for _ in range(8))
        code = f"{raw[:4]}-{raw[4:]}"
        expires = self._now_ms() + int(self.settings.pair_code_ttl_seconds * 1000)
        self.pair_codes[code] = (session_id, phone, expires)
        device.pair_code = code
        return code

    def pair(self, code: str, name: str | None = None) -> Device:
        """The phone's user typed ``code``: link the device that asked for it."""
        raw = code.upper().replace("-", "").replace(" ", "")
        entry = self.pair_codes.get(f"{raw[:4]}-{raw[4:]}")
        if entry is None:
            raise NotFound("unknown pair code")
        session_id, phone, expires = entry
        if self._now_ms() > expires:
            raise Conflict("pair code expired")
        device = self._device(session_id)
        if device.phone is not None:
            raise Conflict(f"device {session_id!r} is already linked")
        if device.link is None:
            raise Conflict(f"device {session_id!r} is not connected")
        self._link(device, phone, name)
        return device

    def _ensure_account(self, phone: str, name: str | None) -> Account:
        account = self.accounts.get(phone)
        if account is None:
            account = self.accounts[phone] = Account(phone, name)
            self._seed_history(phone)
        if name:
            account.name = name
            self.names[phone] = name
        return account

    def _seed_history(self, phone: str) -> None:
        # A fresh account gets a couple of old chats so the first HistorySync is not empty.
        now = self._now_s()
        for i in range(1, self.settings.history_seed_contacts + 1):
            contact = f"9990000{i:04d}"
            self.names.setdefault(contact, f"Seed Contact {i}")
            msg = self._new_message(
                f"HIST{phone}{i:02d}", contact, phone, f"Hi! (old message {i})", None, now - 86_400 + i
            )
            self._accept(msg)
            msg.status = "delivered"

    def _link(self, device: Device, phone: str, name: str | None) -> None:
        account = self._ensure_account(phone, name)
        self._clear_qr(device)
        self._clear_pair_code(device)
        device.phone = phone
        account.devices.add(device.session_id)
        self._emit(device, {"type": "connected", "phone": phone}, retain=False)
        history = self._history_body(phone)
        account.known.update(jid_to_phone(c[0]) for c in history["contacts"])
        self._emit(device, history)
        self._sync_presence(phone)

    def _history_body(self, phone: str) -> dict[str, Any]:
        box = self._mailbox(phone)
        limit = self.settings.history_max_messages
        recent: list[Message] = []
        for messages in (box.inbox.values(), box.sent.values()):
            kept = 0
            for msg in reversed(messages):
                if kept >= limit:
                    break
                partner = msg.to if msg.sender == phone else msg.sender
                if msg.revoked_at is not None or msg.ordinal <= box.cleared.get(partner, 0):
                    continue  # deleted for everyone, or cleared from this account's chat
                recent.append(msg)
                kept += 1
        recent.sort(key=lambda m: m.ordinal)
        recent = recent[-limit:]
        counterparts = dict.fromkeys(m.to if m.sender == phone else m.sender for m in recent)
        return {
            "type": "history_sync",
            "syncType": "INITIAL_BOOTSTRAP",
            "progress": 100,
            "isLatest": True,
            "messages": [self._message_body(m, phone) for m in recent],
            "contacts": [[phone_to_jid(p), self.names.get(p)] for p in counterparts],
        }

    def logout(self, session_id: str, reason: str = "logged out from the phone") -> None:
        """Unlink the device: LoggedOut (retained until acked), then its connection is closed."""
        device = self._linked_device(session_id)
        account = self.accounts.get(device.phone or "")
        if account is not None:
            account.devices.discard(session_id)
        phone = device.phone
        device.phone = None
        self._emit(device, {"type": "logged_out", "reason": reason})
        link = device.link
        if link is not None:
            self._detach(device)
            link.close(CLOSE_LOGGED_OUT, reason)
        if phone is not None:
            self._sync_presence(phone)

    # ------------------------------------------------------------------- media

    def new_media_id(self) -> str:
        """A fresh upload id; hex only, so it is also a safe file name."""
        return secrets.token_hex(16)

    def add_media(self, media_id: str, size: int, sha256: str, mime: str) -> StoredMedia:
        """Record a finished upload (the app has its bytes on disk); messages may then name it."""
        stored = self.media[media_id] = StoredMedia(media_id, size, sha256, mime)
        self.stats.media_uploads += 1
        return stored

    def stored_media(self, media_id: str) -> StoredMedia:
        found = self.media.get(media_id)
        if found is None:
            raise NotFound(f"unknown media {media_id!r}")
        return found

    def forget_media(self, media_id: str) -> None:
        """Drop an upload (an injected message that was refused after storing its bytes)."""
        self.media.pop(media_id, None)

    def _check_media(self, raw: object) -> MessageMedia:
        if not isinstance(raw, dict):
            raise SimError("media must be an object")
        unknown = raw.keys() - _MEDIA_KEYS
        if unknown:
            raise SimError(f"unknown media keys {sorted(unknown)}; expected some of {sorted(_MEDIA_KEYS)}")
        url = raw.get("url")
        stored = (
            self.media.get(url[len(MEDIA_URL_PREFIX) :])
            if isinstance(url, str) and url.startswith(MEDIA_URL_PREFIX)
            else None
        )
        if stored is None:
            raise SimError(f"media.url {url!r} is not a stored upload ({MEDIA_URL_PREFIX}<id>)")
        kind = raw.get("kind")
        if kind not in MEDIA_KINDS:
            raise SimError(f"media.kind must be one of {sorted(MEDIA_KINDS)}")
        mime = raw.get("mime")
        if not isinstance(mime, str) or not mime:
            raise SimError("media.mime must be a non-empty string")
        size = raw.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size != stored.size:
            raise SimError(f"media.size must be the upload's size ({stored.size} bytes), got {size!r}")
        sha256 = raw.get("sha256")
        if sha256 is not None and (not isinstance(sha256, str) or sha256.lower() != stored.sha256):
            raise SimError("media.sha256 does not match the upload")
        file_name = raw.get("fileName")
        if file_name is not None and not isinstance(file_name, str):
            raise SimError("media.fileName must be a string")
        ptt = raw.get("ptt", False)
        if ptt is None:
            ptt = False
        if not isinstance(ptt, bool):
            raise SimError("media.ptt must be a boolean")
        if ptt and kind != "audio":
            raise SimError("media.ptt (voice note) is only valid for kind 'audio'")
        return MessageMedia(
            url=stored.url,
            kind=str(kind),
            mime=mime,
            size=stored.size,
            sha256=stored.sha256,
            file_name=file_name,
            ptt=ptt,
            width=_optional_count(raw, "width"),
            height=_optional_count(raw, "height"),
            duration=_optional_count(raw, "duration"),
        )

    @staticmethod
    def _check_text(text: object, media: MessageMedia | None) -> str | None:
        if media is None:
            if not isinstance(text, str):
                raise SimError("text must be a string")
            return text
        if text is not None and not isinstance(text, str):
            raise SimError("text (the caption) must be a string or null")
        return text or None  # WhatsApp has no empty captions: "" means none

    # --------------------------------------------------------------- messaging

    def _new_message(
        self,
        msg_id: str,
        sender: str,
        to: str,
        text: str | None,
        reply_to: str | None,
        timestamp: int | None = None,
        forwarded: bool = False,
        media: MessageMedia | None = None,
        rich: dict[str, Any] | None = None,
    ) -> Message:
        self._ordinal += 1
        ts = self._now_s() if timestamp is None else timestamp
        return Message(self._ordinal, msg_id, sender, to, text, reply_to, ts, forwarded, media, rich)

    @staticmethod
    def _check_rich(rich: object) -> dict[str, Any]:
        """A location, contact card or poll: checked for its kind and required keys only."""
        required = {"location": ("latitude", "longitude"), "contact": ("displayName", "vcard"),
                    "poll": ("name", "options")}
        if not isinstance(rich, dict) or rich.get("kind") not in required:
            raise SimError("rich must be an object with kind location, contact or poll")
        missing = [k for k in required[rich["kind"]] if rich.get(k) is None]
        if missing:
            raise SimError(f"rich {rich['kind']} needs {', '.join(missing)}")
        if rich["kind"] == "poll" and (not isinstance(rich["options"], list) or len(rich["options"]) < 2):
            raise SimError("a poll needs at least two options")
        return dict(rich)

    def _accept(self, msg: Message) -> None:
        self._mailbox(msg.sender).sent[msg.id] = msg
        inbox = self._mailbox(msg.to).inbox
        key = (msg.sender, msg.id)
        # Counting landings separately from the idempotency table keeps `count` an honest witness.
        landed = inbox.setdefault(key, msg)
        landed.deliveries += 1
        self.stats.messages += 1
        self.stats.deliveries += 1

    def send(
        self,
        session_id: str,
        *,
        msg_id: object,
        to_jid: object,
        text: object,
        reply_to: object = None,
        forwarded: object = False,
        media: object = None,
        rich: object = None,
        mentions: object = None,
    ) -> tuple[Message, bool]:
        """A device sends a text or, with ``media``, an upload captioned by ``text``, or ``rich`` content.
        To a group JID (``…@g.us``) it goes to every other member; ``mentions`` lists @-mentioned JIDs.

        Idempotent on (sender account, ``msg_id``). Returns (message, duplicate).
        """
        device = self._linked_device(session_id)
        msg_id = _check_id(msg_id)
        group = self.groups.groups.get(to_jid) if isinstance(to_jid, str) and to_jid.endswith("@g.us") else None
        if group is not None and device.phone not in group.members:
            raise SimError(f"not a member of group {to_jid!r}")
        if isinstance(to_jid, str) and to_jid.endswith("@g.us") and group is None:
            raise NotFound(f"unsupported JID {to_jid!r}: no such group")
        to = group.jid if group is not None else jid_to_phone(to_jid)
        if mentions is not None and (not isinstance(mentions, list) or not all(isinstance(m, str) for m in mentions)):
            raise SimError("mentions must be a list of JIDs")
        checked = self._check_media(media) if media is not None else None
        extra = self._check_rich(rich) if rich is not None else None
        body = None if extra is not None else self._check_text(text, checked)
        if reply_to is not None and not isinstance(reply_to, str):
            raise SimError("replyTo must be a string")
        if not isinstance(forwarded, bool):
            raise SimError("forwarded must be a boolean")
        sender = device.phone
        assert sender is not None
        self.stats.send_attempts += 1
        existing = self._mailbox(sender).sent.get(msg_id)
        if existing is not None:
            existing.attempts += 1
            self.stats.duplicates += 1
            return existing, True
        msg = self._new_message(msg_id, sender, to, body, reply_to, forwarded=forwarded, media=checked, rich=extra)
        msg.mentions = list(mentions) if isinstance(mentions, list) and mentions else None
        if group is not None:
            self._deliver_group(msg, sorted(group.members), origin=session_id)
        else:
            self._deliver(msg, origin=session_id)
        return msg, False

    def _deliver_group(self, msg: Message, members: list[str], origin: str | None) -> None:
        """A group message: the sender's other devices, and every other member's devices (chat = the group)."""
        self._accept(msg)  # the group's own mailbox keeps it (idempotency on the sender's side)
        self._emit_to_account(msg.sender, self._message_body(msg, msg.sender), skip=origin)
        for member in members:
            if member != msg.sender:
                self._mailbox(member).inbox.setdefault((msg.sender, msg.id), msg)
                self._emit_to_account(member, self._message_body(msg, member))

    def inject(
        self,
        sender: str,
        to: str,
        text: str | None,
        *,
        msg_id: str | None = None,
        reply_to: str | None = None,
        forwarded: bool = False,
        media: object = None,
        rich: object = None,
    ) -> tuple[Message, bool]:
        """A message sent from ``sender``'s phone (a contact, or an account outside its devices).

        ``media`` is a ``send`` media object naming an upload; ``text`` is then the caption.
        """
        sender = normalize_phone(sender)
        to = normalize_phone(to)
        checked = self._check_media(media) if media is not None else None
        extra = self._check_rich(rich) if rich is not None else None
        text = None if extra is not None else self._check_text(text, checked)
        msg_id = _check_id(msg_id) if msg_id is not None else self._new_message_id()
        existing = self._mailbox(sender).sent.get(msg_id)
        if existing is not None:
            existing.attempts += 1
            self.stats.duplicates += 1
            return existing, True
        msg = self._new_message(msg_id, sender, to, text, reply_to, forwarded=forwarded, media=checked, rich=extra)
        self._deliver(msg, origin=None)
        return msg, False

    def _deliver(self, msg: Message, origin: str | None) -> None:
        self._accept(msg)
        sender_account = self._linked_account(msg.sender)
        if sender_account is not None:
            # The sender's other devices see their own message (multi-device sync).
            self._emit_to_account(msg.sender, self._message_body(msg, msg.sender), skip=origin)
        if msg.to == msg.sender:
            return
        if self._linked_account(msg.to) is not None:
            self._learn_contact(msg.to, msg.sender)
            self._emit_to_account(msg.to, self._message_body(msg, msg.to))
            msg.status = "delivered"
            # Deferred so the sender sees the send result before the receipt.
            self._later(0, self._receipt, msg, "delivered")
        elif sender_account is not None:
            self._later(0, self._contact_received, msg)

    def _receipt(self, msg: Message, status: str, ids: list[str] | None = None) -> None:
        body = {
            "type": "receipt",
            "chat": phone_to_jid(msg.to),
            "ids": ids or [msg.id],
            "status": status,
            "timestamp": self._now_s(),
        }
        self._emit_to_account(msg.sender, body)

    def _contact_received(self, msg: Message) -> None:
        behaviour = self.behaviour(msg.to)
        msg.status = "delivered"
        self._receipt(msg, "delivered")
        read_delay = self.settings.contact_read_delay_ms / 1000
        if behaviour.auto_read:
            self._later(read_delay, self._contact_read, msg)
        if msg.text is not None and AUTO_REACT_TOKEN in msg.text:
            # Scheduled after the read (same or later deadline, scheduled later): react once read.
            self._later(2 * read_delay, self._contact_auto_react, msg)
        if behaviour.auto_reply:
            delay = self.settings.contact_reply_delay_ms / 1000
            if behaviour.typing:
                self._later(delay / 2, self._contact_presence, msg, "composing")
            self._later(delay, self._contact_reply, msg, behaviour.typing)

    def _contact_read(self, msg: Message) -> None:
        if not msg.read:
            msg.read = True
            msg.status = "read"
            self._receipt(msg, "read")

    def _contact_presence(self, msg: Message, presence: str) -> None:
        self._chat_state(msg.to, msg.sender, presence)

    def _contact_auto_react(self, msg: Message) -> None:
        if msg.revoked_at is None and msg.to not in msg.reactions:
            self._react(msg.to, msg.sender, msg, AUTO_REACT_EMOJI, origin=None)

    def _contact_reply(self, msg: Message, typing: bool) -> None:
        if typing:
            self._contact_presence(msg, "paused")
        text = self.settings.contact_reply_prefix + (msg.text or "")
        reply = self._new_message(self._new_message_id(), msg.to, msg.sender, text, msg.id)
        self._deliver(reply, origin=None)

    def mark_read(self, session_id: str, chat_jid: object, ids: object) -> list[str]:
        """The device's user read messages of ``chat_jid``; returns the ids that became read."""
        device = self._linked_device(session_id)
        other = jid_to_phone(chat_jid)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise SimError("ids must be a list of message ids")
        reader = device.phone
        assert reader is not None
        inbox = self._mailbox(reader).inbox
        applied: list[str] = []
        for msg_id in ids:
            msg = inbox.get((other, msg_id))
            if msg is not None and not msg.read:
                msg.read = True
                msg.status = "read"
                applied.append(msg_id)
        if applied:
            first = inbox[(other, applied[0])]
            self._receipt(first, "read", applied)
        return applied

    # ------------------------------------------- edits, revokes, reactions, clears

    def _find(self, me: str, other: str, msg_id: object) -> Message:
        """A message of the chat between ``me`` and ``other``: one ``me`` sent, else one received."""
        msg_id = _check_id(msg_id)
        box = self.mailboxes.get(me)
        msg = box.sent.get(msg_id) if box is not None else None
        if msg is not None and msg.to == other:
            return msg
        msg = box.inbox.get((other, msg_id)) if box is not None else None
        if msg is None:
            raise NotFound(f"no message {msg_id!r} in the chat with {phone_to_jid(other)}")
        return msg

    def _own(self, me: str, other: str, msg_id: object, action: str) -> Message:
        msg = self._find(me, other, msg_id)
        if msg.sender != me:
            raise Forbidden(f"cannot {action} message {msg.id!r}: only its author can")
        return msg

    def _device_chat(self, session_id: str, chat_jid: object) -> tuple[str, str]:
        device = self._linked_device(session_id)
        assert device.phone is not None
        return device.phone, jid_to_phone(chat_jid)

    def _edit(self, author: str, msg: Message, text: object, origin: str | None) -> int:
        if not isinstance(text, str) or not text:
            raise SimError("text must be a non-empty string")
        if msg.revoked_at is not None:
            raise Conflict(f"message {msg.id!r} was revoked; it cannot be edited")
        if msg.edited_at is not None and msg.text == text:
            return msg.edited_at  # a re-sent edit (lost answer): same outcome, no new event
        now = self._now_s()
        if now - msg.timestamp > self.settings.edit_window_seconds:
            raise Conflict(f"message {msg.id!r} is too old to edit")
        if msg.original_text is None:
            msg.original_text = msg.text
        msg.text = text
        msg.edited_at = now
        body = {"type": "edit", "id": msg.id, "text": text, "timestamp": now}
        self._emit_both(author, msg.to, body, origin)
        return now

    def _revoke(self, author: str, msg: Message, origin: str | None) -> int:
        if msg.revoked_at is not None:
            return msg.revoked_at  # idempotent
        now = self._now_s()
        msg.revoked_at = now
        msg.text = None
        msg.media = None
        msg.reactions.clear()
        self._emit_both(author, msg.to, {"type": "revoke", "id": msg.id, "timestamp": now}, origin)
        return now

    def _react(self, actor: str, other: str, msg: Message, emoji: object, origin: str | None) -> int:
        if not isinstance(emoji, str) or len(emoji) > _MAX_EMOJI_LEN:
            raise SimError(f"emoji must be a string of at most {_MAX_EMOJI_LEN} characters ('' removes)")
        if msg.revoked_at is not None:
            raise Conflict(f"message {msg.id!r} was revoked; it cannot be reacted to")
        current = msg.reactions.get(actor)
        if (current[0] if current is not None else "") == emoji:
            return current[1] if current is not None else self._now_s()  # nothing changes: no event
        now = self._now_s()
        if emoji:
            msg.reactions[actor] = (emoji, now)
        else:
            del msg.reactions[actor]
        body = {
            "type": "reaction",
            "id": msg.id,
            "actor": phone_to_jid(actor),
            "emoji": emoji,
            "timestamp": now,
        }
        self._emit_both(actor, other, body, origin)
        return now

    def edit(self, session_id: str, chat_jid: object, msg_id: object, text: object) -> int:
        """The device edits one of its account's messages; returns the edit's timestamp."""
        me, other = self._device_chat(session_id, chat_jid)
        return self._edit(me, self._own(me, other, msg_id, "edit"), text, session_id)

    def revoke(self, session_id: str, chat_jid: object, msg_id: object) -> int:
        """Delete one of the account's messages for everyone; idempotent (same timestamp)."""
        me, other = self._device_chat(session_id, chat_jid)
        return self._revoke(me, self._own(me, other, msg_id, "revoke"), session_id)

    def react(self, session_id: str, chat_jid: object, msg_id: object, emoji: object) -> int:
        """Set (``""``: remove) the account's reaction on any message of the chat."""
        me, other = self._device_chat(session_id, chat_jid)
        return self._react(me, other, self._find(me, other, msg_id), emoji, session_id)

    def contact_edit(self, contact: str, to: str, msg_id: str, text: str) -> Message:
        """``contact``'s phone edits a message it sent to ``to``."""
        contact, to = normalize_phone(contact), normalize_phone(to)
        msg = self._own(contact, to, msg_id, "edit")
        self._edit(contact, msg, text, None)
        return msg

    def contact_revoke(self, contact: str, to: str, msg_id: str) -> Message:
        contact, to = normalize_phone(contact), normalize_phone(to)
        msg = self._own(contact, to, msg_id, "revoke")
        self._revoke(contact, msg, None)
        return msg

    def contact_react(self, contact: str, to: str, msg_id: str, emoji: str) -> Message:
        """``contact``'s phone reacts to a message of its chat with ``to`` (usually one ``to`` sent)."""
        contact, to = normalize_phone(contact), normalize_phone(to)
        msg = self._find(contact, to, msg_id)
        self._react(contact, to, msg, emoji, None)
        return msg

    def clear_chat(self, session_id: str, chat_jid: object) -> int:
        """The account's phone cleared a chat: every device of the account gets ``chat_clear``."""
        me, other = self._device_chat(session_id, chat_jid)
        now = self._now_s()
        self._mailbox(me).cleared[other] = self._ordinal
        self._emit_to_account(me, {"type": "chat_clear", "chat": phone_to_jid(other), "timestamp": now})
        return now

    # ---------------------------------------------------------------- presence

    def _presence_of(self, phone: str) -> tuple[str, int | None]:
        account = self.accounts.get(phone)
        if account is not None:
            return ("available", None) if account.online else ("unavailable", account.last_seen)
        return self.contact_presence.get(phone, ("available", None))

    def _presence_body(self, phone: str, chat: str, presence: str, last_seen: int | None) -> dict[str, Any]:
        return {
            "type": "presence",
            "chat": phone_to_jid(chat),
            "jid": phone_to_jid(phone),
            "presence": presence,
            "lastSeen": last_seen,
        }

    def _notify_watchers(self, phone: str) -> None:
        presence, last_seen = self._presence_of(phone)
        body = self._presence_body(phone, phone, presence, last_seen)
        for session_id in self.watchers.get(phone, ()):
            self._emit(self.devices[session_id], body, retain=False)

    def _sync_presence(self, phone: str) -> None:
        """An account is online while one of its linked devices is connected; watchers see changes."""
        account = self.accounts.get(phone)
        if account is None:
            return
        online = any(self.devices[s].link is not None for s in account.devices)
        if online != account.online:
            account.online = online
            if not online:
                account.last_seen = self._now_s()
            self._notify_watchers(phone)

    def subscribe_presence(self, session_id: str, jid: object) -> None:
        """Watch ``jid``'s presence for the life of this connection; its current presence comes at once."""
        device = self._linked_device(session_id)
        target = jid_to_phone(jid)
        if device.link is None:
            raise Conflict(f"device {session_id!r} is not connected")
        device.subscriptions.add(target)
        self.watchers.setdefault(target, set()).add(session_id)
        presence, last_seen = self._presence_of(target)
        self._emit(device, self._presence_body(target, target, presence, last_seen), retain=False)

    def _chat_state(self, actor: str, other: str, state: str) -> None:
        if self._linked_account(other) is not None:
            body = self._presence_body(actor, actor, state, None)
            for session_id in self.accounts[other].devices:
                self._emit(self.devices[session_id], body, retain=False)
        else:
            self.chat_states.setdefault(other, {})[actor] = state  # a scripted contact just notes it

    def chat_presence(self, session_id: str, chat_jid: object, presence: object) -> None:
        """The device shows ``composing``/``recording``/``paused`` in a chat (sent to every device of the partner)."""
        me, other = self._device_chat(session_id, chat_jid)
        if presence not in CHAT_STATES:
            raise SimError(f"chat presence must be one of {sorted(CHAT_STATES)}")
        self._chat_state(me, other, str(presence))

    def contact_set_presence(self, contact: str, presence: str, to: str | None = None) -> None:
        """A scripted contact goes ``available``/``unavailable`` (to its watchers) or shows a chat
        state (``composing``/``recording``/``paused``) in its chat with ``to``."""
        contact = normalize_phone(contact)
        if presence in CHAT_STATES:
            if to is None:
                raise SimError("a chat presence needs 'to' (the account whose chat it is shown in)")
            self._chat_state(contact, normalize_phone(to), presence)
        elif presence in PRESENCES:
            if self._linked_account(contact) is not None:
                raise Conflict(f"{contact} has linked devices; its presence follows their connections")
            self.contact_presence[contact] = (presence, self._now_s() if presence == "unavailable" else None)
            self._notify_watchers(contact)
        else:
            raise SimError(f"presence must be one of {sorted(PRESENCES)}")

    # ---------------------------------------------------------------- contacts

    def _contact_entry(self, phone: str) -> list[str | None]:
        saved = self.contacts.get(phone)
        return [phone_to_jid(phone), saved.saved_name if saved is not None else None, self.push_name(phone)]

    def _learn_contact(self, account_phone: str, phone: str) -> None:
        """First message from ``phone``: the account's devices learn its names (``contacts``)."""
        account = self.accounts[account_phone]
        if phone in account.known or phone == account_phone:
            return
        account.known.add(phone)
        self._emit_to_account(account_phone, {"type": "contacts", "contacts": [self._contact_entry(phone)]})

    def _contact_renamed(self, phone: str) -> None:
        body = {"type": "contacts", "contacts": [self._contact_entry(phone)]}
        for account in self.accounts.values():
            if phone in account.known and account.devices:
                self._emit_to_account(account.phone, body)

    # ---------------------------------------------------------- control views

    def set_contact(
        self,
        phone: str,
        *,
        auto_reply: bool | None = None,
        auto_read: bool | None = None,
        typing: bool | None = None,
        name: str | None = None,
        saved_name: str | None = None,
    ) -> ContactBehaviour:
        """Change a scripted contact; a new name reaches accounts that know it as ``contacts``."""
        phone = normalize_phone(phone)
        current = self.behaviour(phone)
        updated = ContactBehaviour(
            current.auto_reply if auto_reply is None else auto_reply,
            current.auto_read if auto_read is None else auto_read,
            current.typing if typing is None else typing,
            current.name if name is None else name,
            current.saved_name if saved_name is None else saved_name,
        )
        self.contacts[phone] = updated
        if name:
            self.names[phone] = name
        if (updated.name, updated.saved_name) != (current.name, current.saved_name):
            self._contact_renamed(phone)
        return updated

    def contact_view(self, phone: str) -> dict[str, Any]:
        phone = normalize_phone(phone)
        presence, last_seen = self._presence_of(phone)
        return {
            **self.behaviour(phone).as_dict(),
            "phone": phone,
            "pushName": self.push_name(phone),
            "presence": presence,
            "lastSeen": last_seen,
            "chatStates": dict(self.chat_states.get(phone, {})),
        }

    def set_latency(self, ms: int) -> None:
        if ms < 0:
            raise SimError("latency must be >= 0")
        self.latency_ms = ms

    def inbox(self, phone: str) -> list[dict[str, Any]]:
        box = self.mailboxes.get(normalize_phone(phone))
        return [m.as_dict() for m in box.inbox.values()] if box is not None else []

    def outbox(self, phone: str) -> list[dict[str, Any]]:
        box = self.mailboxes.get(normalize_phone(phone))
        return [m.as_dict() for m in box.sent.values()] if box is not None else []

    def device_info(self, session_id: str) -> dict[str, Any]:
        return self._device(session_id).as_dict()

    def devices_view(self) -> list[dict[str, Any]]:
        return [d.as_dict() for d in self.devices.values()]

    def stats_view(self) -> dict[str, Any]:
        s = self.stats
        devices = self.devices.values()
        return {
            "accounts": len(self.accounts),
            "devices": len(self.devices),
            "devicesConnected": sum(1 for d in devices if d.link is not None),
            "devicesLinked": sum(1 for d in devices if d.phone is not None),
            "sendAttempts": s.send_attempts,
            "messages": s.messages,
            "duplicates": s.duplicates,
            "deliveries": s.deliveries,
            "eventsEmitted": s.events_emitted,
            "eventsReplayed": s.events_replayed,
            "retainedEvents": sum(len(d.retained) for d in devices),
            "retainedDropped": s.retained_dropped,
            "connections": s.connections,
            "replacedConnections": s.replaced,
            "latencyMs": self.latency_ms,
            "mediaUploads": s.media_uploads,
            "mediaStored": len(self.media),
        }
