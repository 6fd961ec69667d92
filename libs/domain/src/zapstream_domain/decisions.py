"""Decide: command + current state → new events (or a rejection with a reason).

Evolve is each event's ``apply``; :func:`evolve` folds a stored event into state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from zapstream_contracts import commands as c

from .errors import CommandRejected, InvalidJid
from .jids import normalize_jid
from .session import EVENTS_BY_TYPE, Session


def message_id_for(command_id: str) -> str:
    """A WhatsApp-style message id derived from the command, so a re-send reuses it."""
    return "3EB0" + UUID(command_id).hex[:16].upper()


Decider = Callable[[Session, Any, datetime], None]


def _mentions(raw: list[str] | None) -> list[str] | None:
    if not raw:
        return None
    try:
        return list(dict.fromkeys(normalize_jid(m) for m in raw))
    except InvalidJid as exc:
        raise CommandRejected(f"invalid mention: {exc}", code="invalid_jid") from exc


def _send(session: Session, command: c.SendMessage, now: datetime) -> None:
    message_id = message_id_for(command.command_id)
    if session.is_duplicate_send(message_id):
        # The same command again (an Idempotency-Key retry re-publishes with the same id):
        # its first copy is sent or on its way; nothing more to do.
        return
    session.request_send(
        now,
        command_id=command.command_id,
        message_id=message_id,
        to=normalize_jid(command.to),
        text=command.content or "",
        reply_to=command.reply_to_message_id,
        forwarded=command.forwarded,
        media=command.media,
        rich=command.rich,
        mentions=_mentions(command.mentions),
        campaign_id=command.campaign_id,
    )


def _photo_check(session: Session, key: str) -> None:
    """The photo goes to this session's own prefix: a forged command cannot write elsewhere."""
    session.require_connected()
    prefix = f"tenants/{session.tenant_id}/sessions/{session.session_id}/photos/"
    if not key.startswith(prefix) or ".." in key or "//" in key:
        raise CommandRejected("photo key outside the session's storage", code="media_forbidden")


def _group_check(session: Session, group_jid: str) -> None:
    """Group commands need a live link and a group's JID (``…@g.us``), not a person's."""
    session.require_connected()
    try:
        jid = normalize_jid(group_jid)
    except InvalidJid as exc:
        raise CommandRejected(str(exc), code="invalid_jid") from exc
    if not jid.endswith("@g.us"):
        raise CommandRejected("not a group JID (…@g.us)", code="not_a_group")


# One entry per command type: the pure decision on an existing session. Commands with
# idempotent WhatsApp effects (read, edit, delete, react, presence) only check here; the
# runner records their outcome once WhatsApp has answered.
DECIDERS: dict[type[c.Command], Decider] = {
    c.StartSession: lambda s, cmd, now: s.start(now),
    c.StopSession: lambda s, cmd, now: s.stop(now, cmd.reason),
    c.DeleteSession: lambda s, cmd, now: s.delete(now, cmd.purge),
    c.SendMessage: _send,
    c.EditMessage: lambda s, cmd, now: s.require_editable(cmd.message_id),
    c.DeleteMessage: lambda s, cmd, now: s.require_deletable(cmd.message_id),
    c.RequestPairCode: lambda s, cmd, now: s.require_linkable(),
    c.ReadMessages: lambda s, cmd, now: s.require_connected(),
    c.ReactToMessage: lambda s, cmd, now: s.require_connected(),
    c.SubscribePresence: lambda s, cmd, now: s.require_connected(),
    c.SendPresence: lambda s, cmd, now: s.require_connected(),
    c.CreateGroup: lambda s, cmd, now: s.require_connected(),
    c.UpdateGroupParticipants: lambda s, cmd, now: _group_check(s, cmd.group_jid),
    c.LeaveGroup: lambda s, cmd, now: _group_check(s, cmd.group_jid),
    c.GetGroupInviteLink: lambda s, cmd, now: _group_check(s, cmd.group_jid),
    c.SyncGroups: lambda s, cmd, now: s.require_connected(),
    c.ConfigureCalls: lambda s, cmd, now: s.configure_calls(now, cmd.reject_calls, cmd.reply_text),
    c.FetchProfilePhoto: lambda s, cmd, now: _photo_check(s, cmd.key),
}


def decide(session: Session | None, command: c.Command, now: datetime) -> tuple[Session | None, list[Session.Event]]:
    """Apply ``command`` to ``session`` and return it with the events it produced.

    Raises :class:`CommandRejected` when the command is not allowed; the caller
    records that as a ``session.command.failed`` event.
    """
    if isinstance(command, c.CreateSession):
        if session is not None:
            raise CommandRejected("session already exists", code="already_exists")
        created = Session.create(UUID(command.session_id), command.tenant_id, now, command.name)
        return created, list(_collect(created))
    if session is None:
        raise CommandRejected("session not found", code="not_found")
    if session.tenant_id != command.tenant_id:
        # The API checks ownership already; this guards against forged records.
        raise CommandRejected("session not found", code="not_found")
    decider = DECIDERS.get(type(command))
    if decider is None:  # pragma: no cover - every command type has an entry (a unit test checks)
        raise CommandRejected(f"unsupported command {type(command).__name__}", code="unsupported")
    decider(session, command, now)
    return session, list(_collect(session))


def _collect(session: Session) -> Sequence[Session.Event]:
    return [e for e in session.collect_events() if isinstance(e, Session.Event)]


def event_from_wire(
    type_: str, session_id: str, version: int, occurred_on: datetime, payload: dict[str, Any]
) -> Session.Event:
    """Rebuild a domain event from its stored form (envelope type + payload)."""
    cls = EVENTS_BY_TYPE[type_]
    model = cls.PAYLOAD.model_validate(payload)
    fields: dict[str, Any] = {
        "originator_id": UUID(session_id),
        "originator_version": version,
        "timestamp": occurred_on,
        "payload": model,
    }
    if issubclass(cls, Session.Created):
        fields["originator_topic"] = get_topic(Session)
    return cls(**fields)


def evolve(session: Session | None, event: Session.Event) -> Session:
    """Fold one stored event into the session (``None`` before its creation)."""
    result = event.mutate(session)
    assert isinstance(result, Session)
    return result
