"""The projector's in-memory fold of one batch (no database: every row starts absent)."""

from __future__ import annotations

import uuid
from typing import Any

from projector.handlers import Batch
from zapstream_contracts import payloads as p
from zapstream_contracts.envelope import Envelope

SID = str(uuid.uuid4())
CHAT = "51988887777@s.whatsapp.net"
version = 0


def _env(type_: str, model: type[p.EventPayload], **fields: Any) -> Envelope:
    """An event as the runner writes it: the payload model's wire form."""
    global version
    version += 1
    payload = model(tenant_id="t", **fields).model_dump(by_alias=True, mode="json")
    return Envelope(type=type_, session_id=SID, event_id=str(uuid.uuid4()), occurred_on="2026-01-01T00:00:00.000Z",
                    payload=payload, version=version)


def _upsert(mid: str, ts: int, from_me: bool = True, text: str = "hi") -> Envelope:
    return _env("session.messages.upsert", p.MessagesUpsert, upsert_type="notify", messages_count=1, messages=[
        p.MessageSummary(id=mid, remote_jid=CHAT, from_me=from_me, timestamp=ts, text=text)])


def _receipt(mid: str, status: p.MessageStatus, at: int, source: Any = "receipt") -> Envelope:
    return _env("session.messages.update", p.MessagesUpdate, source=source, updates_count=1,
                updates=[p.StatusUpdate(message_id=mid, remote_jid=CHAT, status=status, status_at=at)])


def _edit(mid: str, text: str, at: int) -> Envelope:
    return _env("session.messages.edit", p.MessagesEdit, edits_count=1,
                edits=[p.MessageEdit(message_id=mid, text=text, edited_at=at)])


def _react(emoji: str, at: int, removed: bool) -> Envelope:
    return _env("session.messages.reaction", p.MessagesReaction, reactions_count=1, reactions=[
        p.ReactionEntry(message_id="m1", chat_jid=CHAT, actor_jid=CHAT, from_me=False, emoji=emoji, reacted_at=at,
                        removed=removed)])


def _contact(name: str | None, notify: str | None) -> Envelope:
    return _env("session.contacts.upsert", p.ContactsUpsert, contacts_count=1,
                contacts=[p.Contact(id=CHAT, name=name, notify=notify)])


def _fold(*envs: Envelope) -> Batch:
    batch = Batch()
    for env in envs:
        batch.apply(env)
    return batch


def test_events_for_one_row_in_one_batch_fold_into_one_new_row_in_order() -> None:
    batch = _fold(_upsert("m1", 100), _receipt("m1", "delivered", 101),
                  _edit("m1", "edited", 102),
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
                  _edit("m1", "new", 200), _edit("m1", "old", 150))
    row = batch.messages.rows[(SID, "m1")]
    assert row is not None
    assert (row["status"], row["status_at"], row["text"]) == ("read", 103, "new")


def test_unread_follows_reads_and_deletes_and_each_touched_chat_is_recounted_once() -> None:
    batch = _fold(_upsert("a", 1, from_me=False), _upsert("b", 2, from_me=False), _upsert("c", 3, from_me=False),
                  _receipt("a", "read", 4, source="read"),
                  _env("session.messages.delete", p.MessagesDelete, scope="message", deletes_count=1,
                       deletes=[p.MessageDelete(message_id="c", deleted_at=5, chat_jid=CHAT)]))
    unread = {k[1]: r["unread"] for k, r in batch.messages.rows.items() if r is not None}
    assert unread == {"a": False, "b": True, "c": False}
    assert list(batch.recount) == [(SID, CHAT)]
    chat = batch.chats.rows[(SID, CHAT)]
    assert chat is not None and (chat["last_message_id"], chat["last_message_text"]) == ("c", None)


def test_a_reaction_added_then_removed_in_one_batch_writes_nothing() -> None:
    batch = _fold(_react("👍", 10, removed=False), _react("", 11, removed=True))
    assert batch.reactions.changes() == ([], [], [])


def test_contacts_keep_the_first_tenant_and_the_last_non_null_name_and_commands_the_first_outcome() -> None:
    cmd = str(uuid.uuid4())
    batch = _fold(
        _contact("Ana", None),
        _contact(None, "ana"),
        _env("session.command.succeeded", p.CommandSucceeded, command_id=cmd, command_type="session.send_message"),
        _env("session.command.failed", p.CommandFailed, command_id=cmd, command_type="session.send_message",
             code="x", reason="y", retryable=False),
    )
    assert batch.contacts[(SID, CHAT)] == {"session_id": SID, "jid": CHAT, "tenant_id": "t", "name": "Ana",
                                          "notify": "ana", "img_url": None}
    assert batch.commands[cmd]["status"] == "succeeded"
