"""The command side with in-memory fakes: principals, scopes, rate limits, idempotency, refresh reuse, services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from command_api.chats.service import ChatsService
from command_api.identity.service import IdentityService, sha256
from command_api.messages.schemas import ChatSendBody
from command_api.messages.service import MessagesService
from command_api.sessions.service import SessionsService
from command_api.settings import AuthSettings, Settings
from command_api.shared.idempotency import Idem
from command_api.shared.problems import Problem
from tests.unit.command_api_fakes import (
    Clock,
    FakeBus,
    FakePrincipals,
    authenticator,
    limiter,
    machine,
    signer,
    user,
    world,
)
from ws_gateway.settings import Settings as GatewaySettings
from zapstream_contracts import commands as c
from zapstream_platform.tokens import JwtSettings

NO_KEY = Idem(None)


def idem(key: str, body: bytes = b"{}") -> Idem:
    from command_api.shared.idempotency import fingerprint

    return Idem(key, fingerprint("POST", "/x", body))


async def status_of(coro: Any) -> int:
    with pytest.raises(Problem) as caught:
        await coro
    return caught.value.status


# --- principals ------------------------------------------------------------------------------------


async def test_api_keys_and_access_tokens_resolve_to_principals() -> None:
    from command_api.shared.security import UserAuth

    source = FakePrincipals()
    auth = authenticator(source)
    key = source.add_key("acme", session_ids=frozenset({"s1"}))
    who = await auth.authenticate(key)
    assert (who.tenant_id, who.role, who.session_ids) == ("acme", "machine", frozenset({"s1"}))

    uid = uuid.uuid4()
    source.users[uid] = UserAuth("acme", "agent", 3, False, "default")
    token, _ = signer().issue(str(uid), "acme", "agent", 3, 900)
    who = await auth.authenticate(token)
    assert (who.tenant_id, who.role, who.user_id) == ("acme", "agent", str(uid))

    # Logged out everywhere (version bumped), disabled, or a token naming another tenant: 401.
    for changed in (UserAuth("acme", "agent", 4, False, "default"), UserAuth("acme", "agent", 3, True, "default"),
                    UserAuth("other", "agent", 3, False, "default")):
        source.users[uid] = changed
        assert await status_of(auth.authenticate(token)) == 401
    for bad in (None, "", "zs_live_unknown", token[:-2] + "xx", "x" * 5000):
        assert await status_of(auth.authenticate(bad)) == 401


async def test_principals_are_cached_only_while_identity_events_can_evict_them() -> None:
    source = FakePrincipals()
    auth = authenticator(source)
    key = source.add_key("acme")
    await auth.authenticate(key)
    await auth.authenticate(key)
    assert source.lookups == 2  # not listening: every request reads the source

    auth.listening = True
    await auth.authenticate(key)
    await auth.authenticate(key)
    assert source.lookups == 3
    # The key is revoked; its tenant's identity event evicts the cached entry: the next request fails.
    source.keys.clear()
    auth.evict_tenant("acme")
    assert await status_of(auth.authenticate(key)) == 401


async def test_rate_limits_per_key_and_per_tenant_by_plan() -> None:
    clock = Clock()
    source = FakePrincipals()
    auth = authenticator(source, clock, limiter(clock, tiny=("3/60", "5/60")))
    small, small2 = source.add_key("small", plan="tiny"), source.add_key("small", plan="tiny")
    big = source.add_key("big")
    for _ in range(3):
        await auth.authenticate(small)
    with pytest.raises(Problem) as caught:
        await auth.authenticate(small)
    assert caught.value.status == 429
    headers = caught.value.headers or {}
    assert 1 <= int(headers["Retry-After"]) <= 20
    assert headers["RateLimit-Policy"] == '"key";q=3;w=60' and headers["RateLimit"].startswith('"key";r=0;')
    # Another tenant is not slowed at all.
    for _ in range(50):
        await auth.authenticate(big)
    # The same tenant's second key has its own bucket, but the tenant's bucket (5) is shared: 3 spent, 2 left.
    await auth.authenticate(small2)
    await auth.authenticate(small2)
    with pytest.raises(Problem) as caught:
        await auth.authenticate(small2)
    assert caught.value.status == 429 and (caught.value.headers or {})["RateLimit-Policy"].startswith('"tenant"')
    # Buckets refill with time.
    clock.now += 60
    await auth.authenticate(small)


# --- scopes ----------------------------------------------------------------------------------------


async def test_foreign_deleted_and_out_of_scope_sessions_all_look_missing() -> None:
    w = world()
    mine, theirs = w.sessions.add("a"), w.sessions.add("b")
    assert await w.access.owned(machine("a"), mine) == mine
    assert await status_of(w.access.owned(machine("a"), theirs)) == 404
    assert await status_of(w.access.owned(machine("a"), "not-a-uuid")) == 404
    assert await status_of(w.access.owned(machine("a"), str(uuid.uuid4()))) == 404
    assert await status_of(w.access.owned(machine("a", frozenset({str(uuid.uuid4())})), mine)) == 404
    await w.sessions.mark_deleted("a", mine)
    w.access.forget(mine)
    assert await status_of(w.access.owned(machine("a"), mine)) == 404


async def test_agents_and_scoped_keys_cannot_manage_sessions() -> None:
    w = world()
    svc = SessionsService(w.sessions, w.access, w.commands)
    sid = w.sessions.add("a")
    assert await status_of(svc.create(user("a", "agent"), NO_KEY, None, None)) == 403
    assert await status_of(svc.stop(user("a", "agent"), NO_KEY, None, sid, None)) == 403
    assert await status_of(svc.create(machine("a", frozenset({sid})), NO_KEY, None, None)) == 403
    assert w.bus.sent == []


# --- idempotency -----------------------------------------------------------------------------------


async def test_idempotency_key_replays_the_first_answer_and_sends_once() -> None:
    w = world()
    svc = SessionsService(w.sessions, w.access, w.commands)
    sid = w.sessions.add("a")
    first, replayed = await svc.start(machine("a"), idem("k1"), None, sid)
    again, replayed_again = await svc.start(machine("a"), idem("k1"), None, sid)
    assert (replayed, replayed_again) == (False, True) and first == again and len(w.bus.sent) == 1
    # Another tenant's identical key is its own.
    other = w.sessions.add("b")
    await svc.start(machine("b"), idem("k1"), None, other)
    assert len(w.bus.sent) == 2
    # The same key for a different request: 422; a first request still running: 409.
    assert await status_of(svc.start(machine("a"), idem("k1", b'{"other": 1}'), None, sid)) == 422
    w.idem.rows[("a", "k2")] = (idem("k2").fingerprint, None)
    assert await status_of(svc.start(machine("a"), idem("k2"), None, sid)) == 409


async def test_a_failed_first_attempt_releases_the_key_and_the_retry_reuses_the_command_id() -> None:
    w = world()
    sent_before: list[str] = []

    class Flaky:
        calls = 0

        async def send(self, *args: Any, **kwargs: Any) -> str:
            Flaky.calls += 1
            sent_before.append(kwargs["command_id"])
            raise ConnectionError("broker down")

    w.commands.bus = Flaky()
    svc = SessionsService(w.sessions, w.access, w.commands)
    sid = w.sessions.add("a")
    with pytest.raises(ConnectionError):
        await svc.start(machine("a"), idem("k"), None, sid)
    assert w.idem.rows == {}
    w.commands.bus = w.bus
    body, replayed = await svc.start(machine("a"), idem("k"), None, sid)
    # Key-derived command ids: the runner recognises a re-publish of a half-failed attempt.
    assert not replayed and body["commandId"] == sent_before[0] == w.bus.sent[0].command_id


# --- services --------------------------------------------------------------------------------------


async def test_sessions_service_lifecycle_keeps_the_stop_reason_and_deleted_sessions_vanish() -> None:
    w = world()
    svc = SessionsService(w.sessions, w.access, w.commands)
    body, _ = await svc.create(user("a"), NO_KEY, None, "tienda")
    sid = body["sessionId"]
    created = w.bus.sent[-1]
    assert isinstance(created, c.CreateSession) and created.name == "tienda" and created.session_id == sid

    await svc.stop(user("a"), NO_KEY, None, sid, "logout")
    stop = w.bus.sent[-1]
    assert isinstance(stop, c.StopSession) and stop.reason == "logout"
    assert stop.model_dump(by_alias=True)["reason"] == "logout"

    await svc.delete(user("a"), NO_KEY, None, sid)
    assert isinstance(w.bus.sent[-1], c.DeleteSession)
    assert await status_of(svc.get(user("a"), sid)) == 404
    assert await status_of(svc.start(user("a"), NO_KEY, None, sid)) == 404


async def test_deleting_a_session_with_purge_says_so_in_the_command() -> None:
    w = world()
    svc = SessionsService(w.sessions, w.access, w.commands)
    kept, _ = await svc.create(user("a"), NO_KEY, None, None)
    purged, _ = await svc.create(user("a"), NO_KEY, None, None)
    await svc.delete(user("a"), NO_KEY, None, kept["sessionId"])
    await svc.delete(user("a"), NO_KEY, None, purged["sessionId"], purge=True)
    plain, purging = w.bus.sent[-2:]
    assert isinstance(plain, c.DeleteSession) and isinstance(purging, c.DeleteSession)
    assert not plain.purge and purging.purge and purging.session_id == purged["sessionId"]
    assert await status_of(svc.get(user("a"), purged["sessionId"])) == 404
    # A session deleted without a purge can be purged later; a plain delete of it, or another tenant's
    # purge, is a 404.
    await svc.delete(user("a"), NO_KEY, None, kept["sessionId"], purge=True)
    late = w.bus.sent[-1]
    assert isinstance(late, c.DeleteSession) and late.purge and late.session_id == kept["sessionId"]
    assert await status_of(svc.delete(user("a"), NO_KEY, None, kept["sessionId"])) == 404
    assert await status_of(svc.delete(user("b"), NO_KEY, None, kept["sessionId"], purge=True)) == 404
    assert await status_of(svc.start(user("a"), NO_KEY, None, kept["sessionId"])) == 404


async def test_the_qr_comes_raw_and_as_a_png_data_url_but_never_to_agents() -> None:
    w = world()
    svc = SessionsService(w.sessions, w.access, w.commands)
    sid = w.sessions.add("a", status="qr", qr="2@abc,def,ghi")
    view = await svc.get(user("a"), sid)
    assert view["qr"] == "2@abc,def,ghi" and view["qrImage"].startswith("data:image/png;base64,")
    agent_view = await svc.get(user("a", "agent"), sid)
    assert agent_view["qr"] is None and agent_view["qrImage"] is None
    assert [v["qrImage"] for v in await svc.list(user("a", "agent"))] == [None]


async def test_messages_service_sends_text_replies_and_forwards() -> None:
    w = world()

    class Texts:
        async def message_text(self, tenant_id: str, session_id: str, message_id: str) -> tuple[bool, str | None]:
            return {"M1": (True, "original"), "IMG": (True, None)}.get(message_id, (False, None))

    svc = MessagesService(Texts(), w.access, w.commands, library=None)  # type: ignore[arg-type]
    sid = w.sessions.add("a")
    who = machine("a")
    body, _ = await svc.send_to_session(who, NO_KEY, None, sid, "51988887777@s.whatsapp.net",
                                        ChatSendBody(content="Hola!", reply_to_message_id="M0"))
    sent = w.bus.sent[-1]
    assert isinstance(sent, c.SendMessage) and (sent.content, sent.reply_to_message_id) == ("Hola!", "M0")
    assert body["messageId"] and body["sessionId"] == sid
    await svc.send_to_chat(who, NO_KEY, None, "51988887777@s.whatsapp.net", ChatSendBody(forward_message_id="M1"))
    forwarded = w.bus.sent[-1]
    assert isinstance(forwarded, c.SendMessage) and forwarded.forwarded and forwarded.content == "original"
    assert forwarded.session_id == sid  # the tenant's latest session
    chat = "51988887777@s.whatsapp.net"
    assert await status_of(svc.send_to_chat(who, NO_KEY, None, chat, ChatSendBody(forward_message_id="NO"))) == 404
    assert await status_of(svc.send_to_chat(who, NO_KEY, None, chat, ChatSendBody(forward_message_id="IMG"))) == 422
    # An agent acts only on its assigned chats.
    agent = user("a", "agent")
    assert await status_of(svc.send_to_chat(agent, NO_KEY, None, chat, ChatSendBody(content="x"))) == 403
    assert await status_of(svc.send_to_chat(machine("b"), NO_KEY, None, chat, ChatSendBody(content="x"))) == 404


async def test_list_routes_of_a_tenant_without_a_session_are_empty_not_404() -> None:
    w = world()

    class Empty:
        async def chats(self, *a: Any) -> list[dict[str, Any]]:
            raise AssertionError("no session: nothing to read")

        contacts = messages = reactions = chats

    svc = ChatsService(Empty(), w.access, w.commands)  # type: ignore[arg-type]
    assert await svc.chats(machine("a"), None) == {"sessionId": None, "chats": []}
    assert await svc.contacts(machine("a"), None) == {"sessionId": None, "contacts": []}
    page = await svc.messages(machine("a"), "51999999999@s.whatsapp.net", None, 50, None)
    assert page["messages"] == [] and page["nextCursor"] is None
    assert await status_of(svc.messages(machine("a"), "x@s.whatsapp.net", None, 50, "@@@")) == 422
    # But a named session of another tenant is still a 404.
    assert await status_of(svc.chats(machine("a"), w.sessions.add("b"))) == 404


async def test_agents_see_only_the_commands_they_issued() -> None:
    w = world()
    svc = SessionsService(w.sessions, w.access, w.commands)
    sid = w.sessions.add("a")
    agent = user("a", "agent")
    w.grants.chats[agent.user_id or ""] = frozenset({"51911111111@s.whatsapp.net"})
    chats = ChatsService(None, w.access, w.commands)  # type: ignore[arg-type]
    body, _ = await chats.read(agent, NO_KEY, None, "51911111111@s.whatsapp.net", ["M1"], None)
    for cid in (body["commandId"], "someone-elses"):
        w.sessions.commands[cid] = {"commandId": cid, "sessionId": sid, "status": "succeeded"}
    assert (await svc.command(agent, body["commandId"]))["status"] == "succeeded"
    assert await status_of(svc.command(agent, "someone-elses")) == 404
    assert (await svc.command(user("a"), "someone-elses"))["commandId"] == "someone-elses"


# --- refresh reuse ---------------------------------------------------------------------------------


class FakeConn:
    async def execute(self, *args: Any) -> None:  # outbox and mail rows
        return None


class FakeIdentity:
    """The part of IdentityRepository that refresh rotation uses."""

    def __init__(self) -> None:
        self.user = {"id": uuid.uuid4(), "tenant_id": "a", "role": "owner", "token_version": 0, "disabled_at": None,
                     "email": "ada@example.com", "name": "Ada", "email_verified_at": datetime.now(UTC),
                     "created_at": datetime.now(UTC)}
        self.tokens: dict[bytes, dict[str, Any]] = {}

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeConn]:
        yield FakeConn()

    def add(self, token: str, family: uuid.UUID) -> None:
        self.tokens[sha256(token)] = {"id": uuid.uuid4(), "family_id": family, "user_id": self.user["id"],
                                      "rotated_at": None, "revoked_at": None,
                                      "expires_at": datetime.now(UTC) + timedelta(days=1)}

    async def refresh_for_update(self, conn: Any, token_hash: bytes) -> dict[str, Any] | None:
        return self.tokens.get(token_hash)

    async def user_by_id(self, conn: Any, user_id: uuid.UUID, lock: bool = False) -> dict[str, Any]:
        return self.user

    async def revoke_family(self, conn: Any, family: uuid.UUID) -> None:
        for row in self.tokens.values():
            if row["family_id"] == family and row["revoked_at"] is None:
                row["revoked_at"] = datetime.now(UTC)

    async def mark_rotated(self, conn: Any, token_id: uuid.UUID) -> None:
        for row in self.tokens.values():
            if row["id"] == token_id:
                row["rotated_at"] = datetime.now(UTC)

    async def insert_refresh(self, conn: Any, family: uuid.UUID, user_id: uuid.UUID, token_hash: bytes,
                             ttl_s: float) -> None:
        self.tokens[token_hash] = {"id": uuid.uuid4(), "family_id": family, "user_id": user_id, "rotated_at": None,
                                   "revoked_at": None, "expires_at": datetime.now(UTC) + timedelta(seconds=ttl_s)}


async def test_refresh_rotates_and_a_reused_token_revokes_its_whole_family() -> None:
    repo = FakeIdentity()
    svc = IdentityService(repo, AuthSettings(), signer(), "http://app", FakeBus())  # type: ignore[arg-type]
    repo.add("first", uuid.uuid4())
    answer, second = await svc.refresh("first")
    assert answer["accessToken"] and second != "first"
    _, third = await svc.refresh(second)
    # The rotated "first" comes back (a stolen copy): 401, and the newest token of the family dies too.
    assert await status_of(svc.refresh("first")) == 401
    assert await status_of(svc.refresh(third)) == 401
    assert await status_of(svc.refresh("never-issued")) == 401


# --- settings --------------------------------------------------------------------------------------


def test_services_refuse_the_built_in_or_a_short_jwt_key_outside_development_mode() -> None:
    for cls in (Settings, GatewaySettings):
        with pytest.raises(ValidationError, match="built-in development key"):
            cls(dev_mode=False)
        with pytest.raises(ValidationError, match="256 bits"):
            cls(dev_mode=False, jwt=JwtSettings(keys={"k": SecretStr("x" * 31)}, active_kid="k"))
        assert cls(dev_mode=True).dev_mode
        cls(dev_mode=False, jwt=JwtSettings(keys={"k": SecretStr("y" * 32)}, active_kid="k"))


async def test_edit_delete_react_presence_and_subscribe_publish_their_commands() -> None:
    w = world()
    messages = MessagesService(None, w.access, w.commands, library=None)  # type: ignore[arg-type]
    chats = ChatsService(None, w.access, w.commands)  # type: ignore[arg-type]
    sid = w.sessions.add("a")
    who, chat = machine("a"), "51911111111@s.whatsapp.net"
    await messages.edit(who, NO_KEY, None, chat, "M1", "new text", None)
    await messages.delete(who, NO_KEY, None, chat, "M1", sid)
    await messages.react(who, NO_KEY, None, chat, "M1", None, None)
    await chats.presence(who, NO_KEY, None, chat, "composing", None)
    await chats.subscribe(who, NO_KEY, None, chat, None)
    await chats.read(who, NO_KEY, None, chat, ["M1", "M2"], None)
    sent = w.bus.sent
    assert [type(x) for x in sent] == [c.EditMessage, c.DeleteMessage, c.ReactToMessage, c.SendPresence,
                                       c.SubscribePresence, c.ReadMessages]
    assert all(x.session_id == sid and x.tenant_id == "a" for x in sent)
    edit, react, read = sent[0], sent[2], sent[5]
    assert isinstance(edit, c.EditMessage) and edit.content == "new text" and edit.chat_jid == chat
    assert isinstance(react, c.ReactToMessage) and react.emoji is None
    assert isinstance(read, c.ReadMessages) and read.message_ids == ["M1", "M2"]
    # Without a session there is nothing to act on.
    assert await status_of(messages.edit(machine("b"), NO_KEY, None, chat, "M1", "x", None)) == 404


async def test_pair_code_answers_the_code_a_failure_or_a_pending_command() -> None:
    w = world()
    svc = SessionsService(w.sessions, w.access, w.commands, pair_code_polls=2, poll_interval_s=0)
    sid = w.sessions.add("a")
    answer, _, done = await svc.pair_code(user("a"), NO_KEY, None, sid, "51999999999")
    assert not done and answer["status"] == "accepted"  # the runner has not answered yet: poll
    request = w.bus.sent[-1]
    assert isinstance(request, c.RequestPairCode) and request.phone == "51999999999"

    class Answering:
        def __init__(self, outcome: dict[str, Any]) -> None:
            self.outcome = outcome

        async def command(self, tenant_id: str, command_id: str) -> dict[str, Any]:
            return self.outcome | {"commandId": command_id}

    svc.store = Answering({"status": "succeeded", "result": {"code": "ABCD-1234"}})  # type: ignore[assignment]
    answer, _, done = await svc.pair_code(user("a"), NO_KEY, None, sid, "51999999999")
    assert done and answer["code"] == "ABCD-1234"
    svc.store = Answering({"status": "failed", "reason": "already linked", "code": "conflict"})  # type: ignore[assignment]
    assert await status_of(svc.pair_code(user("a"), NO_KEY, None, sid, "51999999999")) == 409


def test_media_kind_rules_refuse_what_whatsapp_would() -> None:
    from command_api.messages.service import check_kinds

    check_kinds(["image", "image"], "album", False)
    check_kinds([None], "caption", False)  # undeclared kinds pass; the uploads' real kinds are checked again
    for kinds, caption, ptt in ((["image", "video"], None, False), (["image"], None, True),
                                (["audio"], "no captions on audio", False), (["sticker"], "nor stickers", False)):
        with pytest.raises(Problem) as caught:
            check_kinds(kinds, caption, ptt)  # type: ignore[arg-type]
        assert caught.value.status == 422


async def test_api_keys_are_admins_business_scoped_to_own_sessions_and_revocation_evicts() -> None:
    from command_api.keys.service import KeysService

    class Keys:
        def __init__(self) -> None:
            self.sessions = {"a": {uuid.UUID(int=1)}}
            self.keys: dict[str, str] = {}

        async def owned_sessions(self, tenant_id: str, ids: list[uuid.UUID]) -> int:
            return len(set(ids) & self.sessions.get(tenant_id, set()))

        async def create(self, conn: Any, tenant_id: str, name: str, key: str, scope: list[str] | None,
                         created_by: str | None) -> dict[str, Any]:
            kid = str(uuid.uuid4())
            self.keys[kid] = tenant_id
            return {"id": kid, "name": name, "sessionIds": scope}

        async def revoke(self, conn: Any, tenant_id: str, key_id: str) -> bool:
            if self.keys.get(key_id) != tenant_id:
                return False
            del self.keys[key_id]
            return True

    evicted: list[str] = []
    svc = KeysService(Keys(), FakeIdentity(), evict=evicted.append)  # type: ignore[arg-type]
    owner = user("a")
    made = await svc.create(owner, "crm", [str(uuid.UUID(int=1))])
    assert made["key"].startswith("zs_live_") and made["sessionIds"] == [str(uuid.UUID(int=1))]
    assert await status_of(svc.create(owner, "x", [str(uuid.UUID(int=2))])) == 404  # not A's session
    assert await status_of(svc.create(owner, "x", ["nope"])) == 422
    for who in (user("a", "agent"), machine("a")):
        assert await status_of(svc.create(who, "x", None)) == 403
    assert await status_of(svc.revoke(user("b"), made["id"])) == 404  # another tenant's key looks missing
    await svc.revoke(owner, made["id"])
    assert evicted == ["a"]


async def test_a_tenant_deletion_purges_each_session_with_the_same_command_ids_on_a_retry() -> None:
    bus = FakeBus()
    svc = IdentityService(FakeIdentity(), AuthSettings(), signer(), "http://app", bus)
    sessions = [str(uuid.uuid4()) for _ in range(3)]
    await svc.purge_sessions("tenant-x", sessions)
    await svc.purge_sessions("tenant-x", sessions)  # a retry after a commit that failed
    first, again = bus.sent[:3], bus.sent[3:]
    assert all(isinstance(cmd, c.DeleteSession) and cmd.purge and cmd.tenant_id == "tenant-x" for cmd in bus.sent)
    assert sorted(cmd.session_id for cmd in first) == sorted(sessions)
    assert [cmd.command_id for cmd in first] == [cmd.command_id for cmd in again]
    assert len({cmd.command_id for cmd in first}) == 3
