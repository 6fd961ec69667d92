"""The Session aggregate: one linked WhatsApp device of one tenant.

Lifecycle: created → qr_pending → connected ↔ disconnected → logged_out / deleted.

Each nested event class is past tense, carries one wire ``payload`` (see
:mod:`zapstream_contracts.payloads`) and its ``apply`` is the evolve function.
The methods on :class:`Session` are the decisions: they validate, then trigger
events. Nothing here performs I/O.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from zapstream_contracts import events as ev
from zapstream_contracts import payloads as p
from zapstream_contracts.payloads import STATUS_RANK
from zapstream_contracts.timefmt import iso

from .contract_events import NamesItsContract
from .errors import CommandRejected

# The runner keeps one Session per owned session in memory; these caps bound
# what a long-lived session remembers for de-duplication.
MAX_TRACKED_MESSAGES = 20_000


def _remember(store: dict[str, Any], key: str, value: Any) -> None:
    store.pop(key, None)
    store[key] = value
    while len(store) > MAX_TRACKED_MESSAGES:
        store.pop(next(iter(store)))


class Session(Aggregate):
    """A tenant's WhatsApp session, rebuilt by the runner from the session event topic."""

    # Call handling (``session.settings.updated``). Class-level defaults, so aggregates restored
    # from snapshots taken before the setting existed read them as "off".
    reject_calls: bool = False
    call_reply_text: str | None = None
    # A purged session's data is gone from the read models; it is deleted for good.
    purged: bool = False

    class Event(NamesItsContract, Aggregate.Event):
        PAYLOAD: ClassVar[type[p.EventPayload]] = p.EventPayload

        if TYPE_CHECKING:  # each subclass declares its own payload field (a dataclass field of the event)
            payload: p.EventPayload

    class Created(Event, Aggregate.Created):
        SPEC = ev.SESSION_CREATED
        payload: p.SessionCreated

    def __init__(self, payload: p.SessionCreated) -> None:
        self.tenant_id = payload.tenant_id
        self.name = payload.name
        self.status: p.SessionStatus = "created"
        self.phone: str | None = None
        # Only when the QR expires: the code itself is a secret that never enters the event log (the
        # runner writes it to the secrets topic beside the event; see zapstream_contracts.secrets).
        self.qr_expires_at: str | None = None
        self.connected_at: str | None = None
        self.disconnected_at: str | None = None
        self.disconnected_reason: str | None = None
        self.created_at = payload.created_at
        self.updated_at = payload.created_at
        self.wants_connection = True
        # message id → intent, for sends recorded but not yet confirmed by WhatsApp
        self.pending_sends: dict[str, p.SendRequested] = {}
        # message id → highest status seen (sent messages), for monotonic receipts
        self.sent_status: dict[str, str] = {}
        # ids of messages already recorded, so a redelivered message is not recorded twice
        self.known_messages: dict[str, bool] = {}
        # edits, revokes and reactions already recorded (same reason)
        self.seen_facts: dict[str, bool] = {}
        # last push name / saved name per contact, so unchanged names make no event
        self.contact_names: dict[str, str] = {}
        # JIDs whose presence the client asked for; WhatsApp forgets them on every reconnect
        self.presence_subscriptions: set[str] = set()

    # ----- events (evolve) -------------------------------------------------

    class QrUpdated(Event):
        SPEC = ev.QR_UPDATED
        payload: p.QrUpdated

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            s.status = "qr_pending"
            s.qr_expires_at = self.payload.expires_at
            s.updated_at = iso(self.timestamp)

    class Connected(Event):
        SPEC = ev.STATUS_CONNECTED
        payload: p.StatusConnected

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            s.status = "connected"
            s.phone = self.payload.phone
            s.qr_expires_at = None
            s.connected_at = self.payload.connected_at
            s.updated_at = self.payload.connected_at

    class Disconnected(Event):
        SPEC = ev.STATUS_DISCONNECTED
        payload: p.StatusDisconnected

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            s.status = "disconnected"
            s.qr_expires_at = None
            s.disconnected_at = self.payload.disconnected_at
            s.disconnected_reason = self.payload.reason
            if self.payload.stopped or self.payload.reason == "stopped":
                s.wants_connection = False
            s.updated_at = self.payload.disconnected_at

    class LoggedOut(Event):
        SPEC = ev.STATUS_LOGGED_OUT
        payload: p.StatusLoggedOut

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            s.status = "logged_out"
            s.wants_connection = False
            s.phone = None
            s.qr_expires_at = None
            s.disconnected_at = self.payload.logged_out_at
            s.disconnected_reason = self.payload.reason
            s.updated_at = self.payload.logged_out_at

    class Deleted(Event):
        SPEC = ev.SESSION_DELETED
        payload: p.SessionDeleted

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            s.status = "deleted"
            s.wants_connection = False
            s.pending_sends.clear()
            s.updated_at = self.payload.deleted_at
            if self.payload.purged:
                # The runner's memory (and the snapshots it takes) forget the personal data too.
                s.purged = True
                s.phone = None
                s.contact_names.clear()
                s.presence_subscriptions.clear()

    class Started(Event):
        """A stopped or logged-out session was asked to connect again."""

        SPEC = ev.SESSION_STARTED
        payload: p.EventPayload

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            s.wants_connection = True

    class SendRequested(Event):
        SPEC = ev.SEND_REQUESTED
        payload: p.SendRequested

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            s.pending_sends[self.payload.message_id] = self.payload

    class MessagesUpserted(Event):
        SPEC = ev.MESSAGES_UPSERT
        payload: p.MessagesUpsert

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            if self.payload.request_id:
                # Usually WhatsApp kept our id: a direct hit, not a scan of every pending send.
                first = self.payload.messages[0].id if self.payload.messages else None
                hit = s.pending_sends.get(first) if first is not None else None
                if hit is None or hit.command_id != self.payload.request_id:
                    for mid, intent in list(s.pending_sends.items()):
                        if intent.command_id == self.payload.request_id:
                            del s.pending_sends[mid]
                            # WhatsApp may keep another id (neonize); the intent's id is used up all the same.
                            _remember(s.known_messages, mid, True)
            for m in self.payload.messages:
                s.pending_sends.pop(m.id, None)
                _remember(s.known_messages, m.id, True)
                if m.from_me:
                    s.advance_status(m.id, m.status or "server_ack")
                if isinstance(m.rich, p.Poll):
                    _remember(s.poll_state(), m.id, {"options": list(m.rich.options), "votes": {}})

    class MessagesUpdated(Event):
        SPEC = ev.MESSAGES_UPDATE
        payload: p.MessagesUpdate

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            if self.payload.source == "read":
                return  # our own reads of incoming messages: nothing to track for sends
            for u in self.payload.updates:
                if u.status == "unknown":
                    s.pending_sends.pop(u.message_id, None)
                s.advance_status(u.message_id, u.status)

    class HistorySynced(Event):
        SPEC = ev.HISTORY_SYNC
        payload: p.HistorySync

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            for m in self.payload.messages:
                _remember(s.known_messages, m.id, True)

    class ContactsUpserted(Event):
        SPEC = ev.CONTACTS_UPSERT
        payload: p.ContactsUpsert

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            for c in self.payload.contacts:
                _remember(s.contact_names, c.id, f"{c.name}|{c.notify}")

    class GroupsUpserted(Event):
        SPEC = ev.GROUPS_UPSERT
        payload: p.GroupsUpsert

    class GroupParticipantsUpdated(Event):
        SPEC = ev.GROUP_PARTICIPANTS
        payload: p.GroupParticipants

    class PollVoted(Event):
        SPEC = ev.POLL_VOTE
        payload: p.PollVote

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            poll = s.poll_state().get(self.payload.poll_id)
            if poll is not None:
                poll["votes"][self.payload.voter] = list(self.payload.selected_options)

    class CallReceived(Event):
        SPEC = ev.CALL_RECEIVED
        payload: p.CallReceived

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            _remember(s.seen_facts, f"call:{self.payload.id}", True)

    class SettingsUpdated(Event):
        SPEC = ev.SETTINGS_UPDATED
        payload: p.SettingsUpdated

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            s.reject_calls = self.payload.reject_calls
            s.call_reply_text = self.payload.call_reply_text

    class PresenceUpdated(Event):
        SPEC = ev.PRESENCE_UPDATE
        payload: p.PresenceUpdate

    class MessagesEdited(Event):
        SPEC = ev.MESSAGES_EDIT
        payload: p.MessagesEdit

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            for e in self.payload.edits:
                _remember(s.seen_facts, f"edit:{e.message_id}:{e.edited_at}:{e.text}", True)

    class MessagesDeleted(Event):
        SPEC = ev.MESSAGES_DELETE
        payload: p.MessagesDelete

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            if self.payload.scope == "chat":
                _remember(s.seen_facts, f"clear:{self.payload.chat_jid}:{self.payload.deleted_at}", True)
            for d in self.payload.deletes:
                _remember(s.seen_facts, f"revoke:{d.message_id}", True)

    class ReactionsRecorded(Event):
        SPEC = ev.MESSAGES_REACTION
        payload: p.MessagesReaction

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            for r in self.payload.reactions:
                _remember(s.seen_facts, f"react:{r.message_id}:{r.actor_jid}:{r.reacted_at}:{r.emoji}", True)

    class MediaStored(Event):
        """Media bytes of messages are in object storage (or could not be fetched)."""

        SPEC = ev.MESSAGES_MEDIA
        payload: p.MessagesMedia

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            for m in self.payload.media:
                _remember(s.seen_facts, f"media:{m.message_id}", True)

    class CommandSucceeded(Event):
        SPEC = ev.COMMAND_SUCCEEDED
        payload: p.CommandSucceeded

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            if self.payload.command_type == "session.subscribe_presence" and "jid" in self.payload.result:
                s.presence_subscriptions.add(self.payload.result["jid"])

    class CommandFailed(Event):
        SPEC = ev.COMMAND_FAILED
        payload: p.CommandFailed

        def apply(self, aggregate: Any) -> None:
            s: Session = aggregate
            for mid, intent in list(s.pending_sends.items()):
                if intent.command_id == self.payload.command_id:
                    del s.pending_sends[mid]

    # ----- views ------------------------------------------------------------

    @property
    def session_id(self) -> str:
        return str(self.id)

    @property
    def can_hold_sends(self) -> bool:
        """Connected, or linked and expected back (the runner holds sends until it is)."""
        if self.status == "connected":
            return True
        return self.is_live and self.status == "disconnected" and self.phone is not None

    @property
    def is_live(self) -> bool:
        """True while the runner should hold a WhatsApp connection for it."""
        return self.wants_connection and self.status not in ("logged_out", "deleted")

    def view(self) -> p.SessionView:
        return p.SessionView(
            id=self.session_id,
            tenant_id=self.tenant_id,
            status=self.status,
            phone=self.phone,
            qr_expires_at=self.qr_expires_at,
            connected_at=self.connected_at,
            disconnected_at=self.disconnected_at,
            disconnected_reason=self.disconnected_reason,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )

    def advance_status(self, message_id: str, status: str) -> None:
        """Statuses only move forward (receipts can overtake the upsert that announces a send)."""
        current = self.sent_status.get(message_id)
        if current is None or STATUS_RANK[status] > STATUS_RANK.get(current, -1):
            _remember(self.sent_status, message_id, status)

    def status_of(self, message_id: str) -> str | None:
        return self.sent_status.get(message_id)

    # ----- decisions --------------------------------------------------------

    @classmethod
    def create(cls, session_id: UUID, tenant_id: str, at: datetime, name: str | None = None) -> Session:
        return cls._create(
            cls.Created,
            id=session_id,
            timestamp=at,
            payload=p.SessionCreated(
                tenant_id=tenant_id, id=str(session_id), status="created", created_at=iso(at), name=name
            ),
        )

    def _emit(self, event_class: type[Event], at: datetime, **fields: Any) -> None:
        payload = event_class.PAYLOAD(tenant_id=self.tenant_id, **fields)
        self.trigger_event(event_class, timestamp=at, payload=payload)

    def _require_not_deleted(self) -> None:
        if self.status == "deleted":
            raise CommandRejected("session was deleted", code="session_deleted")

    def start(self, at: datetime) -> None:
        self._require_not_deleted()
        if self.wants_connection and self.status == "connected":
            raise CommandRejected("session is already connected", code="already_connected")
        self._emit(Session.Started, at)

    def stop(self, at: datetime, reason: str | None = None) -> None:
        """Stop connecting. ``logout`` unlinks the device (WhatsApp forgets it; a QR is needed again)."""
        self._require_not_deleted()
        if self.status == "logged_out":
            raise CommandRejected("session is logged out", code="logged_out")
        if reason == "logout":
            self._emit(Session.LoggedOut, at, reason="logout", logged_out_at=iso(at))
            return
        if not self.wants_connection:
            raise CommandRejected("session is already stopped", code="already_stopped")
        if reason in (None, "", "stopped"):
            self._emit(Session.Disconnected, at, reason="stopped", disconnected_at=iso(at))
        else:
            self._emit(Session.Disconnected, at, reason=reason, disconnected_at=iso(at), stopped=True)

    def delete(self, at: datetime, purge: bool = False) -> None:
        """Delete the session; ``purge`` also has its data removed from the read models.

        A session deleted earlier without a purge can still be purged (deleting its tenant purges every
        session of it, deleted or not); anything else on a deleted session is rejected.
        """
        if purge and self.status == "deleted" and not self.purged:
            self._emit(Session.Deleted, at, deleted_at=iso(at), purged=True)
            return
        self._require_not_deleted()
        if purge:
            self._emit(Session.Deleted, at, deleted_at=iso(at), purged=True)
        else:
            self._emit(Session.Deleted, at, deleted_at=iso(at))

    def request_send(
        self,
        at: datetime,
        *,
        command_id: str,
        message_id: str,
        to: str,
        text: str,
        reply_to: str | None,
        forwarded: bool = False,
        media: p.MediaRef | None = None,
        campaign_id: str | None = None,
        rich: p.Location | p.ContactCard | p.Poll | None = None,
        mentions: list[str] | None = None,
    ) -> None:
        """Record the intent to send; WhatsApp is called only after this is durable.

        A linked session that is reconnecting (a dropped link, or a new owner after a
        failover) takes the intent too: the runner holds it until the link is back.

        A repeat of an already requested send never reaches here: :func:`decide` drops it
        (:meth:`is_duplicate_send`).
        """
        self._require_not_deleted()
        if media is not None:
            self._check_media(media, text)
        if self.status == "logged_out":
            raise CommandRejected("cannot send on a logged-out session", code="logged_out")
        if not self.can_hold_sends:
            raise CommandRejected(f"session is not connected (status {self.status})", code="not_connected")
        self._emit(
            Session.SendRequested,
            at,
            command_id=command_id,
            message_id=message_id,
            to=to,
            text=text,
            reply_to_message_id=reply_to,
            forwarded=forwarded,
            media=media,
            campaign_id=campaign_id,
            rich=rich,
            mentions=mentions,
        )

    def _check_media(self, media: p.MediaRef, caption: str) -> None:
        # The API checks all this; the runner re-checks so a forged command cannot
        # make it read another tenant's objects or send what WhatsApp would refuse.
        if not media.key.startswith(f"tenants/{self.tenant_id}/") or ".." in media.key or "//" in media.key:
            raise CommandRejected("media does not belong to this tenant", code="media_forbidden")
        if media.ptt and media.kind != "audio":
            raise CommandRejected("only audio can be sent as a voice note", code="invalid_media")
        if caption and media.kind in ("audio", "sticker"):
            raise CommandRejected(f"{media.kind} messages cannot have a caption", code="invalid_media")

    def is_duplicate_send(self, message_id: str) -> bool:
        """True when a send with this (command-derived) message id was already requested."""
        return message_id in self.pending_sends or message_id in self.known_messages

    def has_media(self, message_id: str) -> bool:
        """True once the message's media was recorded (stored, or given up on)."""
        return f"media:{message_id}" in self.seen_facts

    def is_own_message(self, message_id: str) -> bool | None:
        """True/False when the session knows the message; None when it is too old or unknown."""
        if message_id in self.sent_status:
            return True
        if message_id in self.known_messages:
            return False
        return None

    def require_editable(self, message_id: str) -> None:
        self.require_connected()
        if self.is_own_message(message_id) is False:
            raise CommandRejected("only your own messages can be edited", code="not_own_message")
        if f"revoke:{message_id}" in self.seen_facts:
            raise CommandRejected("message was deleted", code="message_deleted")

    def require_deletable(self, message_id: str) -> None:
        self.require_connected()
        if f"revoke:{message_id}" in self.seen_facts:
            raise CommandRejected("message was already deleted", code="message_deleted")

    def require_linkable(self) -> None:
        """Pairing makes sense only for a live session that is not linked yet."""
        self._require_not_deleted()
        if self.status == "connected":
            raise CommandRejected("session is already linked", code="already_connected")
        if not self.is_live:
            raise CommandRejected("session is stopped; start it first", code="not_started")

    def require_connected(self) -> None:
        self._require_not_deleted()
        if self.status == "logged_out":
            raise CommandRejected("session is logged out", code="logged_out")
        if self.status != "connected":
            raise CommandRejected(f"session is not connected (status {self.status})", code="not_connected")

    # ----- facts observed from WhatsApp ----------------------------------------

    def record_sent(
        self, at: datetime, intent: p.SendRequested, wa_timestamp: int, wa_message_id: str | None = None
    ) -> None:
        """WhatsApp accepted the send; ``wa_message_id`` is the id it kept (drivers that cannot choose ids)."""
        if intent.media is not None:
            kind = p.MEDIA_MESSAGE_TYPES[intent.media.kind]
        elif intent.rich is not None:
            kind = p.RICH_MESSAGE_TYPES[intent.rich.kind]
        else:
            kind = "extendedTextMessage" if intent.reply_to_message_id else "conversation"
        msg = p.MessageSummary(
            id=wa_message_id or intent.message_id,
            remote_jid=intent.to,
            from_me=True,
            timestamp=wa_timestamp,
            type=kind,
            text=intent.text or None,
            reply_to_message_id=intent.reply_to_message_id,
            forwarded=intent.forwarded or None,
            status="server_ack",
            rich=intent.rich,
            mentions=intent.mentions,
        )
        self._emit(
            Session.MessagesUpserted,
            at,
            upsert_type="append",
            request_id=intent.command_id,
            messages_count=1,
            messages=[msg],
        )

    def record_send_unknown(self, at: datetime, intent: p.SendRequested) -> None:
        """A send whose fate cannot be known (crash, driver without client ids)."""
        update = p.StatusUpdate(
            message_id=intent.message_id, remote_jid=intent.to, status="unknown", status_at=int(at.timestamp())
        )
        self._emit(Session.MessagesUpdated, at, updates_count=1, updates=[update], source="recovery")

    def record_qr(self, at: datetime, expires_at: str) -> bool:
        """A new QR is showing until ``expires_at``; True when that is recorded (the caller keeps the code)."""
        if self.is_live and self.status != "connected":
            self._emit(Session.QrUpdated, at, expires_at=expires_at)
            return True
        return False

    def record_connected(self, at: datetime, phone: str) -> None:
        if self.status != "connected" or self.phone != phone:
            self._emit(Session.Connected, at, phone=phone, connected_at=iso(at))

    def record_disconnected(self, at: datetime, reason: str) -> None:
        if self.status in ("connected", "qr_pending", "created"):
            self._emit(Session.Disconnected, at, reason=reason, disconnected_at=iso(at))

    def record_logged_out(self, at: datetime, reason: str) -> None:
        if self.status not in ("logged_out", "deleted"):
            self._emit(Session.LoggedOut, at, reason=reason, logged_out_at=iso(at))

    def record_incoming(self, at: datetime, messages: list[p.MessageSummary]) -> None:
        fresh = [m for m in messages if m.id not in self.known_messages]
        if fresh:
            self._emit(
                Session.MessagesUpserted, at, upsert_type="notify", messages_count=len(fresh), messages=fresh
            )

    def record_receipts(self, at: datetime, updates: list[p.StatusUpdate]) -> None:
        """Keep only updates that move a message's status forward."""
        forward: list[p.StatusUpdate] = []
        for u in updates:
            current = self.sent_status.get(u.message_id)
            if current is None or STATUS_RANK[u.status] > STATUS_RANK.get(current, -1):
                forward.append(u)
        if forward:
            self._emit(Session.MessagesUpdated, at, updates_count=len(forward), updates=forward)

    def record_history(self, at: datetime, batch: p.HistorySync) -> None:
        self.trigger_event(Session.HistorySynced, timestamp=at, payload=batch)

    def poll_state(self) -> dict[str, Any]:
        """poll message id → {"options": [...], "votes": {voter: [options]}} of the polls this session saw
        (bounded like the other memories). Created on first use: snapshots from before polls lack it."""
        polls: dict[str, Any] | None = self.__dict__.get("polls")
        if polls is None:
            polls = self.__dict__["polls"] = {}
        return polls

    def record_poll_vote(self, at: datetime, poll_id: str, chat_jid: str, voter: str, voted_at: int, *,
                         options: list[str] | None = None, option_hashes: list[str] | None = None) -> None:
        """A vote, by option names or (WhatsApp's encrypted votes) by their SHA-256 hashes; a vote on a poll
        this session never saw is dropped (its options, hence its tally, are unknown)."""
        poll = self.poll_state().get(poll_id)
        if poll is None:
            return
        names: list[str] = poll["options"]
        if option_hashes is not None:
            by_hash = {hashlib.sha256(n.encode()).hexdigest(): n for n in names}
            chosen = [by_hash[h] for h in option_hashes if h in by_hash]
        else:
            chosen = [n for n in options or [] if n in names]
        if poll["votes"].get(voter) == chosen:
            return  # the same choice again (a re-delivery): nothing changed
        votes = {**poll["votes"], voter: chosen}
        tally = [p.PollOptionCount(name=n, votes=sum(n in v for v in votes.values())) for n in names]
        self._emit(Session.PollVoted, at, poll_id=poll_id, chat_jid=chat_jid, voter=voter,
                   selected_options=chosen, voted_at=voted_at, tally=tally)

    def configure_calls(self, at: datetime, reject: bool, reply_text: str | None) -> None:
        self._require_not_deleted()
        self._emit(Session.SettingsUpdated, at, reject_calls=reject, call_reply_text=reply_text if reject else None)

    def record_call(self, at: datetime, call_id: str, caller: str, timestamp: int, *, video: bool = False,
                    group: bool = False) -> bool:
        """Record an incoming call; True when the session's setting says to reject it (a re-delivered
        call is recorded once, and not rejected twice)."""
        if f"call:{call_id}" in self.seen_facts or not self.is_live:
            return False
        reject = self.reject_calls
        self._emit(Session.CallReceived, at, id=call_id, from_=caller, timestamp=timestamp, is_video=video,
                   is_group=group, status="rejected" if reject else "offer")
        return reject

    def record_groups(self, at: datetime, groups: list[p.GroupInfo]) -> None:
        if groups:
            self._emit(Session.GroupsUpserted, at, groups_count=len(groups), groups=groups)

    def record_group_participants(self, at: datetime, group_jid: str, action: str, participants: list[str],
                                  author: str | None = None) -> None:
        if participants:
            self._emit(Session.GroupParticipantsUpdated, at, id=group_jid, action=action,
                       participants=participants, author=author)

    def record_contacts(self, at: datetime, contacts: list[p.Contact]) -> None:
        if contacts:
            self._emit(Session.ContactsUpserted, at, contacts_count=len(contacts), contacts=contacts)

    def record_presence(self, at: datetime, chat_jid: str, updates: list[p.PresenceEntry]) -> None:
        self._emit(Session.PresenceUpdated, at, chat_jid=chat_jid, updates_count=len(updates), updates=updates)

    def record_read_by_me(self, at: datetime, chat_jid: str, message_ids: list[str], read_at: int) -> None:
        """Messages of a chat that this account has read (it sent the read receipts)."""
        updates = [
            p.StatusUpdate(message_id=mid, remote_jid=chat_jid, status="read", status_at=read_at) for mid in message_ids
        ]
        self._emit(Session.MessagesUpdated, at, updates_count=len(updates), updates=updates, source="read")

    def record_edits(self, at: datetime, edits: list[p.MessageEdit]) -> None:
        fresh = [e for e in edits if f"edit:{e.message_id}:{e.edited_at}:{e.text}" not in self.seen_facts]
        if fresh:
            self._emit(Session.MessagesEdited, at, edits_count=len(fresh), edits=fresh)

    def record_revokes(self, at: datetime, deletes: list[p.MessageDelete]) -> None:
        fresh = [d for d in deletes if f"revoke:{d.message_id}" not in self.seen_facts]
        if fresh:
            self._emit(
                Session.MessagesDeleted, at, scope="message", chat_jid=None, deletes_count=len(fresh), deletes=fresh
            )

    def record_chat_cleared(self, at: datetime, chat_jid: str, cleared_at: int) -> None:
        """A chat was cleared at ``cleared_at`` (epoch seconds, as WhatsApp says it)."""
        when = iso(datetime.fromtimestamp(cleared_at, UTC))
        if f"clear:{chat_jid}:{when}" not in self.seen_facts:
            self._emit(
                Session.MessagesDeleted,
                at,
                scope="chat",
                chat_jid=chat_jid,
                deletes_count=0,
                deletes=[],
                deleted_at=when,
            )

    def record_reactions(self, at: datetime, reactions: list[p.ReactionEntry]) -> None:
        fresh = [
            r
            for r in reactions
            if f"react:{r.message_id}:{r.actor_jid}:{r.reacted_at}:{r.emoji}" not in self.seen_facts
        ]
        if fresh:
            self._emit(Session.ReactionsRecorded, at, reactions_count=len(fresh), reactions=fresh)

    def record_media(self, at: datetime, entries: list[p.MediaEntry]) -> None:
        fresh = [m for m in entries if not self.has_media(m.message_id)]
        if fresh:
            self._emit(Session.MediaStored, at, media_count=len(fresh), media=fresh)

    def record_contact_names(self, at: datetime, contacts: list[p.Contact]) -> None:
        """Record contacts whose names changed (push names arrive with every message)."""
        changed = [c for c in contacts if self.contact_names.get(c.id) != f"{c.name}|{c.notify}"]
        self.record_contacts(at, changed)

    def record_command_succeeded(
        self, at: datetime, command_id: str, command_type: str, result: dict[str, str] | None = None
    ) -> None:
        self._emit(
            Session.CommandSucceeded,
            at,
            command_id=command_id,
            command_type=command_type,
            result=result or {},
        )

    def record_command_failed(self, at: datetime, command_id: str, command_type: str, code: str, reason: str) -> None:
        self._emit(
            Session.CommandFailed,
            at,
            command_id=command_id,
            command_type=command_type,
            code=code,
            reason=reason,
            retryable=code in p.RETRYABLE_CODES,
        )


EVENT_CLASSES: tuple[type[Session.Event], ...] = (
    Session.Created,
    Session.QrUpdated,
    Session.Connected,
    Session.Disconnected,
    Session.LoggedOut,
    Session.Deleted,
    Session.Started,
    Session.SendRequested,
    Session.MessagesUpserted,
    Session.MessagesUpdated,
    Session.HistorySynced,
    Session.ContactsUpserted,
    Session.PresenceUpdated,
    Session.GroupsUpserted,
    Session.GroupParticipantsUpdated,
    Session.CallReceived,
    Session.SettingsUpdated,
    Session.PollVoted,
    Session.MessagesEdited,
    Session.MessagesDeleted,
    Session.ReactionsRecorded,
    Session.MediaStored,
    Session.CommandSucceeded,
    Session.CommandFailed,
)
EVENTS_BY_TYPE: dict[str, type[Session.Event]] = {cls.TYPE: cls for cls in EVENT_CLASSES}

