"""The simulated WhatsApp servers: accounts, devices, messages and delivery rules.

Pure, synchronous, in-memory state. It never touches a socket: devices talk to it
through a :class:`Link` (push a frame, close) and it defers work through a
:class:`Scheduler`, so the whole behaviour can be unit-tested with fakes.

Event delivery is at-least-once: every server→device event frame carries a
per-device increasing ``seq``; events are retained until the device acks them and
replayed, in order, when it (re)connects. ``qr``, ``connected`` and ``presence``
events are ephemeral: they are only sent to a live connection and never replayed,
because each (re)connect derives them afresh.
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


class SimError(Exception):
    """A request the simulator refuses; ``status`` is the HTTP status for control calls."""

    status = 400


class NotFound(SimError):
    status = 404


class Conflict(SimError):
    status = 409


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


class Message:
    """One accepted message; shared by the sender's outbox and the recipient's inbox."""

    __slots__ = (
        "attempts",
        "deliveries",
        "id",
        "ordinal",
        "read",
        "reply_to",
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
    ) -> None:
        self.ordinal = ordinal
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
        }


class Mailbox:
    """Messages of one phone number, account or scripted contact alike."""

    __slots__ = ("inbox", "sent")

    def __init__(self) -> None:
        self.inbox: dict[tuple[str, str], Message] = {}  # (sender, id)
        self.sent: dict[str, Message] = {}  # id -> message: the idempotency table


class Account:
    __slots__ = ("devices", "name", "phone")

    def __init__(self, phone: str, name: str | None) -> None:
        self.phone = phone
        self.name = name
        self.devices: set[str] = set()  # linked session ids


@dataclass(slots=True)
class ContactBehaviour:
    """How a scripted contact reacts to messages from accounts."""

    auto_reply: bool
    auto_read: bool
    typing: bool
    name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "autoReply": self.auto_reply,
            "autoRead": self.auto_read,
            "typing": self.typing,
            "name": self.name,
        }


class Device:
    """A companion device, keyed by the zapstream session id."""

    __slots__ = (
        "acked",
        "last_seq",
        "link",
        "pair_code",
        "phone",
        "qr_code",
        "qr_expires_ms",
        "qr_timer",
        "retained",
        "session_id",
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
        self.names: dict[str, str] = {}
        self.qr_index: dict[str, str] = {}  # qr code -> session id
        self.pair_codes: dict[str, tuple[str, str, int]] = {}  # code -> (session id, phone, expires ms)
        self.latency_ms = self.settings.send_latency_ms
        self.stats = Stats()
        self._ordinal = 0
        # Bumped by reset() so callbacks scheduled before it become no-ops.
        self._generation = getattr(self, "_generation", 0) + 1

    # ----------------------------------------------------------------- helpers

    def _now_s(self) -> int:
        return int(self.scheduler.now())

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

    @staticmethod
    def _message_body(msg: Message, viewer: str) -> dict[str, Any]:
        from_me = msg.sender == viewer
        return {
            "type": "message",
            "id": msg.id,
            "chat": phone_to_jid(msg.to if from_me else msg.sender),
            "sender": phone_to_jid(msg.sender),
            "fromMe": from_me,
            "timestamp": msg.timestamp,
            "text": msg.text,
            "replyTo": msg.reply_to,
        }

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
            self._detach(device)
            old.close(CLOSE_REPLACED, "replaced by a newer connection")
            self.stats.replaced += 1
        device.link = link
        self.stats.connections += 1
        if ack is not None:
            self._apply_ack(device, ack)
        for _seq, frame in device.retained:
            link.push(frame)
        self.stats.events_replayed += len(device.retained)
        if device.phone is not None:
            self._emit(device, {"type": "connected", "phone": device.phone}, retain=False)
        else:
            self._show_qr(device)
        return device

    def detach(self, session_id: str, link: Link) -> None:
        """A connection ended; ignored when it was already replaced."""
        device = self.devices.get(session_id)
        if device is not None and device.link is link:
            self._detach(device)

    def _detach(self, device: Device) -> None:
        device.link = None
        self._clear_qr(device)
        self._clear_pair_code(device)

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
                self._detach(device)
                link.close(CLOSE_GOING_AWAY, "simulator shutting down")

    def reset(self) -> None:
        """Forget everything; live connections are closed with :data:`CLOSE_RESET`."""
        for device in self.devices.values():
            if device.link is not None:
                link = device.link
                self._detach(device)
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
        self._emit(device, self._history_body(phone))

    def _history_body(self, phone: str) -> dict[str, Any]:
        box = self._mailbox(phone)
        limit = self.settings.history_max_messages
        recent: list[Message] = []
        for messages in (box.inbox.values(), box.sent.values()):
            for i, msg in enumerate(reversed(messages)):
                if i >= limit:
                    break
                recent.append(msg)
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
        device.phone = None
        self._emit(device, {"type": "logged_out", "reason": reason})
        link = device.link
        if link is not None:
            self._detach(device)
            link.close(CLOSE_LOGGED_OUT, reason)

    # --------------------------------------------------------------- messaging

    def _new_message(
        self,
        msg_id: str,
        sender: str,
        to: str,
        text: str | None,
        reply_to: str | None,
        timestamp: int | None = None,
    ) -> Message:
        self._ordinal += 1
        ts = self._now_s() if timestamp is None else timestamp
        return Message(self._ordinal, msg_id, sender, to, text, reply_to, ts)

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
        self, session_id: str, *, msg_id: object, to_jid: object, text: object, reply_to: object = None
    ) -> tuple[Message, bool]:
        """A device sends a text; idempotent on (sender account, ``msg_id``). Returns (message, duplicate)."""
        device = self._linked_device(session_id)
        msg_id = _check_id(msg_id)
        to = jid_to_phone(to_jid)
        if not isinstance(text, str):
            raise SimError("text must be a string")
        if reply_to is not None and not isinstance(reply_to, str):
            raise SimError("replyTo must be a string")
        sender = device.phone
        assert sender is not None
        self.stats.send_attempts += 1
        existing = self._mailbox(sender).sent.get(msg_id)
        if existing is not None:
            existing.attempts += 1
            self.stats.duplicates += 1
            return existing, True
        msg = self._new_message(msg_id, sender, to, text, reply_to)
        self._deliver(msg, origin=session_id)
        return msg, False

    def inject(
        self, sender: str, to: str, text: str, *, msg_id: str | None = None, reply_to: str | None = None
    ) -> tuple[Message, bool]:
        """A message sent from ``sender``'s phone (a contact, or an account outside its devices)."""
        sender = normalize_phone(sender)
        to = normalize_phone(to)
        msg_id = _check_id(msg_id) if msg_id is not None else self._new_message_id()
        existing = self._mailbox(sender).sent.get(msg_id)
        if existing is not None:
            existing.attempts += 1
            self.stats.duplicates += 1
            return existing, True
        msg = self._new_message(msg_id, sender, to, text, reply_to)
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
        if behaviour.auto_read:
            self._later(self.settings.contact_read_delay_ms / 1000, self._contact_read, msg)
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
        body = {
            "type": "presence",
            "chat": phone_to_jid(msg.to),
            "jid": phone_to_jid(msg.to),
            "presence": presence,
            "lastSeen": None,
        }
        account = self.accounts.get(msg.sender)
        for session_id in account.devices if account is not None else ():
            self._emit(self.devices[session_id], body, retain=False)

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

    # ---------------------------------------------------------- control views

    def set_contact(
        self,
        phone: str,
        *,
        auto_reply: bool | None = None,
        auto_read: bool | None = None,
        typing: bool | None = None,
        name: str | None = None,
    ) -> ContactBehaviour:
        phone = normalize_phone(phone)
        current = self.behaviour(phone)
        updated = ContactBehaviour(
            current.auto_reply if auto_reply is None else auto_reply,
            current.auto_read if auto_read is None else auto_read,
            current.typing if typing is None else typing,
            current.name if name is None else name,
        )
        self.contacts[phone] = updated
        if name:
            self.names[phone] = name
        return updated

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
        }
