"""Pure mapping from neonize (whatsmeow) protobuf events to the driver port's events.

No I/O, no neonize client: every function takes decoded protobuf objects (``neonize.proto``)
and returns port dataclasses, so they can be tested offline with hand-built events.

Conventions:

* JIDs become ``user@server`` strings without the device/agent part (``1555:12@s.whatsapp.net``
  → ``1555@s.whatsapp.net``); an empty JID becomes ``""``.
* Timestamps become epoch **seconds**. whatsmeow/neonize mix units: ``MessageInfo.Timestamp``
  and receipts are seconds, ``ReactionMessage.senderTimestampMS`` and
  ``ProtocolMessage.timestampMS`` are milliseconds, history-sync ``messageTimestamp`` is seconds.
  :func:`to_seconds` normalises any of them (values above 10^11 are taken as milliseconds).
* Every function takes the ``seq`` to stamp on the events; the driver assigns them.
* Events the port has no use for map to ``None``.
* Media (image, video, audio, document, sticker) becomes :class:`IncomingMedia`; its ``handle``
  is the media part of the message, serialized (:func:`media_handle`), which is exactly what
  ``client.download_any`` needs to fetch and decrypt the bytes later.

This module never imports the neonize *client* (which loads the native library); it only
touches message objects passed in, so importing it is free.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any, Protocol

from session_runner.drivers.port import (
    Connected,
    ContactsUpdate,
    Disconnected,
    DriverEvent,
    GroupParticipantsChanged,
    HistorySync,
    IncomingCall,
    IncomingMedia,
    IncomingMessage,
    LoggedOut,
    MediaKind,
    MessageEdited,
    MessageRevoked,
    PollVote,
    Presence,
    PresenceUpdate,
    QrCode,
    Reaction,
    Receipt,
    ReceiptStatus,
    Rich,
)
from zapstream_contracts.payloads import ContactCard, GroupInfo, GroupParticipant, Location, Poll

# whatsmeow's QR channel: the first code is valid 60 s, every following one 20 s.
FIRST_QR_TTL_MS = 60_000
NEXT_QR_TTL_MS = 20_000

_MS_THRESHOLD = 100_000_000_000  # 10^11: as seconds that is year 5138, as ms it is 1973

# Enum numbers of neonize.proto.Neonize_pb2 (stable protobuf numbers; avoids importing the package).
_RECEIPT_STATUS: dict[int, ReceiptStatus] = {
    1: "delivered",
    4: "read",
    6: "played",
}  # DELIVERED, READ, PLAYED
_CHAT_PRESENCE_COMPOSING, _CHAT_PRESENCE_PAUSED = 1, 2
_CHAT_PRESENCE_MEDIA_AUDIO = 2
_CONNECT_FAILURE_REASON = {
    1: "generic",
    2: "logged out",
    3: "temporarily banned",
    4: "main device gone",
    5: "unknown logout",
    6: "client outdated",
    7: "bad user agent",
    8: "internal server error",
    9: "experimental",
    10: "service unavailable",
}
_TEMP_BAN_REASON = {
    1: "sent to too many people",
    2: "blocked by users",
    3: "created too many groups",
    4: "sent too many identical messages",
    5: "broadcast list",
}
# waE2E.ProtocolMessage.Type
_PROTOCOL_REVOKE = 0
_PROTOCOL_MESSAGE_EDIT = 14
# waHistorySync.HistorySync.HistorySyncType
_HISTORY_SYNC_TYPES = {
    0: "INITIAL_BOOTSTRAP",
    1: "INITIAL_STATUS_V3",
    2: "FULL",
    3: "RECENT",
    4: "PUSH_NAME",
    5: "NON_BLOCKING_DATA",
    6: "ON_DEMAND",
}

# Message fields that are envelopes around the real content.
_WRAPPERS = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "editedMessage",
    "lottieStickerMessage",
)
# Content fields that carry a caption and/or a contextInfo (media and rich messages).
_CAPTIONED = ("imageMessage", "videoMessage", "documentMessage")
_CONTEXT_CARRIERS = (
    "extendedTextMessage",
    "imageMessage",
    "videoMessage",
    "documentMessage",
    "audioMessage",
    "stickerMessage",
    "contactMessage",
    "locationMessage",
    "ptvMessage",
)
# Media fields → (kind, the field the handle stores them under). A round video note (ptv) is a
# VideoMessage and downloads as one.
_MEDIA_FIELDS: tuple[tuple[str, MediaKind, str], ...] = (
    ("imageMessage", "image", "imageMessage"),
    ("videoMessage", "video", "videoMessage"),
    ("ptvMessage", "video", "videoMessage"),
    ("audioMessage", "audio", "audioMessage"),
    ("documentMessage", "document", "documentMessage"),
    ("stickerMessage", "sticker", "stickerMessage"),
)
# What WhatsApp clients assume when a sender leaves ``mimetype`` empty.
_DEFAULT_MIME: dict[MediaKind, str] = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/ogg; codecs=opus",
    "document": "application/octet-stream",
    "sticker": "image/webp",
}
# Not needed to download, and handles travel in every event: quoted messages and thumbnails stay out.
_HANDLE_SKIP = ("contextInfo", "JPEGThumbnail", "pngThumbnail")
MEDIA_HANDLE_PREFIX = "nz1:"  # versioned, so a handle from another driver is refused, not misread

# Fields that are plumbing rather than content: a message holding only these is not shown to users.
_PLUMBING = frozenset(
    {
        "messageContextInfo",
        "senderKeyDistributionMessage",
        "fastRatchetKeySenderKeyDistributionMessage",
        "protocolMessage",
        "encReactionMessage",
        "pollUpdateMessage",
        "keepInChatMessage",
        "pinInChatMessage",
        "stickerSyncRmrMessage",
        "call",
    }
)


class _JidLike(Protocol):
    User: str
    Server: str


# ----------------------------------------------------------------------------- scalars


def to_seconds(value: int | float | None) -> int:
    """Epoch seconds from a timestamp in seconds or milliseconds (``0`` stays ``0``)."""
    if not value:
        return 0
    value = int(value)
    return value // 1000 if value >= _MS_THRESHOLD else value


def jid_str(jid: _JidLike | None) -> str:
    """``user@server`` without device or agent; ``""`` for an empty JID."""
    if jid is None or not getattr(jid, "Server", ""):
        return ""
    return f"{jid.User}@{jid.Server}" if jid.User else jid.Server


def normalize_jid_string(value: str) -> str:
    """``1555.0:12@s.whatsapp.net`` → ``1555@s.whatsapp.net`` (strings from history sync, keys)."""
    if "@" not in value:
        return value
    user, server = value.rsplit("@", 1)
    user = user.split(":", 1)[0].split(".", 1)[0]
    return f"{user}@{server}" if user else server


_AD_JID = re.compile(r"^(?P<user>[^@.:]*)(?:\.(?P<agent>\d+))?(?::(?P<device>\d+))?@(?P<server>.+)$")


def parse_jid(value: str) -> dict[str, Any]:
    """Fields for ``neonize.proto.Neonize_pb2.JID(**fields)`` from a (possibly AD) JID string.

    ``"15551234567"`` (digits only) is taken as a phone number on ``s.whatsapp.net``.
    """
    value = value.strip()
    if "@" not in value:
        value = f"{value.lstrip('+')}@s.whatsapp.net"
    m = _AD_JID.match(value)
    if m is None:
        raise ValueError(f"not a JID: {value!r}")
    return {
        "User": m["user"],
        "Server": m["server"],
        "RawAgent": int(m["agent"] or 0),
        "Device": int(m["device"] or 0),
        "Integrator": 0,
        "IsEmpty": False,
    }


def full_jid_str(jid: Any) -> str:
    """The JID with its device part (``user:device@server``), to find a device in the store again."""
    if not getattr(jid, "Server", ""):
        return ""
    if jid.RawAgent:
        return f"{jid.User}.{jid.RawAgent}:{jid.Device}@{jid.Server}"
    if jid.Device:
        return f"{jid.User}:{jid.Device}@{jid.Server}"
    return jid_str(jid)


# ------------------------------------------------------------------------- message bodies


def unwrap(message: Any) -> Any:
    """The innermost content of a ``waE2E.Message`` (ephemeral, view-once, device-sent... removed)."""
    for _ in range(8):  # wrappers nest, but never deeply
        if message.HasField("deviceSentMessage") and message.deviceSentMessage.HasField("message"):
            message = message.deviceSentMessage.message
            continue
        for name in _WRAPPERS:
            if message.HasField(name) and getattr(message, name).HasField("message"):
                message = getattr(message, name).message
                break
        else:
            return message
    return message


def message_text(message: Any) -> str | None:
    """The text a user sees: conversation, extended text, or a media caption."""
    message = unwrap(message)
    if message.conversation:
        return str(message.conversation)
    if message.HasField("extendedTextMessage"):
        return str(message.extendedTextMessage.text)
    for name in _CAPTIONED:
        if message.HasField(name) and getattr(message, name).caption:
            return str(getattr(message, name).caption)
    return None


def context_info(message: Any) -> Any | None:
    message = unwrap(message)
    for name in _CONTEXT_CARRIERS:
        if message.HasField(name) and getattr(message, name).HasField("contextInfo"):
            return getattr(message, name).contextInfo
    return None


def _media_part(message: Any) -> tuple[MediaKind, str, Any] | None:
    """``(kind, field the handle stores it under, part)`` of the media in an unwrapped message."""
    for name, kind, stored_as in _MEDIA_FIELDS:
        if message.HasField(name):
            return kind, stored_as, getattr(message, name)
    return None


def _positive(part: Any, field: str) -> int | None:
    """An optional numeric field: ``None`` when the message type lacks it or leaves it 0."""
    if field not in part.DESCRIPTOR.fields_by_name:
        return None
    return int(getattr(part, field)) or None


def media_handle(message: Any) -> str | None:
    """The download handle of the media in ``message``: ``nz1:`` + base64 of a ``Message`` holding
    only that media part (the keys, hashes and path ``download_any`` needs)."""
    message = unwrap(message)
    found = _media_part(message)
    if found is None:
        return None
    _kind, stored_as, part = found
    holder = type(message)()
    stored = getattr(holder, stored_as)
    stored.CopyFrom(part)
    for skipped in _HANDLE_SKIP:
        if skipped in stored.DESCRIPTOR.fields_by_name:
            stored.ClearField(skipped)
    return MEDIA_HANDLE_PREFIX + base64.b64encode(holder.SerializeToString()).decode("ascii")


def media_handle_bytes(handle: str) -> bytes:
    """The serialized ``Message`` inside a handle; ``ValueError`` when it is not a neonize handle."""
    if not handle.startswith(MEDIA_HANDLE_PREFIX):
        raise ValueError("not a neonize media handle")
    try:
        return base64.b64decode(handle[len(MEDIA_HANDLE_PREFIX) :], validate=True)
    except ValueError as exc:  # binascii.Error included
        raise ValueError(f"corrupt neonize media handle: {exc}") from None


def message_media(message: Any) -> IncomingMedia | None:
    """The media a message carries, as the message describes it (``None`` for text and the like)."""
    message = unwrap(message)
    found = _media_part(message)
    if found is None:
        return None
    kind, _stored_as, part = found
    handle = media_handle(message)
    assert handle is not None
    return IncomingMedia(
        kind=kind,
        mime=str(part.mimetype) or _DEFAULT_MIME[kind],
        handle=handle,
        size=_positive(part, "fileLength"),
        file_name=(part.fileName or part.title or None) if kind == "document" else None,
        ptt=bool(part.PTT) if kind == "audio" else False,
        width=_positive(part, "width"),
        height=_positive(part, "height"),
        duration=_positive(part, "seconds"),
    )


_POLLS = ("pollCreationMessage", "pollCreationMessageV2", "pollCreationMessageV3")


def message_rich(message: Any) -> Rich | None:
    """A location, contact card or poll creation carried by ``message``; None for anything else.

    Content WhatsApp would send but our types refuse (a poll with one option, a card without
    vCard text) is read as a plain message rather than dropped.
    """
    message = unwrap(message)
    try:
        for name in ("locationMessage", "liveLocationMessage"):
            if message.HasField(name):
                loc = getattr(message, name)
                return Location(latitude=loc.degreesLatitude, longitude=loc.degreesLongitude,
                                name=getattr(loc, "name", "") or None, address=getattr(loc, "address", "") or None,
                                url=getattr(loc, "URL", "") or None)
        if message.HasField("contactMessage"):
            card = message.contactMessage
            return ContactCard(display_name=card.displayName or "contact", vcard=card.vcard)
        for name in _POLLS:
            if message.HasField(name):
                poll = getattr(message, name)
                return Poll(name=poll.name, options=[o.optionName for o in poll.options],
                            selectable_count=poll.selectableOptionsCount)
    except ValueError:  # pydantic's ValidationError is a ValueError
        return None
    return None


def rich_message(content: Location | ContactCard, context: Any | None = None) -> Any:
    """The ``waE2E.Message`` for a location or contact card (polls are built by neonize's client, which
    adds the poll's encryption secret)."""
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ContactMessage, LocationMessage, Message

    if isinstance(content, Location):
        loc = LocationMessage(degreesLatitude=content.latitude, degreesLongitude=content.longitude)
        for field, value in (("name", content.name), ("address", content.address), ("URL", content.url)):
            if value:
                setattr(loc, field, value)
        if context is not None:
            loc.contextInfo.CopyFrom(context)
        return Message(locationMessage=loc)
    card = ContactMessage(displayName=content.display_name, vcard=content.vcard)
    if context is not None:
        card.contextInfo.CopyFrom(context)
    return Message(contactMessage=card)


def map_group_info(info: Any) -> GroupInfo:
    """A neonize ``GroupInfo`` → our group metadata (Baileys' keys); participants that failed to be added
    (``Error`` set, e.g. 403 privacy) are not members and are left out."""
    participants = [
        GroupParticipant(id=jid_str(p.JID),
                         admin="superadmin" if p.IsSuperAdmin else "admin" if p.IsAdmin else None)
        for p in info.Participants if not p.Error
    ]
    return GroupInfo(
        id=jid_str(info.JID),
        subject=info.GroupName.Name,
        owner=jid_str(info.OwnerJID) or None,
        creation=to_seconds(info.GroupCreated) or None,
        desc=info.GroupTopic.Topic or None,
        announce=bool(info.GroupAnnounce.IsAnnounce),
        restrict=bool(info.GroupLocked.isLocked),
        size=len(participants),
        participants=participants,
    )


def changed_participants(results: Iterable[Any]) -> list[str]:
    """The JIDs a participant change applied to (entries with an ``Error`` code did not change)."""
    return [jid_str(p.JID) for p in results if not p.Error]


def poll_update(ev: Any) -> Any | None:
    """The ``pollUpdateMessage`` of a message event (an encrypted vote), or None."""
    body = unwrap(ev.Message)
    return body.pollUpdateMessage if body.HasField("pollUpdateMessage") else None


def map_poll_vote(ev: Any, decrypted: Any, seq: int) -> PollVote:
    """A vote message and its decrypted ``PollVoteMessage`` (selected options as SHA-256 of their names)."""
    update = unwrap(ev.Message).pollUpdateMessage
    src = ev.Info.MessageSource
    chat = jid_str(src.Chat)
    return PollVote(seq=seq, chat_jid=chat, poll_id=update.pollCreationMessageKey.ID,
                    voter_jid=jid_str(src.Sender) or chat,
                    timestamp=to_seconds(update.senderTimestampMS) or to_seconds(ev.Info.Timestamp),
                    option_hashes=tuple(bytes(h).hex() for h in decrypted.selectedOptions))


def with_mentions(ctx: Any | None, mentions: Iterable[str]) -> Any:
    """``ctx`` (or a new ``ContextInfo``) with ``mentionedJID`` set: WhatsApp highlights ``@<digits>``
    in the text for each of them."""
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ContextInfo

    ctx = ContextInfo() if ctx is None else ctx
    ctx.mentionedJID.extend(mentions)
    return ctx


def profile_photo_url(info: Any) -> str | None:
    """The download URL of a ``ProfilePictureInfo`` (https only: it is fetched by the worker), or None."""
    url = str(getattr(info, "URL", "") or "")
    return url if url.startswith("https://") else None


def map_group_info_event(ev: Any, seq: int) -> list[GroupParticipantsChanged]:
    """A ``GroupInfoEvent`` → one change per non-empty list (Join, Leave, Promote, Demote)."""
    group, author = jid_str(ev.JID), jid_str(ev.Sender) or None
    out: list[GroupParticipantsChanged] = []
    for field, action in (("Join", "add"), ("Leave", "remove"), ("Promote", "promote"), ("Demote", "demote")):
        jids = tuple(jid_str(j) for j in getattr(ev, field))
        if jids:
            out.append(GroupParticipantsChanged(seq=seq, group_jid=group, action=action,  # type: ignore[arg-type]
                                                participants=jids, author=author))
    return out


def map_call_offer(ev: Any, seq: int) -> IncomingCall:
    """A ``CallOffer`` event → IncomingCall (the caller without its device suffix)."""
    meta = ev.basicCallMeta
    caller = jid_str(meta.callCreator) or jid_str(getattr(meta, "from"))
    return IncomingCall(seq=seq, call_id=meta.callID, caller_jid=caller, timestamp=to_seconds(meta.timestamp),
                        group=jid_str(getattr(meta, "from")).endswith("@g.us"))


def has_content(message: Any) -> bool:
    """False for messages that only carry protocol plumbing (key distribution, app-state keys...)."""
    message = unwrap(message)
    return any(field.name not in _PLUMBING for field, _ in message.ListFields())


# ------------------------------------------------------------------------- message events


def map_message(ev: Any, seq: int) -> DriverEvent | None:
    """A ``neonize`` ``Message`` event → IncomingMessage / MessageEdited / MessageRevoked / Reaction."""
    info = ev.Info
    src = info.MessageSource
    chat = jid_str(src.Chat)
    sender = jid_str(src.Sender) or chat
    from_me = bool(src.IsFromMe)
    ts = to_seconds(info.Timestamp)
    body = unwrap(ev.Message)

    if body.HasField("protocolMessage"):
        proto = body.protocolMessage
        if proto.type == _PROTOCOL_REVOKE and proto.key.ID:
            return MessageRevoked(
                seq=seq, chat_jid=chat, message_id=proto.key.ID, timestamp=ts, from_me=from_me
            )
        if proto.type == _PROTOCOL_MESSAGE_EDIT and proto.key.ID:
            return MessageEdited(
                seq=seq,
                chat_jid=chat,
                message_id=proto.key.ID,
                text=message_text(proto.editedMessage) or "",
                timestamp=to_seconds(proto.timestampMS) or ts,
                from_me=from_me,
            )
        return None  # history-sync notifications, app-state keys, ephemeral settings...

    if body.HasField("reactionMessage"):
        reaction = body.reactionMessage
        return Reaction(
            seq=seq,
            chat_jid=chat,
            message_id=reaction.key.ID,
            actor_jid=sender,
            emoji=reaction.text,
            timestamp=to_seconds(reaction.senderTimestampMS) or ts,
            from_me=from_me,
        )

    if not has_content(body):
        return None
    ctx = context_info(body)
    return IncomingMessage(
        seq=seq,
        id=info.ID,
        chat_jid=chat,
        sender_jid=sender,
        from_me=from_me,
        timestamp=ts,
        text=message_text(body),
        reply_to_id=(ctx.stanzaID or None) if ctx is not None else None,
        forwarded=bool(ctx.isForwarded) if ctx is not None else False,
        push_name=info.Pushname or None,
        media=message_media(body),
        rich=message_rich(body),
        mentions=tuple(ctx.mentionedJID) if ctx is not None else (),
    )


def map_receipt(ev: Any, seq: int) -> Receipt | None:
    """Delivered/read/played receipts of messages we sent; other receipt types → ``None``."""
    status = _RECEIPT_STATUS.get(int(ev.Type))
    if status is None or not ev.MessageIDs:
        return None
    return Receipt(
        seq=seq,
        chat_jid=jid_str(ev.MessageSource.Chat),
        message_ids=tuple(ev.MessageIDs),
        status=status,
        timestamp=to_seconds(ev.Timestamp),
    )


def map_chat_presence(ev: Any, seq: int) -> PresenceUpdate:
    """Typing/recording indicators in a chat."""
    presence: Presence
    if int(ev.State) == _CHAT_PRESENCE_PAUSED:
        presence = "paused"
    elif int(ev.Media) == _CHAT_PRESENCE_MEDIA_AUDIO:
        presence = "recording"
    else:
        presence = "composing"
    src = ev.MessageSource
    chat = jid_str(src.Chat)
    return PresenceUpdate(seq=seq, chat_jid=chat, jid=jid_str(src.Sender) or chat, presence=presence)


def map_presence(ev: Any, seq: int) -> PresenceUpdate:
    """Online/offline of a contact we subscribed to (``subscribe_presence``)."""
    who = jid_str(ev.From)
    return PresenceUpdate(
        seq=seq,
        chat_jid=who,
        jid=who,
        presence="unavailable" if ev.Unavailable else "available",
        last_seen=to_seconds(ev.LastSeen) or None,
    )


def _web_message(wmi: Any, seq: int, own_jid: str | None) -> IncomingMessage | None:
    """A history-sync ``WebMessageInfo`` → IncomingMessage (edits, reactions, stubs are skipped)."""
    key = wmi.key
    if not key.ID or not wmi.HasField("message"):
        return None
    body = unwrap(wmi.message)
    if body.HasField("protocolMessage") or body.HasField("reactionMessage") or not has_content(body):
        return None
    chat = normalize_jid_string(key.remoteJID)
    from_me = bool(key.fromMe)
    participant = wmi.participant or key.participant
    if participant:
        sender = normalize_jid_string(participant)
    elif from_me:
        sender = own_jid or chat
    else:
        sender = chat
    ctx = context_info(body)
    return IncomingMessage(
        seq=seq,
        id=key.ID,
        chat_jid=chat,
        sender_jid=sender,
        from_me=from_me,
        timestamp=to_seconds(wmi.messageTimestamp),
        text=message_text(body),
        reply_to_id=(ctx.stanzaID or None) if ctx is not None else None,
        forwarded=bool(ctx.isForwarded) if ctx is not None else False,
        push_name=wmi.pushName or None,
        media=message_media(body),
        rich=message_rich(body),
    )


def map_history_sync(ev: Any, seq: int, own_jid: str | None = None) -> HistorySync:
    """One history-sync blob (``HistorySyncEv.Data``) → HistorySync with its messages and push names.

    ``is_latest`` is True on the batch that completes the transfer (``progress == 100``) and on
    push-name-only batches, which are complete in themselves.
    """
    data = ev.Data
    messages: list[IncomingMessage] = []
    for conv in data.conversations:
        for hmsg in conv.messages:
            mapped = _web_message(hmsg.message, seq, own_jid)
            if mapped is not None:
                messages.append(mapped)
    messages.sort(key=lambda m: m.timestamp)
    sync_type = _HISTORY_SYNC_TYPES.get(int(data.syncType), str(int(data.syncType)))
    return HistorySync(
        seq=seq,
        sync_type=sync_type,
        progress=int(data.progress),
        is_latest=int(data.progress) >= 100 or sync_type == "PUSH_NAME",
        messages=tuple(messages),
        contacts=tuple((normalize_jid_string(p.ID), p.pushname or None) for p in data.pushnames if p.ID),
    )


# ------------------------------------------------------------------------ connection events


def map_qr(code: str, seq: int, index: int, now_ms: int) -> QrCode:
    """The ``index``-th QR code of a pairing attempt, shown at ``now_ms``."""
    ttl = FIRST_QR_TTL_MS if index == 0 else NEXT_QR_TTL_MS
    return QrCode(seq=seq, code=code, expires_at_ms=now_ms + ttl)


def map_qr_event(ev: Any, seq: int, now_ms: int) -> list[QrCode]:
    """A ``QR`` event (all codes of an attempt at once) → one QrCode per code, expiries chained."""
    out: list[QrCode] = []
    at = now_ms
    for i, code in enumerate(ev.Codes):
        ttl = FIRST_QR_TTL_MS if i == 0 else NEXT_QR_TTL_MS
        at += ttl
        out.append(QrCode(seq=seq, code=code, expires_at_ms=at))
    return out


def map_connected(me: Any, seq: int) -> Connected:
    """``Connected`` with the account's phone digits, from ``client.get_me()`` (a ``Device``)."""
    return Connected(seq=seq, phone=me.JID.User)


def map_logged_out(ev: Any, seq: int) -> LoggedOut:
    reason = _CONNECT_FAILURE_REASON.get(int(ev.Reason), f"reason {int(ev.Reason)}")
    where = " while connecting" if ev.OnConnect else ""
    return LoggedOut(seq=seq, reason=f"{reason}{where}")


def map_disconnected(ev: Any) -> Disconnected:
    """whatsmeow lost the socket; it reconnects by itself (auto-reconnect is on)."""
    return Disconnected(seq=0, reason="connection lost: whatsmeow is reconnecting")


def map_stream_replaced(ev: Any) -> Disconnected:
    return Disconnected(seq=0, reason="replaced: another client opened this device", replaced=True)


def map_connect_failure(ev: Any) -> Disconnected:
    reason = _CONNECT_FAILURE_REASON.get(int(ev.Reason), f"reason {int(ev.Reason)}")
    detail = f": {ev.Message}" if ev.Message else ""
    return Disconnected(seq=0, reason=f"connect failure: {reason}{detail}")


def map_temporary_ban(ev: Any) -> Disconnected:
    reason = _TEMP_BAN_REASON.get(int(ev.Code), f"code {int(ev.Code)}")
    return Disconnected(seq=0, reason=f"temporary ban: {reason}; expires in {int(ev.Expire)}s")


def map_stream_error(ev: Any) -> Disconnected:
    return Disconnected(seq=0, reason=f"stream error: {ev.Code or 'unknown'}")


def map_client_outdated(ev: Any) -> Disconnected:
    return Disconnected(seq=0, reason="client outdated: upgrade neonize (whatsmeow) to keep connecting")


# --------------------------------------------------------------------------- contacts


def map_contacts(contacts: Iterable[Any], seq: int) -> ContactsUpdate | None:
    """The device's contact store (``client.contact.get_all_contacts()``) → ContactsUpdate."""
    rows: list[tuple[str, str | None, str | None]] = []
    for c in contacts:
        jid = jid_str(c.JID)
        if not jid:
            continue
        info = c.Info
        saved = info.FullName or info.FirstName or info.BusinessName or None
        rows.append((jid, saved, info.PushName or None))
    return ContactsUpdate(seq=seq, contacts=tuple(rows)) if rows else None


class PushNameTracker:
    """Turns push names seen on messages into ContactsUpdate events, once per change."""

    def __init__(self) -> None:
        self._known: dict[str, str] = {}

    def seen(self, jid: str, push_name: str | None, seq: int) -> ContactsUpdate | None:
        if not jid or not push_name or self._known.get(jid) == push_name:
            return None
        self._known[jid] = push_name
        return ContactsUpdate(seq=seq, contacts=((jid, None, push_name),))
