"""Offline mapping of real neonize protobuf events to the driver port's events.

Every event is built with neonize's own protobuf classes (``neonize.proto``), exactly as the
native library hands them to Python, then mapped with ``neonize_mapping``; no client, no network.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

if importlib.util.find_spec("neonize") is None:
    pytest.skip("neonize is not installed (session-runner's neonize dependency)", allow_module_level=True)

from session_runner.drivers.neonize_worker import import_neonize

import_neonize()  # the safe way: no download, bot badge off, neonize's import-time pipe leak absorbed

from neonize.proto import Neonize_pb2 as N  # noqa: E402
from neonize.proto.waCommon.WACommon_pb2 import MessageKey  # noqa: E402
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as E  # noqa: E402
from neonize.proto.waHistorySync import WAWebProtobufsHistorySync_pb2 as H  # noqa: E402
from neonize.proto.waWeb import WAWebProtobufsWeb_pb2 as W  # noqa: E402

from session_runner.drivers import neonize_mapping as nm  # noqa: E402
from session_runner.drivers.neonize_worker import MediaPreview, build_media_message  # noqa: E402
from session_runner.drivers.port import (  # noqa: E402
    Connected,
    ContactsUpdate,
    Disconnected,
    HistorySync,
    IncomingMedia,
    IncomingMessage,
    LoggedOut,
    MessageEdited,
    MessageRevoked,
    OutgoingMedia,
    PresenceUpdate,
    QrCode,
    Reaction,
    Receipt,
)

ME, ALICE, GROUP = "5511999990000", "5511988887777", "120363025246125486"
TS = 1_717_000_000  # epoch seconds
TS_MS = TS * 1000 + 123


def jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> N.JID:
    return N.JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0, IsEmpty=False)


def message_ev(
    body: E.Message,
    *,
    msg_id: str = "3EB0AAA",
    chat: N.JID | None = None,
    sender: N.JID | None = None,
    from_me: bool = False,
    ts: int = TS,
    push_name: str = "Alice",
) -> N.Message:
    chat = chat or jid(ALICE)
    source = N.MessageSource(
        Chat=chat,
        Sender=sender or (jid(ME, device=3) if from_me else jid(ALICE, device=2)),
        IsFromMe=from_me,
        IsGroup=chat.Server == "g.us",
    )
    info = N.MessageInfo(MessageSource=source, ID=msg_id, Timestamp=ts, Pushname=push_name, Type="text")
    return N.Message(Info=info, Message=body)


# --------------------------------------------------------------------------- scalars


def test_timestamps_in_ms_or_seconds_become_seconds() -> None:
    assert nm.to_seconds(TS) == TS
    assert nm.to_seconds(TS_MS) == TS
    assert nm.to_seconds(0) == 0
    assert nm.to_seconds(None) == 0


def test_jids_become_user_at_server_without_device() -> None:
    assert nm.jid_str(jid(ALICE, device=12)) == f"{ALICE}@s.whatsapp.net"
    assert nm.jid_str(jid(GROUP, "g.us")) == f"{GROUP}@g.us"
    assert nm.jid_str(N.JID()) == ""
    assert nm.normalize_jid_string(f"{ALICE}.0:7@s.whatsapp.net") == f"{ALICE}@s.whatsapp.net"
    assert nm.parse_jid(f"{ME}:3@s.whatsapp.net")["Device"] == 3
    assert nm.parse_jid(f"+{ME}") == nm.parse_jid(f"{ME}@s.whatsapp.net")
    assert nm.full_jid_str(N.JID(**nm.parse_jid(f"{ME}:3@s.whatsapp.net"))) == f"{ME}:3@s.whatsapp.net"


# ------------------------------------------------------------------------- messages


def test_plain_text_message() -> None:
    event = nm.map_message(message_ev(E.Message(conversation="hello")), 7)

    assert event == IncomingMessage(
        seq=7,
        id="3EB0AAA",
        chat_jid=f"{ALICE}@s.whatsapp.net",
        sender_jid=f"{ALICE}@s.whatsapp.net",
        from_me=False,
        timestamp=TS,
        text="hello",
        push_name="Alice",
    )


def test_reply_via_context_info() -> None:
    body = E.Message(
        extendedTextMessage=E.ExtendedTextMessage(
            text="yes",
            contextInfo=E.ContextInfo(
                stanzaID="ORIG1",
                participant=f"{ME}@s.whatsapp.net",
                quotedMessage=E.Message(conversation="q?"),
            ),
        )
    )
    event = nm.map_message(message_ev(body), 1)
    assert isinstance(event, IncomingMessage)
    assert (event.text, event.reply_to_id, event.forwarded) == ("yes", "ORIG1", False)


def test_forwarded_via_context_info() -> None:
    body = E.Message(
        extendedTextMessage=E.ExtendedTextMessage(
            text="fwd", contextInfo=E.ContextInfo(isForwarded=True, forwardingScore=2)
        )
    )
    event = nm.map_message(message_ev(body), 1)
    assert isinstance(event, IncomingMessage)
    assert (event.text, event.forwarded, event.reply_to_id) == ("fwd", True, None)


def test_group_message_from_me_in_ms_and_wrapped_in_ephemeral() -> None:
    body = E.Message(ephemeralMessage=E.FutureProofMessage(message=E.Message(conversation="hi all")))
    ev = message_ev(body, chat=jid(GROUP, "g.us"), from_me=True, ts=TS_MS, push_name="")
    event = nm.map_message(ev, 2)
    assert isinstance(event, IncomingMessage)
    assert event.chat_jid == f"{GROUP}@g.us"
    assert event.sender_jid == f"{ME}@s.whatsapp.net"
    assert (event.from_me, event.timestamp, event.text, event.push_name) == (True, TS, "hi all", None)


def test_media_caption_is_the_text() -> None:
    body = E.Message(imageMessage=E.ImageMessage(caption="look", mimetype="image/jpeg"))
    event = nm.map_message(message_ev(body), 1)
    assert isinstance(event, IncomingMessage) and event.text == "look"
    sticker = nm.map_message(message_ev(E.Message(stickerMessage=E.StickerMessage())), 1)
    assert isinstance(sticker, IncomingMessage) and sticker.text is None


def test_edit_protocol_message() -> None:
    body = E.Message(
        protocolMessage=E.ProtocolMessage(
            type=E.ProtocolMessage.MESSAGE_EDIT,
            key=MessageKey(remoteJID=f"{ALICE}@s.whatsapp.net", fromMe=False, ID="ORIG2"),
            editedMessage=E.Message(conversation="fixed typo"),
            timestampMS=TS_MS + 5000,
        )
    )
    event = nm.map_message(message_ev(body, msg_id="EDIT1"), 3)
    assert event == MessageEdited(
        seq=3,
        chat_jid=f"{ALICE}@s.whatsapp.net",
        message_id="ORIG2",
        text="fixed typo",
        timestamp=TS + 5,
        from_me=False,
    )


def test_edit_as_whatsmeow_delivers_it_inside_edited_message() -> None:
    inner = E.Message(
        protocolMessage=E.ProtocolMessage(
            type=E.ProtocolMessage.MESSAGE_EDIT,
            key=MessageKey(ID="ORIG3", fromMe=True),
            editedMessage=E.Message(extendedTextMessage=E.ExtendedTextMessage(text="v2")),
        )
    )
    body = E.Message(editedMessage=E.FutureProofMessage(message=inner))
    event = nm.map_message(message_ev(body, from_me=True), 4)
    assert isinstance(event, MessageEdited)
    assert (event.message_id, event.text, event.timestamp, event.from_me) == ("ORIG3", "v2", TS, True)


def test_revoke_protocol_message() -> None:
    body = E.Message(
        protocolMessage=E.ProtocolMessage(type=E.ProtocolMessage.REVOKE, key=MessageKey(ID="GONE1"))
    )
    event = nm.map_message(message_ev(body), 5)
    assert event == MessageRevoked(
        seq=5, chat_jid=f"{ALICE}@s.whatsapp.net", message_id="GONE1", timestamp=TS, from_me=False
    )


def test_reaction_and_its_removal() -> None:
    def reaction(text: str) -> E.Message:
        return E.Message(
            reactionMessage=E.ReactionMessage(key=MessageKey(ID="TARGET"), text=text, senderTimestampMS=TS_MS)
        )

    event = nm.map_message(message_ev(reaction("👍")), 6)
    assert event == Reaction(
        seq=6,
        chat_jid=f"{ALICE}@s.whatsapp.net",
        message_id="TARGET",
        actor_jid=f"{ALICE}@s.whatsapp.net",
        emoji="👍",
        timestamp=TS,
        from_me=False,
    )
    removed = nm.map_message(message_ev(reaction("")), 7)
    assert isinstance(removed, Reaction) and removed.emoji == ""


def test_plumbing_messages_are_dropped() -> None:
    key_share = E.Message(protocolMessage=E.ProtocolMessage(type=E.ProtocolMessage.APP_STATE_SYNC_KEY_SHARE))
    assert nm.map_message(message_ev(key_share), 1) is None
    skdm = E.Message(senderKeyDistributionMessage=E.SenderKeyDistributionMessage(groupID="g"))
    assert nm.map_message(message_ev(skdm), 1) is None


# ---------------------------------------------------------------------------- media

# What WhatsApp puts in every media message: where the encrypted file is and how to decrypt it.
KEYS = {
    "URL": "https://mmg.whatsapp.net/v/t62.7118-24/1_2_3.enc",
    "directPath": "/v/t62.7118-24/1_2_3.enc?ccb=11-4",
    "mediaKey": bytes(range(32)),
    "fileSHA256": b"\x01" * 32,
    "fileEncSHA256": b"\x02" * 32,
    "mediaKeyTimestamp": TS,
}


def handle_message(media: IncomingMedia) -> E.Message:
    return E.Message.FromString(nm.media_handle_bytes(media.handle))


def mapped(body: E.Message, **kwargs: Any) -> IncomingMessage:
    event = nm.map_message(message_ev(body, **kwargs), 1)
    assert isinstance(event, IncomingMessage) and event.media is not None
    return event


def test_image_with_caption_reply_and_thumbnail() -> None:
    image = E.ImageMessage(
        **KEYS,
        mimetype="image/jpeg",
        caption="look",
        fileLength=48_213,
        width=1280,
        height=960,
        JPEGThumbnail=b"\xff\xd8thumb",
        contextInfo=E.ContextInfo(stanzaID="ORIG9", quotedMessage=E.Message(conversation="q?")),
    )
    event = mapped(E.Message(imageMessage=image))

    assert (event.text, event.reply_to_id, event.forwarded) == ("look", "ORIG9", False)
    media = event.media
    assert media is not None and media.handle.startswith(nm.MEDIA_HANDLE_PREFIX)
    assert media == IncomingMedia(
        kind="image", mime="image/jpeg", handle=media.handle, size=48_213, width=1280, height=960
    )
    # The handle keeps what download_any needs, not the quote or the thumbnail (it rides in events).
    expected = E.Message(imageMessage=image)
    expected.imageMessage.ClearField("contextInfo")
    expected.imageMessage.ClearField("JPEGThumbnail")
    assert handle_message(media) == expected


def test_video_forwarded_in_a_view_once_wrapper() -> None:
    video = E.VideoMessage(
        **KEYS,
        mimetype="video/mp4",
        caption="clip",
        fileLength=2_000_000,
        seconds=12,
        width=640,
        height=360,
        viewOnce=True,
        contextInfo=E.ContextInfo(isForwarded=True, forwardingScore=3),
    )
    body = E.Message(viewOnceMessageV2=E.FutureProofMessage(message=E.Message(videoMessage=video)))
    event = mapped(body)

    assert (event.text, event.forwarded, event.reply_to_id) == ("clip", True, None)
    assert event.media is not None
    assert (event.media.kind, event.media.mime, event.media.size, event.media.duration) == (
        "video",
        "video/mp4",
        2_000_000,
        12,
    )
    assert (event.media.width, event.media.height, event.media.ptt) == (640, 360, False)
    expected = E.Message(videoMessage=video)
    expected.videoMessage.ClearField("contextInfo")
    assert handle_message(event.media) == expected  # unwrapped: download_any looks at top-level fields


def test_round_video_note_is_a_video_downloadable_as_one() -> None:
    ptv = E.VideoMessage(**KEYS, mimetype="video/mp4", seconds=7, fileLength=300_000)
    event = mapped(E.Message(ptvMessage=ptv))
    assert event.media is not None and (event.media.kind, event.media.duration) == ("video", 7)
    assert handle_message(event.media) == E.Message(videoMessage=ptv)


def test_voice_note_ptt_without_caption() -> None:
    audio = E.AudioMessage(
        **KEYS, mimetype="audio/ogg; codecs=opus", PTT=True, seconds=4, fileLength=9_876, waveform=b"\x00\x10"
    )
    event = mapped(E.Message(ephemeralMessage=E.FutureProofMessage(message=E.Message(audioMessage=audio))))
    media = event.media
    assert media is not None

    assert event.text is None
    assert media == IncomingMedia(
        kind="audio", mime="audio/ogg; codecs=opus", handle=media.handle, size=9_876, ptt=True, duration=4
    )
    assert handle_message(media) == E.Message(audioMessage=audio)  # nothing to strip: equal


def test_plain_audio_is_not_a_voice_note() -> None:
    event = mapped(E.Message(audioMessage=E.AudioMessage(**KEYS, mimetype="audio/mpeg", seconds=200)))
    assert event.media is not None and (event.media.kind, event.media.ptt) == ("audio", False)


def test_document_with_caption_wrapper_file_name_and_mime() -> None:
    document = E.DocumentMessage(
        **KEYS,
        mimetype="application/pdf",
        fileName="invoice-42.pdf",
        title="invoice-42",
        caption="your invoice",
        fileLength=123_456,
        pageCount=2,
    )
    body = E.Message(
        documentWithCaptionMessage=E.FutureProofMessage(message=E.Message(documentMessage=document))
    )
    event = mapped(body)

    assert event.text == "your invoice"
    assert event.media is not None
    assert (event.media.kind, event.media.mime, event.media.file_name, event.media.size) == (
        "document",
        "application/pdf",
        "invoice-42.pdf",
        123_456,
    )
    assert (event.media.width, event.media.height, event.media.duration) == (None, None, None)
    assert handle_message(event.media) == E.Message(documentMessage=document)


def test_document_without_file_name_falls_back_to_title() -> None:
    event = mapped(E.Message(documentMessage=E.DocumentMessage(**KEYS, title="report", mimetype="text/csv")))
    assert event.media is not None and event.media.file_name == "report"


def test_sticker_dimensions_and_default_mime() -> None:
    sticker = E.StickerMessage(**KEYS, width=512, height=512, fileLength=20_000, isAnimated=False)
    event = mapped(E.Message(stickerMessage=sticker), from_me=True)
    media = event.media
    assert media is not None

    assert event.text is None and event.from_me
    assert media == IncomingMedia(
        kind="sticker",
        mime="image/webp",  # left empty by the sender: what WhatsApp assumes
        handle=media.handle,
        size=20_000,
        width=512,
        height=512,
    )
    assert handle_message(media) == E.Message(stickerMessage=sticker)


def test_text_has_no_media_and_bad_handles_are_refused() -> None:
    event = nm.map_message(message_ev(E.Message(conversation="hi")), 1)
    assert isinstance(event, IncomingMessage) and event.media is None
    assert nm.media_handle(E.Message(conversation="hi")) is None
    with pytest.raises(ValueError, match="not a neonize media handle"):
        nm.media_handle_bytes("/v1/media/abc")  # the simulator's kind of handle
    with pytest.raises(ValueError, match="corrupt"):
        nm.media_handle_bytes(nm.MEDIA_HANDLE_PREFIX + "not base64!")


def test_history_sync_media_message() -> None:
    image = E.ImageMessage(**KEYS, mimetype="image/png", caption="old photo", fileLength=77)
    data = H.HistorySync(
        syncType=H.HistorySync.RECENT,
        progress=100,
        conversations=[
            H.Conversation(
                ID=f"{ALICE}@s.whatsapp.net",
                messages=[
                    H.HistorySyncMsg(
                        message=W.WebMessageInfo(
                            key=MessageKey(remoteJID=f"{ALICE}@s.whatsapp.net", ID="HM1"),
                            message=E.Message(imageMessage=image),
                            messageTimestamp=TS,
                        )
                    )
                ],
            )
        ],
    )
    event = nm.map_history_sync(N.HistorySync(Data=data), 3)
    (message,) = event.messages
    assert message.text == "old photo" and message.media is not None
    assert (message.media.kind, message.media.mime, message.media.size) == ("image", "image/png", 77)
    assert handle_message(message.media) == E.Message(imageMessage=image)


# ------------------------------------------------------------ outgoing media messages

UPLOAD = N.UploadResponse(
    url=KEYS["URL"],
    DirectPath=KEYS["directPath"],
    MediaKey=KEYS["mediaKey"],
    FileEncSHA256=KEYS["fileEncSHA256"],
    FileSHA256=KEYS["fileSHA256"],
    FileLength=4_321,
)


@pytest.mark.parametrize(
    ("media", "text"),
    [
        (OutgoingMedia("/s/p.jpg", "image", "image/jpeg", 4_321, caption="hi", width=800, height=600), "hi"),
        (
            OutgoingMedia(
                "/s/v.mp4", "video", "video/mp4", 4_321, caption="v", width=64, height=48, duration=9
            ),
            "v",
        ),
        (OutgoingMedia("/s/a.mp3", "audio", "audio/mpeg", 4_321, duration=200), None),
        (OutgoingMedia("/s/n.ogg", "audio", "audio/ogg", 4_321, ptt=True, duration=3), None),
        (
            OutgoingMedia("/s/x.bin", "document", "application/pdf", 4_321, file_name="a.pdf", caption="pdf"),
            "pdf",
        ),
        (
            OutgoingMedia(
                "/s/s.webp", "sticker", "image/webp", 4_321, caption="dropped", width=512, height=512
            ),
            None,
        ),
    ],
    ids=["image", "video", "audio", "voice-note", "document", "sticker"],
)
def test_outgoing_media_maps_back_to_what_was_sent(media: OutgoingMedia, text: str | None) -> None:
    """What we send is what a recipient's driver would report (kind, metadata, caption, reply)."""
    ctx = E.ContextInfo(stanzaID="ORIG1", isForwarded=True, forwardingScore=1)
    message = build_media_message(media, UPLOAD, context=ctx, now=TS)

    event = mapped(message)
    received = event.media
    assert received is not None
    assert (received.kind, received.size, event.text) == (media.kind, UPLOAD.FileLength, text)
    assert (event.reply_to_id, event.forwarded) == ("ORIG1", True)
    assert (received.width, received.height, received.duration) == (media.width, media.height, media.duration)
    assert received.ptt is media.ptt
    assert received.mime == ("audio/ogg; codecs=opus" if media.ptt else media.mime)
    assert received.file_name == ("a.pdf" if media.kind == "document" else None)
    part = getattr(handle_message(received), f"{media.kind}Message")
    assert (part.mediaKey, part.directPath, part.fileSHA256) == (
        KEYS["mediaKey"],
        KEYS["directPath"],
        KEYS["fileSHA256"],
    )


def test_outgoing_media_takes_missing_metadata_from_the_preview() -> None:
    media = OutgoingMedia("/s/p.png", "image", "image/png", 10, width=None, height=None)
    preview = MediaPreview(thumbnail=b"\xff\xd8jpeg", width=30, height=20)
    message = build_media_message(media, UPLOAD, preview=preview)
    assert (message.imageMessage.width, message.imageMessage.height) == (30, 20)
    assert message.imageMessage.JPEGThumbnail == b"\xff\xd8jpeg"
    assert not message.imageMessage.HasField("contextInfo")  # no reply, no forward: no context
    document = build_media_message(OutgoingMedia("/s/r.csv", "document", "text/csv", 10), UPLOAD)
    assert (document.documentMessage.fileName, document.documentMessage.caption) == ("r.csv", "")


# ---------------------------------------------------------------- receipts, presence


def test_receipts_delivered_read_played_and_ignored_types() -> None:
    source = N.MessageSource(Chat=jid(ALICE), Sender=jid(ALICE, device=1), IsFromMe=False)

    def receipt(kind: int, ts: int = TS) -> N.Receipt:
        return N.Receipt(MessageSource=source, MessageIDs=["A", "B"], Timestamp=ts, Type=kind)

    assert nm.map_receipt(receipt(N.Receipt.DELIVERED), 1) == Receipt(
        seq=1, chat_jid=f"{ALICE}@s.whatsapp.net", message_ids=("A", "B"), status="delivered", timestamp=TS
    )
    read = nm.map_receipt(receipt(N.Receipt.READ, TS_MS), 2)
    assert read is not None and (read.status, read.timestamp) == ("read", TS)
    played = nm.map_receipt(receipt(N.Receipt.PLAYED), 3)
    assert played is not None and played.status == "played"
    assert nm.map_receipt(receipt(N.Receipt.READ_SELF), 4) is None
    assert nm.map_receipt(receipt(N.Receipt.RETRY), 5) is None


def test_chat_presence_typing_recording_paused() -> None:
    source = N.MessageSource(Chat=jid(ALICE), Sender=jid(ALICE, device=4))

    def chat_presence(state: int, media: int) -> N.ChatPresence:
        return N.ChatPresence(MessageSource=source, State=state, Media=media)

    typing = nm.map_chat_presence(chat_presence(N.ChatPresence.COMPOSING, N.ChatPresence.TEXT), 1)
    assert typing == PresenceUpdate(
        seq=1, chat_jid=f"{ALICE}@s.whatsapp.net", jid=f"{ALICE}@s.whatsapp.net", presence="composing"
    )
    recording = nm.map_chat_presence(chat_presence(N.ChatPresence.COMPOSING, N.ChatPresence.AUDIO), 2)
    assert recording.presence == "recording"
    assert (
        nm.map_chat_presence(chat_presence(N.ChatPresence.PAUSED, N.ChatPresence.TEXT), 3).presence
        == "paused"
    )


def test_presence_online_and_last_seen() -> None:
    online = nm.map_presence(N.Presence(From=jid(ALICE), Unavailable=False), 1)
    assert online == PresenceUpdate(
        seq=1, chat_jid=f"{ALICE}@s.whatsapp.net", jid=f"{ALICE}@s.whatsapp.net", presence="available"
    )
    offline = nm.map_presence(N.Presence(From=jid(ALICE), Unavailable=True, LastSeen=TS_MS), 2)
    assert (offline.presence, offline.last_seen) == ("unavailable", TS)


# ----------------------------------------------------------------------- history sync


def test_history_sync_messages_and_push_names() -> None:
    def web(msg_id: str, text: str, ts: int, *, from_me: bool = False) -> H.HistorySyncMsg:
        return H.HistorySyncMsg(
            message=W.WebMessageInfo(
                key=MessageKey(remoteJID=f"{ALICE}@s.whatsapp.net", fromMe=from_me, ID=msg_id),
                message=E.Message(conversation=text),
                messageTimestamp=ts,
            )
        )

    reaction = H.HistorySyncMsg(
        message=W.WebMessageInfo(
            key=MessageKey(remoteJID=f"{ALICE}@s.whatsapp.net", ID="R1"),
            message=E.Message(reactionMessage=E.ReactionMessage(key=MessageKey(ID="H1"), text="❤")),
            messageTimestamp=TS,
        )
    )
    data = H.HistorySync(
        syncType=H.HistorySync.INITIAL_BOOTSTRAP,
        progress=100,
        conversations=[
            H.Conversation(
                ID=f"{ALICE}@s.whatsapp.net",
                messages=[web("H2", "later", TS + 60, from_me=True), web("H1", "first", TS), reaction],
            ),
        ],
        pushnames=[H.Pushname(ID=f"{ALICE}@s.whatsapp.net", pushname="Alice")],
    )
    event = nm.map_history_sync(N.HistorySync(Data=data), 9, own_jid=f"{ME}@s.whatsapp.net")

    assert isinstance(event, HistorySync)
    assert (event.seq, event.sync_type, event.progress, event.is_latest) == (
        9,
        "INITIAL_BOOTSTRAP",
        100,
        True,
    )
    assert [(m.id, m.text, m.from_me, m.sender_jid, m.seq) for m in event.messages] == [
        ("H1", "first", False, f"{ALICE}@s.whatsapp.net", 9),
        ("H2", "later", True, f"{ME}@s.whatsapp.net", 9),
    ]
    assert event.contacts == ((f"{ALICE}@s.whatsapp.net", "Alice"),)


def test_history_sync_partial_batch_is_not_latest() -> None:
    data = H.HistorySync(syncType=H.HistorySync.RECENT, progress=40)
    event = nm.map_history_sync(N.HistorySync(Data=data), 1)
    assert (event.sync_type, event.progress, event.is_latest, event.messages) == ("RECENT", 40, False, ())


# ------------------------------------------------------------------ connection events


def test_qr_codes_with_expiry() -> None:
    first = nm.map_qr("2@abc", 1, 0, now_ms=1_000)
    later = nm.map_qr("2@def", 2, 1, now_ms=61_000)
    assert first == QrCode(seq=1, code="2@abc", expires_at_ms=61_000)
    assert later.expires_at_ms == 81_000
    chained = nm.map_qr_event(N.QR(Codes=["a", "b", "c"]), 3, now_ms=0)
    assert [(q.code, q.expires_at_ms) for q in chained] == [("a", 60_000), ("b", 80_000), ("c", 100_000)]


def test_connected_from_device() -> None:
    me = N.Device(JID=jid(ME, device=3), PushName="Me", Initialized=True)
    assert nm.map_connected(me, 4) == Connected(seq=4, phone=ME)


def test_logged_out() -> None:
    event = nm.map_logged_out(N.LoggedOut(OnConnect=True, Reason=N.LOGGED_OUT), 5)
    assert event == LoggedOut(seq=5, reason="logged out while connecting")
    assert nm.map_logged_out(N.LoggedOut(Reason=N.MAIN_DEVICE_GONE), 6).reason == "main device gone"


def test_disconnects_replacement_failures_and_bans() -> None:
    assert nm.map_disconnected(N.Disconnected(status=True)) == Disconnected(
        seq=0, reason="connection lost: whatsmeow is reconnecting"
    )
    replaced = nm.map_stream_replaced(N.StreamReplaced())
    assert replaced.replaced and replaced.reason.startswith("replaced") and replaced.seq == 0
    failure = nm.map_connect_failure(N.ConnectFailure(Reason=N.SERVICE_UNAVAILABLE, Message="try later"))
    assert failure.reason == "connect failure: service unavailable: try later"
    ban = nm.map_temporary_ban(N.TemporaryBan(Code=N.TemporaryBan.SEND_TO_TOO_MANY_PEOPLE, Expire=3600))
    assert ban.reason == "temporary ban: sent to too many people; expires in 3600s"
    assert nm.map_stream_error(N.StreamError(Code="515")).reason == "stream error: 515"
    assert nm.map_client_outdated(N.ClientOutdated()).reason.startswith("client outdated")


# ---------------------------------------------------------------------------- contacts


def test_contact_store_and_push_names() -> None:
    contacts = [
        N.Contact(JID=jid(ALICE), Info=N.ContactInfo(Found=True, FullName="Alice Doe", PushName="Ali")),
        N.Contact(JID=jid("5511977776666"), Info=N.ContactInfo(Found=True, PushName="Bob")),
        N.Contact(JID=N.JID()),  # no JID: skipped
    ]
    assert nm.map_contacts(contacts, 3) == ContactsUpdate(
        seq=3,
        contacts=(
            (f"{ALICE}@s.whatsapp.net", "Alice Doe", "Ali"),
            ("5511977776666@s.whatsapp.net", None, "Bob"),
        ),
    )
    assert nm.map_contacts([], 1) is None

    tracker = nm.PushNameTracker()
    assert tracker.seen(f"{ALICE}@s.whatsapp.net", "Alice", 1) == ContactsUpdate(
        seq=1, contacts=((f"{ALICE}@s.whatsapp.net", None, "Alice"),)
    )
    assert tracker.seen(f"{ALICE}@s.whatsapp.net", "Alice", 2) is None  # unchanged
    assert tracker.seen(f"{ALICE}@s.whatsapp.net", "Alice B.", 3) is not None
    assert tracker.seen(f"{ALICE}@s.whatsapp.net", None, 4) is None
