"""The projector's in-memory fold of one batch (no database: every row starts absent)."""

from __future__ import annotations

import uuid
from typing import Any

from projector.handlers import Batch
from zapstream_contracts.envelope import Envelope

SID = str(uuid.uuid4())
CHAT = "51988887777@s.whatsapp.net"
version = 0


def _env(type_: str, **payload: Any) -> Envelope:
    global version
    version += 1
    return Envelope(type=type_, session_id=SID, event_id=str(uuid.uuid4()), occurred_on="2026-01-01T00:00:00.000Z",
                    payload={"tenantId": "t", **payload}, version=version)


def _upsert(mid: str, ts: int, from_me: bool = True, text: str = "hi") -> Envelope:
    return _env("session.messages.upsert", upsertType="notify", messages=[
        {"id": mid, "remoteJid": CHAT, "fromMe": from_me, "timestamp": ts, "text": text, "status": None}])


def _receipt(mid: str, status: str, at: int) -> Envelope:
    return _env("session.messages.update", source="receipt",
                updates=[{"messageId": mid, "remoteJid": CHAT, "status": status, "statusAt": at}])


def _fold(*envs: Envelope) -> Batch:
    batch = Batch()
    for env in envs:
        batch.apply(env)
    return batch


def test_events_for_one_row_in_one_batch_fold_into_one_new_row_in_order() -> None:
    batch = _fold(_upsert("m1", 100), _receipt("m1", "delivered", 101),
                  _env("session.messages.edit", edits=[{"messageId": "m1", "text": "edited", "editedAt": 102}]),
                  _receipt("m1", "read", 103))
    new, changed, gone = batch.messages.changes()
    assert (len(new), changed, gone) == (1, [], [])
    row = new[0]
    assert (row["status"], row["status_at"], row["text"], row["is_edited"], row["edited_at"]) == (
        "read", 103, "edited", True, 102)
    chat = batch.chats.rows[(SID, CHAT)]
    assert chat is not None and (chat["last_message_id"], chat["last_message_text"]) == ("m1", "edited")


def test_a_late_delivered_never_overwrites_read_and_an_older_edit_never_wins() -> None:
    batch = _fold(_upsert("m1", 100), _receipt("m1", "read", 103), _receipt("m1", "delivered", 101),
                  _env("session.messages.edit", edits=[{"messageId": "m1", "text": "new", "editedAt": 200}]),
                  _env("session.messages.edit", edits=[{"messageId": "m1", "text": "old", "editedAt": 150}]))
    row = batch.messages.rows[(SID, "m1")]
    assert row is not None
    assert (row["status"], row["status_at"], row["text"]) == ("read", 103, "new")


def test_unread_follows_reads_and_deletes_and_each_touched_chat_is_recounted_once() -> None:
    batch = _fold(_upsert("a", 1, from_me=False), _upsert("b", 2, from_me=False), _upsert("c", 3, from_me=False),
                  _env("session.messages.update", source="read",
                       updates=[{"messageId": "a", "remoteJid": CHAT, "status": "read", "statusAt": 4}]),
                  _env("session.messages.delete", scope="message", chatJid=None, deletedAt=None,
                       deletes=[{"messageId": "c", "deletedAt": 5, "chatJid": CHAT}]))
    unread = {k[1]: r["unread"] for k, r in batch.messages.rows.items() if r is not None}
    assert unread == {"a": False, "b": True, "c": False}
    assert list(batch.recount) == [(SID, CHAT)]
    chat = batch.chats.rows[(SID, CHAT)]
    assert chat is not None and (chat["last_message_id"], chat["last_message_text"]) == ("c", None)


def test_a_reaction_added_then_removed_in_one_batch_writes_nothing() -> None:
    react = {"messageId": "m1", "chatJid": CHAT, "actorJid": CHAT, "fromMe": False}
    batch = _fold(_env("session.messages.reaction", reactions=[{**react, "emoji": "👍", "reactedAt": 10,
                                                                 "removed": False}]),
                  _env("session.messages.reaction", reactions=[{**react, "emoji": "", "reactedAt": 11,
                                                                 "removed": True}]))
    assert batch.reactions.changes() == ([], [], [])


def test_contacts_keep_the_first_tenant_and_the_last_non_null_name_and_commands_the_first_outcome() -> None:
    cmd = str(uuid.uuid4())
    batch = _fold(
        _env("session.contacts.upsert", contacts=[{"id": CHAT, "name": "Ana", "notify": None, "imgUrl": None}]),
        _env("session.contacts.upsert", contacts=[{"id": CHAT, "name": None, "notify": "ana", "imgUrl": None}]),
        _env("session.command.succeeded", commandId=cmd, commandType="session.send_message", result={}),
        _env("session.command.failed", commandId=cmd, commandType="session.send_message", code="x", reason="y"),
    )
    assert batch.contacts[(SID, CHAT)] == {"session_id": SID, "jid": CHAT, "tenant_id": "t", "name": "Ana",
                                          "notify": "ana", "img_url": None}
    assert batch.commands[cmd]["status"] == "succeeded"
