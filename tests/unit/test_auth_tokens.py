"""Access tokens (pinned algorithm, key ids, rotation, expiry) and the gateway's per-agent event filter."""

from __future__ import annotations

import base64
from typing import Literal

import orjson
import pytest
from pydantic import SecretStr

from command_api.settings import Limit
from ws_gateway.hub import Client, Event, Hub, for_agent
from zapstream_contracts import payloads as p
from zapstream_contracts.envelope import Envelope
from zapstream_contracts.payloads import Wire
from zapstream_platform.tokens import InvalidToken, JwtSettings, TokenSigner

KEY_A = "a" * 40
KEY_B = "b" * 40


def signer(active: str = "a", **keys: str) -> TokenSigner:
    keys = keys or {"a": KEY_A}
    return TokenSigner(JwtSettings(keys={k: SecretStr(v) for k, v in keys.items()}, active_kid=active))


def b64(obj: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()


def test_round_trip_and_claims() -> None:
    s = signer()
    token, exp = s.issue("u1", "t1", "agent", 3, 900, now=1000)
    claims = s.verify(token, now=1100)
    assert (claims.user_id, claims.tenant_id, claims.role, claims.token_version) == ("u1", "t1", "agent", 3)
    assert exp == 1900
    header = orjson.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "HS256", "typ": "JWT", "kid": "a"}


def test_expiry_with_leeway() -> None:
    s = signer()
    token, _ = s.issue("u1", "t1", "owner", 0, 60, now=1000)
    s.verify(token, now=1060 + 30)
    with pytest.raises(InvalidToken):
        s.verify(token, now=1060 + 31)
    s.verify(token, now=5000, check_expiry=False)


def test_pinned_algorithm_and_forgeries() -> None:
    s = signer()
    token, _ = s.issue("u1", "t1", "agent", 0, 60, now=1000)
    head, body, sig = token.split(".")
    forged_body = b64(orjson.loads(base64.urlsafe_b64decode(body + "==")) | {"role": "owner"})
    for bad in (
        f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': 'a'})}.{body}.",
        f"{b64({'alg': 'HS512', 'typ': 'JWT', 'kid': 'a'})}.{body}.{sig}",
        f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': 'zz'})}.{body}.{sig}",
        f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': 'a', 'jku': 'http://x'})}.{body}.{sig}",
        f"{head}.{forged_body}.{sig}",
        f"{head}.{body}.{sig[:-2]}",
        f"{head}.{body}",
        "not a token",
        "e" * 10000,
        f"{head}.!!!.{sig}",
    ):
        with pytest.raises(InvalidToken):
            s.verify(bad, now=1000)


def test_key_rotation_by_kid() -> None:
    old = signer("a", a=KEY_A)
    token, _ = old.issue("u1", "t1", "owner", 0, 60, now=1000)
    rotated = signer("b", a=KEY_A, b=KEY_B)
    assert rotated.verify(token, now=1000).user_id == "u1"  # old kid still verifies
    new, _ = rotated.issue("u1", "t1", "owner", 0, 60, now=1000)
    assert orjson.loads(base64.urlsafe_b64decode(new.split(".")[0] + "=="))["kid"] == "b"
    with pytest.raises(InvalidToken):
        signer("b", b=KEY_B).verify(token, now=1000)  # retired kid


def test_weak_or_missing_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        signer("a", a="short")
    with pytest.raises(ValueError):
        signer("x", a=KEY_A)


def test_rate_limit_specs() -> None:
    assert Limit.parse("10/300") == Limit(10, 300)
    assert Limit.parse("3/60s") == Limit(3, 60)
    for bad in ("10", "0/5", "a/b", "5/0"):
        with pytest.raises(ValueError):
            Limit.parse(bad)


MINE, THEIRS = "51911111111@s.whatsapp.net", "51922222222@s.whatsapp.net"
CHATS = frozenset({MINE})


def frame_of(type_: str, payload: Wire, session_id: str = "s1") -> bytes:
    """A record's value as the runner writes it."""
    return Envelope(type=type_, session_id=session_id, event_id="e", occurred_on="2026-01-01T00:00:00.000Z",
                    payload=payload.model_dump(by_alias=True, mode="json")).value()


def msg(id_: str, chat: str) -> p.MessageSummary:
    return p.MessageSummary(id=id_, remote_jid=chat, from_me=False, timestamp=1, text="hola")


def upsert(*chats: str) -> bytes:
    return frame_of("session.messages.upsert", p.MessagesUpsert(
        tenant_id="t1", upsert_type="notify", messages_count=len(chats),
        messages=[msg(str(i), c) for i, c in enumerate(chats, 1)]))


def agent_view(frame: bytes, chats: frozenset[str] = CHATS) -> bytes | None:
    return for_agent(Event(frame), chats)


def test_agent_filter_batches_items_and_counts() -> None:
    mixed = upsert(MINE, THEIRS)
    out = agent_view(mixed)
    assert out is not None
    # Byte for byte what the gateway sent before it read payloads through the contract: the frame with the
    # other chats' items taken out and the count adjusted.
    wire = orjson.loads(mixed)
    kept = [m for m in wire["payload"]["messages"] if m["remoteJid"] == MINE]
    assert out == orjson.dumps(wire | {"payload": wire["payload"] | {"messages": kept, "messagesCount": 1}})
    assert agent_view(upsert(THEIRS)) is None
    whole = upsert(MINE, MINE)
    assert agent_view(whole) is whole  # all of it: the record's own bytes go out
    update = frame_of("session.messages.update", p.MessagesUpdate(tenant_id="t1", updates_count=2, updates=[
        p.StatusUpdate(message_id="1", remote_jid=MINE, status="read", status_at=1),
        p.StatusUpdate(message_id="2", status="read", status_at=1)]))
    assert [u["messageId"] for u in orjson.loads(agent_view(update) or b"")["payload"]["updates"]] == ["1"]
    edit = frame_of("session.messages.edit", p.MessagesEdit(tenant_id="t1", edits_count=1, edits=[
        p.MessageEdit(message_id="1", chat_jid=THEIRS, text="x", edited_at=1)]))
    assert agent_view(edit) is None
    reaction = frame_of("session.messages.reaction", p.MessagesReaction(tenant_id="t1", reactions_count=1, reactions=[
        p.ReactionEntry(message_id="1", chat_jid=MINE, actor_jid=THEIRS, from_me=False, emoji="👍", reacted_at=1,
                        removed=False)]))
    assert agent_view(reaction) is reaction
    contacts = frame_of("session.contacts.upsert", p.ContactsUpsert(tenant_id="t1", contacts_count=2, contacts=[
        p.Contact(id=MINE, notify="Ana"), p.Contact(id=THEIRS, notify="Beto")]))
    assert orjson.loads(agent_view(contacts) or b"")["payload"]["contactsCount"] == 1
    history = frame_of("session.history.sync", p.HistorySync(
        tenant_id="t1", sync_type="recent", progress=100, is_latest=True, chats_count=1, contacts_count=0,
        messages_count=1, messages_truncated=False, messages=[msg("1", THEIRS)]))
    assert agent_view(history) is None
    media = frame_of("session.messages.media", p.MessagesMedia(tenant_id="t1", media_count=2, media=[
        p.MediaEntry(message_id=str(i), chat_jid=c, kind="image", url="u", mime="image/png", size=1)
        for i, c in enumerate((MINE, THEIRS))]))
    narrowed = orjson.loads(agent_view(media) or b"")["payload"]
    assert narrowed["mediaCount"] == 1 and [m["chatJid"] for m in narrowed["media"]] == [MINE]


def delete(scope: Literal["message", "chat"], chat: str | None, *items: p.MessageDelete) -> bytes:
    return frame_of("session.messages.delete", p.MessagesDelete(
        tenant_id="t1", scope=scope, chat_jid=chat, deletes_count=len(items), deletes=list(items),
        deleted_at="2026-01-01T00:00:00.000Z" if scope == "chat" else None))


def test_agent_filter_single_chat_events_and_status() -> None:
    def presence(chat: str) -> bytes:
        return frame_of("session.presence.update", p.PresenceUpdate(tenant_id="t1", chat_jid=chat, updates_count=0,
                                                                    updates=[]))

    assert agent_view(presence(MINE))
    assert agent_view(presence(THEIRS)) is None
    assert agent_view(delete("chat", THEIRS)) is None
    assert agent_view(delete("chat", MINE))
    revoked = delete("message", None, p.MessageDelete(message_id="1", deleted_at=1, chat_jid=MINE),
                     p.MessageDelete(message_id="2", deleted_at=1, chat_jid=THEIRS))
    assert [d["messageId"] for d in orjson.loads(agent_view(revoked) or b"")["payload"]["deletes"]] == ["1"]
    # An item without its chat is of the event's chat.
    assert agent_view(delete("message", MINE, p.MessageDelete(message_id="1", deleted_at=1)))
    connected = frame_of("session.status.connected", p.StatusConnected(tenant_id="t1", phone="1", connected_at="t"))
    assert agent_view(connected) is connected
    for status in ("session.status.disconnected", "session.status.logged_out"):
        assert agent_view(orjson.dumps({"type": status, "sessionId": "s1", "eventId": "e", "occurredOn": "t",
                                        "payload": {"tenantId": "t1"}}))
    qr = frame_of("session.qr.updated", p.QrUpdated(tenant_id="t1", qr="2@x", expires_at="t"))
    created = frame_of("session.created", p.SessionCreated(tenant_id="t1", id="s1", status="created",
                                                           created_at="t"))
    succeeded = frame_of("session.command.succeeded", p.CommandSucceeded(tenant_id="t1", command_id="c",
                                                                         command_type="message.send"))
    for other in (qr, created, succeeded):
        assert agent_view(other) is None
    junk = orjson.dumps({"type": "session.messages.upsert", "sessionId": "s1", "eventId": "e", "occurredOn": "t",
                         "payload": "junk"})
    assert agent_view(junk) is None
    invalid = orjson.dumps({"type": "session.messages.upsert", "sessionId": "s1", "eventId": "e", "occurredOn": "t",
                            "payload": {"tenantId": "t1", "messages": [{"remoteJid": MINE}]}})
    assert agent_view(invalid) is None
    campaign = orjson.dumps({"type": "campaign.progress", "campaignId": "c", "eventId": "e", "occurredOn": "t",
                             "payload": {"tenantId": "t1"}})
    assert agent_view(campaign) is None


def test_hub_sends_each_client_its_view() -> None:
    hub = Hub()
    admin, agent, scoped = Client("t1", 10), Client("t1", 10, chats=CHATS), Client("t1", 10, sessions=frozenset({"s2"}))
    mine = Client("t1", 10, sessions=frozenset({"s1"}))
    for c in (admin, agent, scoped, mine):
        hub.add(c)
    frame = upsert(MINE, THEIRS)
    hub.publish("t1", frame)
    hub.publish("t1", b"not json")
    assert admin.queue.qsize() == 2 and admin.queue.get_nowait() == frame
    assert agent.queue.qsize() == 1
    assert [m["id"] for m in orjson.loads(agent.queue.get_nowait())["payload"]["messages"]] == ["1"]
    assert scoped.queue.qsize() == 0
    assert mine.queue.qsize() == 1 and mine.queue.get_nowait() == frame


def two_chat_batches() -> dict[str, tuple[Wire, str]]:
    """A payload of each batch type with one item of each chat, and the key of its list."""
    return {
        "session.messages.upsert": (p.MessagesUpsert(tenant_id="t1", upsert_type="append", request_id="r",
                                                     messages_count=2, messages=[msg("1", MINE), msg("2", THEIRS)]),
                                    "messages"),
        "session.history.sync": (p.HistorySync(tenant_id="t1", sync_type="recent", progress=1, is_latest=False,
                                               chats_count=2, contacts_count=0, messages_count=2,
                                               messages_truncated=True, messages=[msg("2", THEIRS), msg("1", MINE)]),
                                 "messages"),
        "session.messages.update": (p.MessagesUpdate(tenant_id="t1", updates_count=2, source="receipt", updates=[
            p.StatusUpdate(message_id="1", remote_jid=MINE, status="delivered", status_at=1),
            p.StatusUpdate(message_id="2", remote_jid=THEIRS, status="read", status_at=2)]), "updates"),
        "session.messages.edit": (p.MessagesEdit(tenant_id="t1", edits_count=2, edits=[
            p.MessageEdit(message_id="1", chat_jid=MINE, text="a", edited_at=1, from_me=True),
            p.MessageEdit(message_id="2", chat_jid=THEIRS, text="b", edited_at=1)]), "edits"),
        "session.messages.reaction": (p.MessagesReaction(tenant_id="t1", reactions_count=2, reactions=[
            p.ReactionEntry(message_id=str(i), chat_jid=c, actor_jid=c, from_me=False, emoji=None, reacted_at=1,
                            removed=True) for i, c in enumerate((THEIRS, MINE))]), "reactions"),
        "session.messages.media": (p.MessagesMedia(tenant_id="t1", media_count=2, media=[
            p.MediaEntry(message_id="1", chat_jid=MINE, kind="audio", url=None, mime="audio/ogg", size=None,
                         ptt=True, error="gone"),
            p.MediaEntry(message_id="2", chat_jid=THEIRS, kind="image", url="u", mime="image/png", size=3)]),
                                   "media"),
        "session.contacts.upsert": (p.ContactsUpsert(tenant_id="t1", contacts_count=2, contacts_truncated=True,
                                                     contacts=[p.Contact(id=THEIRS), p.Contact(id=MINE, name="Ana")]),
                                    "contacts"),
        "session.messages.delete": (p.MessagesDelete(tenant_id="t1", scope="message", deletes_count=2, deletes=[
            p.MessageDelete(message_id="1", deleted_at=1, chat_jid=MINE, from_me=True),
            p.MessageDelete(message_id="2", deleted_at=1, chat_jid=THEIRS)]), "deletes"),
    }


@pytest.mark.parametrize("type_", sorted(two_chat_batches()))
def test_an_agents_narrowed_frame_is_byte_for_byte_the_old_one(type_: str) -> None:
    """Before payloads were read through the contract, the gateway cut the wire dict: the frame minus the other
    chats' items, ``<list>Count`` adjusted. Building it from the typed payload sends the same bytes."""
    payload, key = two_chat_batches()[type_]
    frame = frame_of(type_, payload)
    wire = orjson.loads(frame)
    item_chat = "id" if key == "contacts" else "remoteJid" if key in ("messages", "updates") else "chatJid"
    kept = [i for i in wire["payload"][key] if i[item_chat] == MINE]
    old = orjson.dumps(wire | {"payload": wire["payload"] | {key: kept, f"{key}Count": len(kept)}})
    event = Event(frame)
    assert for_agent(event, CHATS) == old
    assert for_agent(event, CHATS) is for_agent(event, frozenset({MINE, "other"}))  # built once per record
    assert for_agent(event, frozenset({MINE, THEIRS})) is frame
    assert for_agent(event, frozenset({"other"})) is None
