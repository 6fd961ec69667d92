"""Access tokens (pinned algorithm, key ids, rotation, expiry) and the gateway's per-agent event filter."""

from __future__ import annotations

import base64

import orjson
import pytest
from pydantic import SecretStr

from command_api.settings import Limit
from ws_gateway.hub import Client, Hub, for_agent
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


def ev(type_: str, **payload: object) -> dict[str, object]:
    return {"type": type_, "sessionId": "s1", "eventId": "e", "occurredOn": "t", "payload": {"tenantId": "t1", **payload}}


def test_agent_filter_batches_items_and_counts() -> None:
    upsert = ev("session.messages.upsert", messagesCount=2,
                messages=[{"id": "1", "remoteJid": MINE}, {"id": "2", "remoteJid": THEIRS}])
    out = for_agent(upsert, CHATS)
    assert out is not None and [m["id"] for m in out["payload"]["messages"]] == ["1"]
    assert out["payload"]["messagesCount"] == 1
    assert for_agent(ev("session.messages.upsert", messagesCount=1, messages=[{"remoteJid": THEIRS}]), CHATS) is None
    whole = ev("session.messages.update", updatesCount=1, updates=[{"remoteJid": MINE}])
    assert for_agent(whole, CHATS) is whole
    assert for_agent(ev("session.messages.edit", editsCount=1, edits=[{"chatJid": THEIRS}]), CHATS) is None
    assert for_agent(ev("session.messages.reaction", reactionsCount=1, reactions=[{"chatJid": MINE}]), CHATS)
    assert for_agent(ev("session.contacts.upsert", contactsCount=2, contacts=[{"id": MINE}, {"id": THEIRS}]),
                     CHATS)["payload"]["contactsCount"] == 1  # type: ignore[index]
    history = ev("session.history.sync", messagesCount=1, messages=[{"remoteJid": THEIRS}])
    assert for_agent(history, CHATS) is None
    media = ev("session.messages.media", mediaCount=2, media=[{"chatJid": MINE}, {"chatJid": THEIRS}])
    assert for_agent(media, CHATS)["payload"]["mediaCount"] == 1  # type: ignore[index]


def test_agent_filter_single_chat_events_and_status() -> None:
    assert for_agent(ev("session.presence.update", chatJid=MINE, updates=[]), CHATS)
    assert for_agent(ev("session.presence.update", chatJid=THEIRS, updates=[]), CHATS) is None
    assert for_agent(ev("session.messages.delete", scope="chat", chatJid=THEIRS, deletes=[]), CHATS) is None
    assert for_agent(ev("session.messages.delete", scope="message", chatJid=MINE, deletesCount=1,
                        deletes=[{"messageId": "1"}]), CHATS)
    for status in ("session.status.connected", "session.status.disconnected", "session.status.logged_out"):
        assert for_agent(ev(status), CHATS)
    for other in ("session.qr.updated", "session.created", "session.deleted", "session.command.succeeded"):
        assert for_agent(ev(other), CHATS) is None
    assert for_agent({"type": "session.messages.upsert", "payload": "junk"}, CHATS) is None


def test_hub_sends_each_client_its_view() -> None:
    hub = Hub()
    admin, agent, scoped = Client("t1", 10), Client("t1", 10, chats=CHATS), Client("t1", 10, sessions=frozenset({"s2"}))
    for c in (admin, agent, scoped):
        hub.add(c)
    frame = orjson.dumps(ev("session.messages.upsert", messagesCount=2,
                            messages=[{"id": "1", "remoteJid": MINE}, {"id": "2", "remoteJid": THEIRS}]))
    hub.publish("t1", frame)
    hub.publish("t1", b"not json")
    assert admin.queue.qsize() == 2 and admin.queue.get_nowait() == frame
    assert agent.queue.qsize() == 1
    assert [m["id"] for m in orjson.loads(agent.queue.get_nowait())["payload"]["messages"]] == ["1"]
    assert scoped.queue.qsize() == 0
