"""Campaign aggregate: state machine, FIFO spread over numbers, outcomes, retries; templates; pacing (fake clock)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from zapstream_contracts import campaign_commands as cc
from zapstream_contracts import commands as c
from zapstream_contracts.campaign_payloads import CampaignMessage, CampaignSession, Outcome, Pacing, Recipient
from zapstream_contracts.timefmt import iso
from zapstream_domain import campaign_pacing as pace
from zapstream_domain.campaign import Campaign, decide, event_from_wire, evolve, tick
from zapstream_domain.errors import CommandRejected

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 12:00 in Asunción (UTC-3): outside quiet hours
TENANT = "t1"
OFF = Pacing(enabled=False, max_in_flight=5, retry_base_s=10)


def cmd(cls: type[cc.CampaignCommand], cid: str, **fields: object) -> cc.CampaignCommand:
    return cls(command_id=str(uuid.uuid4()), campaign_id=cid, tenant_id=TENANT, issued_at=iso(T0), **fields)


def recipients(n: int, skip: set[int] | None = None) -> list[Recipient]:
    return [Recipient(id=f"r{i}", seq=i, phone=f"59599{i:07d}", nombre=f"N{i}", sustantivo="Sr", grupo="G",
                      skip_reason="suppressed" if skip and i in skip else None) for i in range(n)]


LOG: list[Campaign.Event] = []


def new_campaign(n: int = 4, pacing: Pacing = OFF, sessions: int = 2, text: str = "Hola {sustantivo} {nombre}",
                 skip: set[int] | None = None) -> Campaign:
    cid = str(uuid.uuid4())
    camp, events = decide(None, cmd(cc.CreateCampaign, cid, name="x", message=CampaignMessage(text=text),
                               sessions=[CampaignSession(session_id=f"s{i}") for i in range(sessions)],
                               pacing=pacing, timezone="America/Asuncion", expected_recipients=n), T0)
    assert camp is not None
    LOG[:] = events + decide(camp, cmd(cc.AddRecipients, cid, chunk=0, recipients=recipients(n, skip)), T0)[1]
    return camp


def rebuild(camp: Campaign, events: list[Campaign.Event]) -> Campaign:
    state: Campaign | None = None
    for e in events:
        state = evolve(state, event_from_wire(e.TYPE, camp.campaign_id, e.originator_version, e.timestamp,
                                              e.payload.model_dump(by_alias=True, mode="json")))  # type: ignore[attr-defined]
    assert state is not None
    return state


def test_state_machine_and_rejections() -> None:
    camp = new_campaign()
    with pytest.raises(CommandRejected):
        decide(camp, cmd(cc.PauseCampaign, camp.campaign_id), T0)
    decide(camp, cmd(cc.ScheduleCampaign, camp.campaign_id, at=iso(T0 + timedelta(minutes=5))), T0)
    assert camp.status == "scheduled"
    _, actions = tick(camp, T0 + timedelta(minutes=1))
    assert camp.status == "scheduled" and not actions
    _, actions = tick(camp, T0 + timedelta(minutes=5))
    assert camp.status == "running" and len(actions) == 4
    decide(camp, cmd(cc.PauseCampaign, camp.campaign_id), T0)
    assert camp.status == "paused" and camp.plan(T0) == []
    decide(camp, cmd(cc.ResumeCampaign, camp.campaign_id), T0)
    decide(camp, cmd(cc.CancelCampaign, camp.campaign_id), T0)
    assert camp.status == "cancelled"
    with pytest.raises(CommandRejected):
        decide(camp, cmd(cc.StartCampaign, camp.campaign_id), T0)
    other_tenant = cc.PauseCampaign(command_id="x", campaign_id=camp.campaign_id, tenant_id="t2", issued_at=iso(T0))
    with pytest.raises(CommandRejected):
        decide(camp, other_tenant, T0)


def test_fifo_spread_outcomes_and_completion() -> None:
    camp = new_campaign(n=5, skip={2})
    all_events = list(LOG)
    all_events += decide(camp, cmd(cc.StartCampaign, camp.campaign_id), T0)[1]
    events, actions = tick(camp, T0)
    all_events += events
    assert [a.recipient_id for a in actions] == ["r0", "r4", "r1", "r3"]  # s0: 0,2(skipped),4; s1: 1,3
    assert {a.session_id for a in actions if a.recipient_id in ("r0", "r4")} == {"s0"}
    dispatched = events[-1].payload.items  # type: ignore[attr-defined]
    sends = [cmd_ for d in dispatched for cmd_ in camp.session_commands(d, iso(T0))]
    assert all(isinstance(s, c.SendMessage) and s.campaign_id == camp.campaign_id for s in sends)
    assert sends[0].content == "Hola Sr N0"  # type: ignore[attr-defined]
    # the ids are the deterministic ones: a crashed runner re-emits the same commands
    assert sends[0].command_id == pace.send_command_id(camp.campaign_id, "r0", 1, 0)
    outcomes = [Outcome(command_id=s.command_id, kind="succeeded", at=iso(T0)) for s in sends]
    all_events += decide(camp, cmd(cc.RecordOutcomes, camp.campaign_id, outcomes=outcomes), T0)[1]
    assert camp.status == "completed"
    assert camp.progress().sent == 4 and camp.progress().skipped == 1
    # receipts move forward only; a repeated outcome changes nothing
    all_events += decide(camp, cmd(cc.RecordOutcomes, camp.campaign_id, outcomes=[
        Outcome(command_id=sends[0].command_id, kind="read", at=iso(T0)),
        Outcome(command_id=sends[0].command_id, kind="delivered", at=iso(T0)),
        Outcome(command_id=sends[1].command_id, kind="succeeded", at=iso(T0))]), T0)[1]
    assert camp.progress().read == 1 and camp.progress().delivered == 0 and camp.progress().sent == 3
    # a receipt that overtakes the send's outcome counts; the late outcome then changes nothing
    other = new_campaign(n=1, sessions=1)
    decide(other, cmd(cc.StartCampaign, other.campaign_id), T0)
    tick(other, T0)
    first = pace.send_command_id(other.campaign_id, "r0", 1)
    decide(other, cmd(cc.RecordOutcomes, other.campaign_id, outcomes=[
        Outcome(command_id=first, kind="read", at=iso(T0)), Outcome(command_id=first, kind="succeeded", at=iso(T0))]),
        T0)
    assert other.recipients["r0"].status == "read" and other.status == "completed"
    rebuilt = rebuild(camp, all_events)
    assert rebuilt.progress() == camp.progress() and rebuilt.status == "completed"


def _fail(camp: Campaign, command_id: str, retryable: bool, at: datetime) -> None:
    decide(camp, cmd(cc.RecordOutcomes, camp.campaign_id, outcomes=[
        Outcome(command_id=command_id, kind="failed", at=iso(at), code="x", reason="y", retryable=retryable)]), at)


def test_three_retries_with_backoff_then_failed_and_retry_failed() -> None:
    camp = new_campaign(n=2, sessions=1)
    decide(camp, cmd(cc.StartCampaign, camp.campaign_id), T0)
    now = T0
    tick(camp, now)
    _fail(camp, pace.send_command_id(camp.campaign_id, "r1", 1), False, now)  # permanent: no retry
    assert camp.recipients["r1"].status == "failed"
    maybe_sent = new_campaign(n=1, sessions=1)
    decide(maybe_sent, cmd(cc.StartCampaign, maybe_sent.campaign_id), now)
    tick(maybe_sent, now)
    decide(maybe_sent, cmd(cc.RecordOutcomes, maybe_sent.campaign_id, outcomes=[Outcome(
        command_id=pace.send_command_id(maybe_sent.campaign_id, "r0", 1), kind="failed", at=iso(now),
        code="outcome_unknown", reason="lost answer", retryable=True)]), now)
    assert maybe_sent.recipients["r0"].status == "failed"  # may have gone out: no automatic second copy
    for attempt, delay in ((1, 10), (2, 20), (3, 40)):
        _fail(camp, pace.send_command_id(camp.campaign_id, "r0", attempt), True, now)
        assert camp.recipients["r0"].status == "retrying"
        assert tick(camp, now + timedelta(seconds=delay - 1))[1] == []  # exponential backoff
        now = now + timedelta(seconds=delay)
        assert [a.recipient_id for a in tick(camp, now)[1]] == ["r0"]
    _fail(camp, pace.send_command_id(camp.campaign_id, "r0", 4), True, now)
    assert camp.recipients["r0"].status == "failed" and camp.status == "failed"
    decide(camp, cmd(cc.RetryFailed, camp.campaign_id), now)
    assert camp.status == "running"
    assert sorted(a.recipient_id for a in tick(camp, now)[1]) == ["r0", "r1"]
    assert camp.recipients["r0"].attempt == 5  # new attempt → new command ids


def test_cancel_stops_pending_recipients() -> None:
    camp = new_campaign(n=20, sessions=1)
    decide(camp, cmd(cc.StartCampaign, camp.campaign_id), T0)
    tick(camp, T0)  # five in flight
    decide(camp, cmd(cc.CancelCampaign, camp.campaign_id), T0)
    assert camp.progress().cancelled == 15 and camp.progress().sending == 5
    assert tick(camp, T0 + timedelta(hours=1))[1] == []


def test_media_parts_and_voice_note_text_first() -> None:
    from zapstream_contracts.payloads import MediaRef

    img = MediaRef(kind="image", key="tenants/t1/a.png", mime="image/png", size=10)
    voice = MediaRef(kind="audio", key="tenants/t1/a.ogg", mime="audio/ogg", size=10, ptt=True)
    camp = new_campaign(n=1, sessions=1)
    camp.message = CampaignMessage(text="Hi {nombre}", media=[img, img])
    decide(camp, cmd(cc.StartCampaign, camp.campaign_id), T0)
    d = tick(camp, T0)[0][-1].payload.items[0]  # type: ignore[attr-defined]
    parts = camp.session_commands(d, iso(T0))
    assert [(p.media is not None, p.content) for p in parts] == [(True, "Hi N0"), (True, None)]  # type: ignore[attr-defined]
    camp.message = CampaignMessage(text="Hi", media=[voice])
    assert camp.part_count() == 2


def test_render_templates() -> None:
    fields = {"nombre": "Carlos Gómez", "sustantivo": "Sr", "grupo": "Premium"}
    assert pace.render("Hola {sustantivo} {nombre} ({grupo}) 🎉", fields) == "Hola Sr Carlos Gómez (Premium) 🎉"
    assert pace.render("Hola {sustantivo} {nombre}", {"nombre": "Ana"}) == "Hola Ana"
    assert pace.render("{otro} {nombre}", {"nombre": "A"}) == "{otro} A"
    assert pace.render("sin variables  aquí", {}) == "sin variables  aquí"


def test_pacing_gap_jitter_caps_warmup_quiet_hours() -> None:
    p = Pacing(base_delay_s=10, jitter_s=5, per_hour=3, per_day=1000, warmup=[], quiet_start=None, quiet_end=None)
    assert pace.next_slot(p, now=T0, sends=[], seed="a", tz="UTC") == T0
    slot = pace.next_slot(p, now=T0, sends=[T0], seed="a", tz="UTC")
    assert T0 + timedelta(seconds=10) <= slot < T0 + timedelta(seconds=15)
    assert slot == pace.next_slot(p, now=T0, sends=[T0], seed="a", tz="UTC")  # stable jitter
    three = [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    assert pace.next_slot(p, now=T0 + timedelta(minutes=3), sends=three, seed="a", tz="UTC") == T0 + timedelta(hours=1)
    warm = Pacing(base_delay_s=0, jitter_s=0, per_hour=1000, warmup=[2, 5], quiet_start=None, quiet_end=None)
    linked = T0 - timedelta(hours=1)  # day 0 of the number: cap 2
    assert pace.next_slot(warm, now=T0, sends=three[:2], seed="a", tz="UTC", linked_at=linked) == T0 + timedelta(days=1)
    assert pace.day_cap(warm, linked, T0 + timedelta(days=1, hours=1)) == 5
    assert pace.day_cap(warm, linked, T0 + timedelta(days=9)) == 1000
    quiet = Pacing(base_delay_s=0, jitter_s=0, quiet_start="21:00", quiet_end="08:00")
    late = datetime(2026, 3, 3, 1, 30, tzinfo=UTC)  # 22:30 in Asunción (UTC-3)
    assert pace.next_slot(quiet, now=late, sends=[], seed="a", tz="America/Asuncion") == datetime(
        2026, 3, 3, 11, 0, tzinfo=UTC)
    assert pace.typing_seconds(quiet, 50) == 2.0 and pace.typing_seconds(OFF, 50) == 0


def test_paced_campaign_with_fake_clock_types_then_sends_one_per_gap() -> None:
    p = Pacing(base_delay_s=10, jitter_s=0, typing_chars_per_s=5, per_hour=100, warmup=[],
               quiet_start=None, quiet_end=None)
    camp = new_campaign(n=3, pacing=p, sessions=1, text="Hola {nombre}")  # "Hola N0": 7 chars → 1.4 s typing
    decide(camp, cmd(cc.StartCampaign, camp.campaign_id), T0)
    events, actions = tick(camp, T0)
    assert actions[0].typing and events[-1].TYPE == "campaign.recipients.typing"
    typing = events[-1].payload.items[0]  # type: ignore[attr-defined]
    assert isinstance(camp.typing_command(typing, iso(T0)), c.SendPresence)
    assert tick(camp, T0 + timedelta(seconds=1))[1] == []
    sent_at = T0 + timedelta(seconds=1.4)
    assert [a.typing for a in tick(camp, sent_at)[1]] == [False]
    cid = pace.send_command_id(camp.campaign_id, "r0", 1)
    decide(camp, cmd(cc.RecordOutcomes, camp.campaign_id,
                     outcomes=[Outcome(command_id=cid, kind="succeeded", at=iso(sent_at))]), sent_at)
    assert tick(camp, sent_at + timedelta(seconds=9))[1] == []
    assert tick(camp, sent_at + timedelta(seconds=10))[1][0].recipient_id == "r1"


def test_a_recipient_whose_phone_was_erased_is_skipped_on_rebuild_and_never_sent_to() -> None:
    """After the tenant's key is erased a replayed ``campaign.recipients.added`` has no phones (crypto-shredding):
    the rebuilt campaign skips those recipients (reason ``erased``) instead of sending to nobody."""
    camp = new_campaign(n=3, sessions=1)
    events = list(LOG)
    erased = []
    for e in events:
        wire = e.payload.model_dump(by_alias=True, mode="json")
        if e.TYPE == Campaign.RecipientsAdded.TYPE:
            for r in wire["recipients"][:2]:
                r.update(phone=None, nombre=None, sustantivo=None, grupo=None)
        erased.append(event_from_wire(e.TYPE, camp.campaign_id, e.originator_version, e.timestamp, wire))
    state: Campaign | None = None
    for event in erased:
        state = evolve(state, event)
    assert state is not None
    assert [(state.recipients[r].status, state.recipients[r].reason) for r in ("r0", "r1")] == [
        ("skipped", "erased"), ("skipped", "erased")]
    decide(state, cmd(cc.StartCampaign, state.campaign_id), T0)
    _, actions = tick(state, T0)
    assert [a.recipient_id for a in actions] == ["r2"]
