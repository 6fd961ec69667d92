"""The Campaign aggregate: one tenant's bulk send of a message to a recipient list through its numbers.

Lifecycle: draft → scheduled → running ⇄ paused → completed | cancelled | failed.

Recipients are sent in list order (FIFO), spread round-robin over the
campaign's sessions; each number keeps its own pace (see
:mod:`campaign_pacing`). A recipient's send is a ``session.send_message``
command with an id derived from (campaign, recipient, attempt, part), so a
re-emitted command is dropped by the session runner. Nothing here does I/O:
the methods decide and trigger events, each event's ``apply`` evolves.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic
from pydantic import BaseModel

from zapstream_contracts import campaign_commands as cc
from zapstream_contracts import commands as c
from zapstream_contracts import events as ev
from zapstream_contracts.campaign_payloads import (
    MAX_RETRIES,
    NOT_AUTO_RETRIED,
    RECEIPT_RANK,
    CampaignCreated,
    CampaignStatus,
    Counts,
    Dispatch,
    Outcome,
    Progressed,
    Recipient,
    RecipientsAdded,
    RecipientsDispatched,
    RecipientStatus,
    RecipientsTyping,
    RecipientsUpdated,
    RecipientUpdate,
    RetryRequested,
    StatusChanged,
    Typing,
)
from zapstream_contracts.timefmt import iso, parse_iso

from . import campaign_pacing as pace
from .contract_events import NamesItsContract
from .decisions import message_id_for
from .errors import CommandRejected


@dataclass
class RecipientState:
    r: Recipient
    session_id: str
    status: RecipientStatus = "pending"
    attempt: int = 0
    commands: dict[str, int] = field(default_factory=dict)  # command id → part, current attempt only
    parts_done: set[int] = field(default_factory=set)
    retry_at: datetime | None = None
    send_at: datetime | None = None  # while typing
    code: str | None = None
    reason: str | None = None
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Action:
    """Work the scheduler found due: show typing, or send (``typing=False``)."""

    recipient_id: str
    session_id: str
    typing: bool
    send_at: datetime | None = None


ACTIVE = ("typing", "sending")
WAITING = ("pending", "retrying")


class Campaign(Aggregate):
    class Event(NamesItsContract, Aggregate.Event):
        if TYPE_CHECKING:  # each subclass declares its own payload field (a dataclass field of the event)
            payload: BaseModel

    class Created(Event, Aggregate.Created):
        SPEC = ev.CAMPAIGN_CREATED
        payload: CampaignCreated

    def __init__(self, payload: CampaignCreated) -> None:
        self.tenant_id = payload.tenant_id
        self.name = payload.name
        self.message = payload.message
        self.sessions = [s.session_id for s in payload.sessions]
        self.linked_at = {
            s.session_id: parse_iso(s.linked_at) if s.linked_at else None for s in payload.sessions
        }
        self.pacing = payload.pacing
        self.timezone = payload.timezone
        self.expected = payload.expected_recipients
        self.status: CampaignStatus = "draft"
        self.scheduled_at: datetime | None = None
        self.chunks: set[int] = set()
        self.recipients: dict[str, RecipientState] = {}
        self.todo: dict[str, deque[str]] = {sid: deque() for sid in self.sessions}
        self.retry_wait: dict[str, datetime] = {}
        self.in_flight: dict[str, set[str]] = {sid: set() for sid in self.sessions}
        self.sends: dict[str, list[datetime]] = {sid: [] for sid in self.sessions}
        self.command_index: dict[str, tuple[str, int]] = {}
        self.counts: Counter[str] = Counter()

    # ----- evolve ---------------------------------------------------------------

    class RecipientsAdded(Event):
        SPEC = ev.CAMPAIGN_RECIPIENTS_ADDED
        payload: RecipientsAdded

        def apply(self, aggregate: Any) -> None:
            a: Campaign = aggregate
            a.chunks.add(self.payload.chunk)
            for r in self.payload.recipients:
                if r.id in a.recipients:
                    continue
                sid = a.sessions[r.seq % len(a.sessions)]
                state = RecipientState(r=r, session_id=sid)
                a.recipients[r.id] = state
                if r.skip_reason or r.phone is None:
                    # No phone: the tenant's key was erased (crypto-shredding) before this rebuild; there is
                    # nobody left to send to.
                    state.status = "skipped"
                    state.reason = r.skip_reason or "erased"
                else:
                    a.todo[sid].append(r.id)
                a.counts[state.status] += 1

    class StatusChanged(Event):
        SPEC = ev.CAMPAIGN_STATUS
        payload: StatusChanged

        def apply(self, aggregate: Any) -> None:
            a: Campaign = aggregate
            a.status = self.payload.status
            if self.payload.scheduled_at:
                a.scheduled_at = parse_iso(self.payload.scheduled_at)
            if a.status == "cancelled":
                for sid in a.sessions:
                    for rid in a.todo[sid]:
                        a._set(a.recipients[rid], "cancelled")
                    a.todo[sid].clear()
                for rid in list(a.retry_wait):
                    a._set(a.recipients[rid], "cancelled")
                a.retry_wait.clear()

    class RecipientsTyping(Event):
        SPEC = ev.CAMPAIGN_TYPING
        payload: RecipientsTyping

        def apply(self, aggregate: Any) -> None:
            a: Campaign = aggregate
            for t in self.payload.items:
                rs = a.recipients[t.recipient_id]
                a._take(rs)
                rs.send_at = parse_iso(t.send_at)
                a._set(rs, "typing")
                a.in_flight[rs.session_id].add(rs.r.id)

    class RecipientsDispatched(Event):
        SPEC = ev.CAMPAIGN_DISPATCHED
        payload: RecipientsDispatched

        def apply(self, aggregate: Any) -> None:
            a: Campaign = aggregate
            for d in self.payload.items:
                rs = a.recipients[d.recipient_id]
                a._take(rs)
                rs.attempt = d.attempt
                rs.send_at = None
                rs.commands = dict(zip(d.command_ids, d.parts, strict=True))
                for cid, part in rs.commands.items():
                    a.command_index[cid] = (rs.r.id, part)
                a._set(rs, "sending")
                a.in_flight[rs.session_id].add(rs.r.id)
                at = parse_iso(d.at)
                history = a.sends[rs.session_id]
                history.append(at)
                while history and history[0] < at - timedelta(days=1):
                    history.pop(0)

    class RecipientsUpdated(Event):
        SPEC = ev.CAMPAIGN_UPDATED
        payload: RecipientsUpdated

        def apply(self, aggregate: Any) -> None:
            a: Campaign = aggregate
            for u in self.payload.updates:
                rs = a.recipients[u.recipient_id]
                if u.part is not None and u.status == "sending":
                    rs.parts_done.add(u.part)
                    continue
                if rs.status in ACTIVE:
                    a.in_flight[rs.session_id].discard(rs.r.id)
                if rs.status == "retrying":
                    a.retry_wait.pop(rs.r.id, None)
                rs.code, rs.reason = u.code, u.reason
                if u.message_id:
                    rs.message_id = u.message_id
                if u.status == "retrying":
                    rs.retry_at = parse_iso(u.retry_at) if u.retry_at else None
                    a.retry_wait[rs.r.id] = rs.retry_at or parse_iso(u.at)
                a._set(rs, u.status)

    class RetryRequested(Event):
        SPEC = ev.CAMPAIGN_RETRY_REQUESTED
        payload: RetryRequested

        def apply(self, aggregate: Any) -> None:
            a: Campaign = aggregate
            for rid in self.payload.recipient_ids:
                rs = a.recipients[rid]
                rs.code = rs.reason = None
                # A fresh budget of retries; the attempt number keeps growing so command ids stay new.
                rs.retry_at = None
                a.retry_wait[rid] = parse_iso(self.payload.at)
                a._set(rs, "retrying")

    class Progressed(Event):
        SPEC = ev.CAMPAIGN_PROGRESS
        payload: Progressed

    # ----- helpers --------------------------------------------------------------

    def _set(self, rs: RecipientState, status: RecipientStatus) -> None:
        self.counts[rs.status] -= 1
        rs.status = status
        self.counts[status] += 1

    def _take(self, rs: RecipientState) -> None:
        queue = self.todo[rs.session_id]
        if queue and queue[0] == rs.r.id:
            queue.popleft()
        elif rs.r.id in self.retry_wait:
            del self.retry_wait[rs.r.id]
        elif rs.r.id in queue:
            queue.remove(rs.r.id)

    def _emit(self, cls: type[Event], at: datetime, payload: BaseModel) -> None:
        self.trigger_event(cls, timestamp=at, payload=payload)

    def _status(self, at: datetime, status: CampaignStatus, reason: str | None = None,
                scheduled_at: str | None = None) -> None:
        self._emit(Campaign.StatusChanged, at, StatusChanged(
            tenant_id=self.tenant_id, status=status, previous=self.status, reason=reason,
            scheduled_at=scheduled_at, at=iso(at)))

    # ----- views ------------------------------------------------------------------

    @property
    def campaign_id(self) -> str:
        return str(self.id)

    def progress(self) -> Counts:
        n = self.counts
        return Counts(
            total=len(self.recipients), pending=n["pending"] + n["retrying"], sending=n["typing"] + n["sending"],
            sent=n["sent"], delivered=n["delivered"], read=n["read"], failed=n["failed"], skipped=n["skipped"],
            cancelled=n["cancelled"],
        )

    @property
    def recipients_complete(self) -> bool:
        return len(self.recipients) >= self.expected

    def has_work(self) -> bool:
        return any(self.todo.values()) or bool(self.retry_wait) or any(self.in_flight.values())

    # ----- decisions --------------------------------------------------------------

    @classmethod
    def create(cls, command: cc.CreateCampaign, at: datetime) -> Campaign:
        if len({s.session_id for s in command.sessions}) != len(command.sessions):
            raise CommandRejected("a session is listed twice", code="invalid")
        if not command.message.text and not command.message.media:
            raise CommandRejected("the message needs text or media", code="invalid")
        return cls._create(
            cls.Created, id=UUID(command.campaign_id), timestamp=at,
            payload=CampaignCreated(
                tenant_id=command.tenant_id, name=command.name, message=command.message,
                sessions=command.sessions, pacing=command.pacing, timezone=command.timezone,
                expected_recipients=command.expected_recipients, created_at=iso(at),
            ),
        )

    def add_recipients(self, at: datetime, chunk: int, recipients: Sequence[Recipient]) -> None:
        if self.status != "draft":
            raise CommandRejected(f"recipients can be added to a draft only (status {self.status})",
                                  code="invalid_state")
        if chunk in self.chunks:
            return  # the same chunk again: already recorded
        if len(self.recipients) + len(recipients) > self.expected:
            raise CommandRejected("more recipients than announced", code="invalid")
        self._emit(Campaign.RecipientsAdded, at,
                   RecipientsAdded(tenant_id=self.tenant_id, chunk=chunk, recipients=list(recipients)))

    def schedule(self, at: datetime, when: datetime) -> None:
        if self.status not in ("draft", "scheduled"):
            raise CommandRejected(f"only a draft can be scheduled (status {self.status})", code="invalid_state")
        if not self.recipients_complete:
            raise CommandRejected("recipients are still being added", code="incomplete")
        self._status(at, "scheduled", scheduled_at=iso(when))

    def start(self, at: datetime) -> None:
        if self.status not in ("draft", "scheduled"):
            raise CommandRejected(f"cannot start a campaign in status {self.status}", code="invalid_state")
        if not self.recipients_complete:
            raise CommandRejected("recipients are still being added", code="incomplete")
        self._status(at, "running")
        self.finish_if_done(at)

    def pause(self, at: datetime) -> None:
        if self.status != "running":
            raise CommandRejected(f"only a running campaign can be paused (status {self.status})",
                                  code="invalid_state")
        self._status(at, "paused")

    def resume(self, at: datetime) -> None:
        if self.status != "paused":
            raise CommandRejected(f"only a paused campaign can be resumed (status {self.status})",
                                  code="invalid_state")
        self._status(at, "running")
        self.finish_if_done(at)

    def cancel(self, at: datetime) -> None:
        if self.status in ("completed", "cancelled", "failed"):
            raise CommandRejected(f"campaign already ended (status {self.status})", code="invalid_state")
        self._status(at, "cancelled", reason="cancelled by the user")
        self.report(at)

    def retry_failed(self, at: datetime) -> None:
        failed = [rid for rid, rs in self.recipients.items() if rs.status == "failed"]
        if not failed:
            raise CommandRejected("no failed recipients", code="nothing_to_retry")
        if self.status == "cancelled":
            raise CommandRejected("campaign was cancelled", code="invalid_state")
        self._emit(Campaign.RetryRequested, at,
                   RetryRequested(tenant_id=self.tenant_id, recipient_ids=failed, at=iso(at)))
        if self.status in ("completed", "failed"):
            self._status(at, "running", reason="retrying failed recipients")
        self.report(at)

    def finish_if_done(self, at: datetime) -> None:
        if self.status != "running" or self.has_work():
            return
        n = self.counts
        delivered = n["sent"] + n["delivered"] + n["read"]
        if delivered == 0 and n["failed"] > 0:
            self._status(at, "failed", reason="no recipient could be sent to")
        else:
            self._status(at, "completed")

    def report(self, at: datetime) -> None:
        self._emit(Campaign.Progressed, at,
                   Progressed(tenant_id=self.tenant_id, status=self.status, counts=self.progress(), at=iso(at)))

    # ----- scheduling -------------------------------------------------------------

    def text_for(self, rs: RecipientState) -> str:
        fields = {"nombre": rs.r.nombre, "sustantivo": rs.r.sustantivo, "grupo": rs.r.grupo}
        return pace.render(self.message.text or "", fields)

    def _next_waiting(self, sid: str, now: datetime) -> str | None:
        due = sorted((at, self.recipients[rid].r.seq, rid) for rid, at in self.retry_wait.items()
                     if at <= now and self.recipients[rid].session_id == sid)
        if due:
            return due[0][2]
        queue = self.todo[sid]
        return queue[0] if queue else None

    def plan(self, now: datetime) -> list[Action]:
        """What is due at ``now``: typing indicators to show and messages to send."""
        if self.status != "running":
            return []
        actions: list[Action] = []
        for sid in self.sessions:
            typing_done = [rid for rid in self.in_flight[sid]
                           if self.recipients[rid].status == "typing"
                           and (self.recipients[rid].send_at or now) <= now]
            actions += [Action(rid, sid, typing=False)
                        for rid in sorted(typing_done, key=lambda r: self.recipients[r].r.seq)]
            room = self.pacing.max_in_flight - len(self.in_flight[sid])
            if room <= 0:
                continue
            if not self.pacing.enabled:
                picked = [rid for rid, at in self.retry_wait.items()
                          if at <= now and self.recipients[rid].session_id == sid][:room]
                picked += list(_take_n(self.todo[sid], room - len(picked)))
                actions += [Action(rid, sid, typing=False) for rid in picked]
                continue
            rid = self._next_waiting(sid, now)
            if rid is None:
                continue
            rs = self.recipients[rid]
            slot = pace.next_slot(self.pacing, now=now, sends=self.sends[sid],
                                  seed=f"{self.campaign_id}:{rid}:{rs.attempt}", tz=self.timezone,
                                  linked_at=self.linked_at.get(sid))
            if slot > now:
                continue
            typing_s = pace.typing_seconds(self.pacing, len(self.text_for(rs)))
            if typing_s > 0:
                actions.append(Action(rid, sid, typing=True, send_at=now + timedelta(seconds=typing_s)))
            else:
                actions.append(Action(rid, sid, typing=False))
        return actions

    def dispatch(self, now: datetime, actions: Sequence[Action]) -> None:
        """Record the due actions; the caller writes the session commands in the same transaction."""
        typing = [Typing(recipient_id=a.recipient_id, session_id=a.session_id, send_at=iso(a.send_at or now))
                  for a in actions if a.typing]
        if typing:
            self._emit(Campaign.RecipientsTyping, now, RecipientsTyping(tenant_id=self.tenant_id, items=typing))
        items = []
        for a in actions:
            if a.typing:
                continue
            rs = self.recipients[a.recipient_id]
            attempt = rs.attempt + 1
            parts = [i for i in range(self.part_count()) if i not in rs.parts_done]
            items.append(Dispatch(
                recipient_id=rs.r.id, session_id=rs.session_id, attempt=attempt,
                command_ids=[pace.send_command_id(self.campaign_id, rs.r.id, attempt, i) for i in parts],
                parts=parts, at=iso(now)))
        if items:
            self._emit(Campaign.RecipientsDispatched, now,
                       RecipientsDispatched(tenant_id=self.tenant_id, items=items))

    def part_count(self) -> int:
        media = self.message.media
        if not media:
            return 1
        # A voice note cannot carry a caption: its text goes first, as a message of its own.
        if media[0].kind == "audio" and self.message.text:
            return len(media) + 1
        return len(media)

    def session_commands(self, d: Dispatch, issued_at: str) -> list[c.Command]:
        """The ``session.send_message`` commands of one dispatch, in part order."""
        rs = self.recipients[d.recipient_id]
        text = self.text_for(rs)
        media = self.message.media
        assert rs.r.phone is not None  # a recipient without a phone (erased) is never queued
        out: list[c.Command] = []
        for cid, part in zip(d.command_ids, d.parts, strict=True):
            fields: dict[str, Any] = {}
            if not media:
                fields["content"] = text
            elif media[0].kind == "audio" and self.message.text:
                fields = {"content": text} if part == 0 else {"media": media[part - 1]}
            else:
                fields["media"] = media[part]
                if part == 0 and text and media[0].kind not in ("audio", "sticker"):
                    fields["content"] = text
            out.append(c.SendMessage(
                command_id=cid, session_id=d.session_id, tenant_id=self.tenant_id, issued_at=issued_at,
                to=rs.r.phone, campaign_id=self.campaign_id, **fields))
        return out

    def typing_command(self, t: Typing, issued_at: str) -> c.Command:
        rs = self.recipients[t.recipient_id]
        assert rs.r.phone is not None  # a recipient without a phone (erased) is never queued
        return c.SendPresence(
            command_id=pace.presence_command_id(self.campaign_id, rs.r.id, rs.attempt + 1),
            session_id=t.session_id, tenant_id=self.tenant_id, issued_at=issued_at,
            chat_jid=rs.r.phone, presence="composing")

    # ----- outcomes ---------------------------------------------------------------

    def record_outcomes(self, at: datetime, outcomes: Sequence[Outcome]) -> None:
        updates: list[RecipientUpdate] = []
        seen: dict[str, RecipientStatus] = {}
        done_now: dict[str, set[int]] = {}
        for o in outcomes:
            hit = self.command_index.get(o.command_id)
            if hit is None:
                continue
            rid, part = hit
            rs = self.recipients[rid]
            status = seen.get(rid, rs.status)
            current = o.command_id in rs.commands
            if o.kind in ("succeeded", "delivered", "read") and current and status == "sending":
                # A receipt can overtake the send's own outcome (WhatsApp answers fast; the session runner
                # commits the outcome after the call): it proves the part went out.
                required = set(rs.commands.values())
                done = done_now.setdefault(rid, set(rs.parts_done & required))
                done.add(part)
                if done >= required:
                    first = min(rs.commands, key=lambda cid: rs.commands[cid])
                    reached: RecipientStatus = "sent" if o.kind == "succeeded" else o.kind
                    updates.append(RecipientUpdate(recipient_id=rid, status=reached, at=o.at,
                                                   message_id=message_id_for(first)))
                    seen[rid] = reached
                else:
                    updates.append(RecipientUpdate(recipient_id=rid, status="sending", part=part, at=o.at))
            elif o.kind == "failed" and current and status == "sending":
                auto = o.retryable and (o.code or "") not in NOT_AUTO_RETRIED
                if auto and rs.attempt <= MAX_RETRIES and self.status != "cancelled":
                    retry_at = parse_iso(o.at) + pace.retry_delay(self.pacing, rs.attempt)
                    new: RecipientStatus = "retrying"
                    updates.append(RecipientUpdate(recipient_id=rid, status=new, at=o.at, code=o.code,
                                                   reason=o.reason, retry_at=iso(retry_at)))
                else:
                    new = "cancelled" if auto and self.status == "cancelled" else "failed"
                    updates.append(RecipientUpdate(recipient_id=rid, status=new, at=o.at, code=o.code,
                                                   reason=o.reason))
                seen[rid] = new
            elif o.kind in ("delivered", "read") and status in RECEIPT_RANK:
                if RECEIPT_RANK[o.kind] > RECEIPT_RANK[status]:
                    updates.append(RecipientUpdate(recipient_id=rid, status=o.kind, at=o.at))
                    seen[rid] = o.kind
        if updates:
            self._emit(Campaign.RecipientsUpdated, at, RecipientsUpdated(tenant_id=self.tenant_id, updates=updates))
            # Counts first: a reader that sees "completed" has already seen the final counts.
            self.report(at)
            self.finish_if_done(at)


def _take_n(queue: deque[str], n: int) -> list[str]:
    return [queue[i] for i in range(min(n, len(queue)))]


EVENT_CLASSES: tuple[type[Campaign.Event], ...] = (
    Campaign.Created,
    Campaign.RecipientsAdded,
    Campaign.StatusChanged,
    Campaign.RecipientsTyping,
    Campaign.RecipientsDispatched,
    Campaign.RecipientsUpdated,
    Campaign.RetryRequested,
    Campaign.Progressed,
)
EVENTS_BY_TYPE: dict[str, type[Campaign.Event]] = {cls.TYPE: cls for cls in EVENT_CLASSES}
SUPPRESSION_ADDED = ev.SUPPRESSION_ADDED.type
"""Not an event of one campaign: a tenant-wide fact on the same topic, keyed by tenant."""


def decide(
    campaign: Campaign | None, command: cc.CampaignCommand, now: datetime
) -> tuple[Campaign | None, list[Campaign.Event]]:
    """Apply ``command``; returns the campaign and the events it produced, or raises CommandRejected."""
    if isinstance(command, cc.CreateCampaign):
        if campaign is not None:
            if campaign.tenant_id == command.tenant_id:
                return campaign, []  # the same create again
            raise CommandRejected("campaign already exists", code="already_exists")
        created = Campaign.create(command, now)
        return created, _collect(created)
    if campaign is None or campaign.tenant_id != command.tenant_id:
        raise CommandRejected("campaign not found", code="not_found")
    if isinstance(command, cc.AddRecipients):
        campaign.add_recipients(now, command.chunk, command.recipients)
    elif isinstance(command, cc.ScheduleCampaign):
        campaign.schedule(now, parse_iso(command.at))
    elif isinstance(command, cc.StartCampaign):
        campaign.start(now)
    elif isinstance(command, cc.PauseCampaign):
        campaign.pause(now)
    elif isinstance(command, cc.ResumeCampaign):
        campaign.resume(now)
    elif isinstance(command, cc.CancelCampaign):
        campaign.cancel(now)
    elif isinstance(command, cc.RetryFailed):
        campaign.retry_failed(now)
    elif isinstance(command, cc.RecordOutcomes):
        campaign.record_outcomes(now, command.outcomes)
    else:  # pragma: no cover
        raise CommandRejected(f"unsupported command {type(command).__name__}", code="unsupported")
    return campaign, _collect(campaign)


def tick(campaign: Campaign, now: datetime) -> tuple[list[Campaign.Event], list[Action]]:
    """Time passing: start a scheduled campaign when due, then plan and record due sends."""
    if campaign.status == "scheduled" and campaign.scheduled_at is not None and campaign.scheduled_at <= now:
        campaign.start(now)
    actions = campaign.plan(now)
    if actions:
        campaign.dispatch(now, actions)
    return _collect(campaign), actions


def _collect(campaign: Campaign) -> list[Campaign.Event]:
    return [e for e in campaign.collect_events() if isinstance(e, Campaign.Event)]


def event_from_wire(type_: str, campaign_id: str, version: int, occurred_on: datetime,
                    payload: dict[str, Any]) -> Campaign.Event:
    cls = EVENTS_BY_TYPE[type_]
    fields: dict[str, Any] = {
        "originator_id": UUID(campaign_id),
        "originator_version": version,
        "timestamp": occurred_on,
        "payload": cls.PAYLOAD.model_validate(payload),
    }
    if issubclass(cls, Campaign.Created):
        fields["originator_topic"] = get_topic(Campaign)
    return cls(**fields)


def evolve(campaign: Campaign | None, event: Campaign.Event) -> Campaign:
    result = event.mutate(campaign)
    assert isinstance(result, Campaign)
    return result
