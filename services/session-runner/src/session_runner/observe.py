"""Driver events → facts recorded on the ``Session`` aggregate.

:func:`observe` returns what the runtime must do after the commit, for the few facts that call for
an answer (a call to reject, with its auto-reply recorded as a send intent); None otherwise.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from session_runner.drivers import port as d
from zapstream_contracts import payloads as p
from zapstream_contracts.timefmt import iso
from zapstream_domain.decisions import message_id_for
from zapstream_domain.errors import CommandRejected
from zapstream_domain.session import Session

# Auto-replies to rejected calls get command ids derived from the call, so a re-delivered call
# (before its acknowledgement) never makes a second intent.
_CALL_REPLIES = uuid.UUID("5b0f3c1e-8a7d-4f2b-9c61-0d3e2a1b4c5d")


@dataclass(frozen=True, slots=True)
class RejectCall:
    session_id: str
    caller_jid: str
    call_id: str
    reply: p.SendRequested | None


def on_call(s: Session, ev: d.IncomingCall, at: datetime) -> RejectCall | None:
    if not s.record_call(at, ev.call_id, ev.caller_jid, ev.timestamp, video=ev.video, group=ev.group):
        return None
    reply = None
    if s.call_reply_text and not ev.group and s.can_hold_sends:
        command_id = str(uuid.uuid5(_CALL_REPLIES, f"{s.session_id}/{ev.call_id}"))
        message_id = message_id_for(command_id)
        try:
            s.request_send(at, command_id=command_id, message_id=message_id, to=ev.caller_jid,
                           text=s.call_reply_text, reply_to=None)
            reply = s.pending_sends.get(message_id)
        except CommandRejected:
            reply = None
    return RejectCall(s.session_id, ev.caller_jid, ev.call_id, reply)


def observe(s: Session, ev: d.DriverEvent, at: datetime) -> RejectCall | None:
    if isinstance(ev, d.IncomingCall):
        return on_call(s, ev, at)
    if isinstance(ev, d.GroupParticipantsChanged):
        s.record_group_participants(at, ev.group_jid, ev.action, list(ev.participants), author=ev.author)
        return None
    if isinstance(ev, d.PollVote):
        s.record_poll_vote(at, ev.poll_id, ev.chat_jid, ev.voter_jid, ev.timestamp,
                           options=list(ev.options) if ev.options is not None else None,
                           option_hashes=list(ev.option_hashes) if ev.option_hashes is not None else None)
        return None
    if isinstance(ev, d.QrCode):
        # The code itself never reaches the aggregate: the runtime writes it to the secrets topic.
        s.record_qr(at, iso(datetime.fromtimestamp(ev.expires_at_ms / 1000, UTC)))
    elif isinstance(ev, d.Connected):
        if s.is_live:
            s.record_connected(at, ev.phone)
    elif isinstance(ev, d.Disconnected):
        if s.is_live and not ev.replaced:  # replaced: the session moved to another runner
            s.record_disconnected(at, ev.reason)
    elif isinstance(ev, d.LoggedOut):
        s.record_logged_out(at, ev.reason)
    elif isinstance(ev, d.IncomingMessage):
        s.record_incoming(at, [summary(ev)])
        if ev.push_name and not ev.from_me:
            s.record_contact_names(at, [p.Contact(id=ev.sender_jid, notify=ev.push_name)])
    elif isinstance(ev, d.MessageEdited):
        s.record_edits(at, [p.MessageEdit(message_id=ev.message_id, chat_jid=ev.chat_jid, text=ev.text,
                                          edited_at=ev.timestamp, from_me=ev.from_me)])
    elif isinstance(ev, d.MessageRevoked):
        s.record_revokes(at, [p.MessageDelete(message_id=ev.message_id, deleted_at=ev.timestamp,
                                              chat_jid=ev.chat_jid, from_me=ev.from_me)])
    elif isinstance(ev, d.ChatCleared):
        s.record_chat_cleared(at, ev.chat_jid, ev.timestamp)
    elif isinstance(ev, d.Reaction):
        s.record_reactions(at, [p.ReactionEntry(message_id=ev.message_id, chat_jid=ev.chat_jid,
                                                actor_jid=ev.actor_jid, from_me=ev.from_me,
                                                emoji=ev.emoji or None, reacted_at=ev.timestamp,
                                                removed=ev.emoji == "")])
    elif isinstance(ev, d.ContactsUpdate):
        s.record_contact_names(at, [p.Contact(id=jid, name=name, notify=notify) for jid, name, notify in ev.contacts])
    elif isinstance(ev, d.Receipt):
        s.record_receipts(at, [
            p.StatusUpdate(message_id=mid, remote_jid=ev.chat_jid, status=ev.status, status_at=ev.timestamp)
            for mid in ev.message_ids
        ])
    elif isinstance(ev, d.PresenceUpdate):
        s.record_presence(at, ev.chat_jid, [p.PresenceEntry(jid=ev.jid, presence=ev.presence,
                                                             last_seen=ev.last_seen)])
    elif isinstance(ev, d.HistorySync):
        messages = [summary(m) for m in ev.messages]
        s.record_history(at, p.HistorySync(
            tenant_id=s.tenant_id,
            sync_type=ev.sync_type,
            progress=ev.progress,
            is_latest=ev.is_latest,
            chats_count=len({m.remote_jid for m in messages}),
            contacts_count=len(ev.contacts),
            messages_count=len(messages),
            messages_truncated=False,
            messages=messages,
        ))
        s.record_contacts(at, [p.Contact(id=jid, notify=name) for jid, name in ev.contacts])
    return None


def summary(m: d.IncomingMessage) -> p.MessageSummary:
    return p.MessageSummary(
        id=m.id,
        remote_jid=m.chat_jid,
        from_me=m.from_me,
        timestamp=m.timestamp,
        type=p.MEDIA_MESSAGE_TYPES[m.media.kind] if m.media is not None
        else p.RICH_MESSAGE_TYPES[m.rich.kind] if m.rich is not None
        else "extendedTextMessage" if m.reply_to_id else "conversation",
        text=m.text or None if m.media is not None else m.text,
        participant=None if m.sender_jid == m.chat_jid else m.sender_jid,
        reply_to_message_id=m.reply_to_id,
        forwarded=m.forwarded or None,
        push_name=m.push_name,
        rich=m.rich,
        mentions=list(m.mentions) or None,
    )
