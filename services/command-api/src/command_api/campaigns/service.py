"""Campaign use cases: build a campaign from a selection or a CSV, publish its commands, read its progress."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from command_api.address_book.csvparse import BadRow, InvalidPhone, Row, normalize, parse_text
from command_api.address_book.repository import AddressBookRepository
from command_api.campaigns import schemas as s
from command_api.campaigns.context import CampaignContext
from command_api.campaigns.repository import CampaignRepository
from command_api.shared.problems import Problem
from zapstream_contracts import campaign_commands as cc
from zapstream_contracts.campaign_payloads import CampaignMessage, CampaignSession, Counts, Recipient
from zapstream_contracts.envelope import command_headers
from zapstream_contracts.payloads import MediaRef
from zapstream_contracts.timefmt import iso, parse_iso
from zapstream_domain.campaign_pacing import render
from zapstream_platform.tokens import Principal
from zapstream_platform.tracing import child_of

SOURCE = "/zapstream/command-api"

CHUNK = 1000
TERMINAL = ("completed", "cancelled", "failed")
# Namespace of the ids of the cancels a tenant's deletion sends.
TENANT_DELETED = uuid.UUID("6b1f0e2a-93c4-4d5e-8f70-2a9c3b1d4e56")
ACTIONS: dict[str, tuple[type[cc.CampaignCommand], tuple[str, ...]]] = {
    "start": (cc.StartCampaign, ("draft", "scheduled")),
    "pause": (cc.PauseCampaign, ("running",)),
    "resume": (cc.ResumeCampaign, ("paused",)),
    "cancel": (cc.CancelCampaign, ("draft", "scheduled", "running", "paused")),
    "retry-failed": (cc.RetryFailed, ("running", "paused", "completed", "failed")),
}


def _iso(ts: datetime | None) -> str | None:
    return iso(ts.astimezone(UTC)) if ts else None


def campaign_out(r: asyncpg.Record) -> s.CampaignOut:
    counts = Counts(total=r["total"], pending=r["pending"], sending=r["sending"], sent=r["sent"],
                    delivered=r["delivered"], read=r["read"], failed=r["failed"], skipped=r["skipped"],
                    cancelled=r["cancelled"])
    done = counts.sent + counts.delivered + counts.read + counts.failed + counts.skipped + counts.cancelled
    return s.CampaignOut(
        id=str(r["id"]), name=r["name"], status=r["status"], status_reason=r["status_reason"],
        session_ids=list(r["session_ids"]), message=orjson.loads(r["message"]), pacing=orjson.loads(r["pacing"]),
        timezone=r["timezone"], counts=counts, progress=round(done / counts.total, 4) if counts.total else 1.0,
        created_at=_iso(r["created_at"]) or "", scheduled_at=_iso(r["scheduled_at"]),
        started_at=_iso(r["started_at"]), finished_at=_iso(r["finished_at"]), updated_at=_iso(r["updated_at"]) or "")


def recipient_out(r: asyncpg.Record) -> s.RecipientOut:
    return s.RecipientOut(
        recipient_id=r["recipient_id"], seq=r["seq"], phone=r["phone"], nombre=r["nombre"],
        sustantivo=r["sustantivo"], grupo=r["grupo"], session_id=r["session_id"], status=r["status"],
        code=r["code"], reason=r["reason"], attempts=r["attempts"], message_id=r["message_id"],
        sent_at=_iso(r["sent_at"]), delivered_at=_iso(r["delivered_at"]), read_at=_iso(r["read_at"]))


def campaign_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise Problem(404, "campaign not found") from exc


class CampaignService:
    def __init__(self, ctx: CampaignContext) -> None:
        self.ctx = ctx
        self.repo = CampaignRepository(ctx.pool)
        self.book = AddressBookRepository(ctx.pool)

    # ----- building a campaign -------------------------------------------------------

    async def _audience(self, who: Principal, audience: s.Audience,
                        country: int) -> tuple[list[Row], list[s.InvalidRow], dict[int, str]]:
        rows: list[Row] = []
        invalid: list[s.InvalidRow] = []
        contact_ids: dict[int, str] = {}
        if audience.groups or audience.contact_ids or audience.all_contacts:
            ids = []
            for raw in audience.contact_ids:
                try:
                    ids.append(uuid.UUID(raw))
                except ValueError as exc:
                    raise Problem(422, f"invalid contact id {raw[:40]!r}") from exc
            for r in await self.book.selection(who.tenant_id, audience.groups, ids, audience.all_contacts):
                contact_ids[len(rows)] = str(r["id"])
                rows.append(Row(0, r["phone"], r["nombre"], r["sustantivo"], r["grupo"]))
        for i, rec in enumerate(audience.recipients, start=1):
            try:
                rows.append(Row(i, normalize(rec.phone, country), rec.nombre, rec.sustantivo, rec.grupo))
            except InvalidPhone as exc:
                invalid.append(s.InvalidRow(line=i, reason=str(exc)))
        if audience.csv:
            for item in parse_text(audience.csv, country):
                if isinstance(item, BadRow):
                    invalid.append(s.InvalidRow(line=item.line, reason=item.reason))
                else:
                    rows.append(item)
        return rows, invalid, contact_ids

    async def _recipients(self, who: Principal, body: s.CreateCampaignIn,
                          country: int) -> tuple[list[Recipient], list[s.InvalidRow]]:
        rows, invalid, contact_ids = await self._audience(who, body.audience, country)
        if not rows:
            raise Problem(422, "the campaign has no valid recipient", invalid=[i.model_dump() for i in invalid[:100]])
        suppressed = await self.repo.suppressed(who.tenant_id, list({r.phone for r in rows}))
        seen: set[str] = set()
        out = []
        for seq, row in enumerate(rows):
            skip = None
            if row.phone in suppressed:
                skip = f"suppressed ({suppressed[row.phone]})"
            elif row.phone in seen:
                skip = "duplicate number"
            seen.add(row.phone)
            out.append(Recipient(id=f"r{seq:06d}", seq=seq, phone=row.phone, nombre=row.nombre,
                                 sustantivo=row.sustantivo, grupo=row.grupo, contact_id=contact_ids.get(seq),
                                 skip_reason=skip))
        return out, invalid

    async def _message(self, who: Principal, body: s.MessageIn) -> CampaignMessage:
        media: list[MediaRef] = []
        for mid in body.media_ids:
            upload = await self.ctx.library.get(who.tenant_id, mid)
            if upload.kind != "image":
                raise Problem(422, f"media {mid} is {upload.kind}; mediaIds takes images (use voiceNoteMediaId)")
            media.append(upload.ref())
        if body.voice_note_media_id:
            upload = await self.ctx.library.get(who.tenant_id, body.voice_note_media_id)
            if upload.kind != "audio":
                raise Problem(422, "voiceNoteMediaId must be an audio upload")
            media.append(upload.ref(ptt=True))
        return CampaignMessage(text=body.text, media=media)

    async def _sessions(self, who: Principal, ids: list[str]) -> list[CampaignSession]:
        wanted = []
        for raw in ids:
            try:
                wanted.append(uuid.UUID(raw))
            except ValueError as exc:
                raise Problem(404, "session not found") from exc
        rows = await self.repo.sessions(who.tenant_id, wanted)
        if wanted and len(rows) != len(set(wanted)):
            raise Problem(404, "session not found")
        if not rows:
            raise Problem(422, "no connected session to send from: link a number first or pass sessionIds")
        scope = who.session_ids
        if scope is not None and any(str(r["id"]) not in scope for r in rows):
            raise Problem(404, "session not found")
        return [CampaignSession(session_id=str(r["id"]), linked_at=iso(r["created_at"].astimezone(UTC)))
                for r in rows]

    async def preview(self, who: Principal, body: s.CreateCampaignIn, limit: int) -> s.PreviewOut:
        country, _, _ = await self.book.tenant_settings(who.tenant_id)
        recipients, invalid = await self._recipients(who, body, country)
        # Recipients built here from the request always have a phone (None only reads back from an erased log).
        items = [s.PreviewItem(phone=r.phone or "", nombre=r.nombre, skipped=r.skip_reason,
                               text=render(body.message.text or "", {"nombre": r.nombre, "sustantivo": r.sustantivo,
                                                                     "grupo": r.grupo}))
                 for r in recipients[:limit]]
        return s.PreviewOut(total=len(recipients), skipped=sum(1 for r in recipients if r.skip_reason),
                            invalid=len(invalid), items=items)

    async def create(self, who: Principal, body: s.CreateCampaignIn, traceparent: str | None) -> s.CampaignAccepted:
        country, timezone, _ = await self.book.tenant_settings(who.tenant_id)
        sessions = await self._sessions(who, body.session_ids)
        message = await self._message(who, body.message)
        recipients, invalid = await self._recipients(who, body, country)
        schedule_at = None
        if body.schedule_at is not None:
            try:
                schedule_at = parse_iso(body.schedule_at)
            except ValueError as exc:
                raise Problem(422, "scheduleAt must be an ISO-8601 date-time") from exc
        campaign_id = str(uuid.uuid4())
        commands: list[cc.CampaignCommand] = [self._command(
            cc.CreateCampaign, who, campaign_id, traceparent, name=body.name, message=message, sessions=sessions,
            pacing=body.pacing.resolve(), timezone=timezone, expected_recipients=len(recipients))]
        for chunk, start in enumerate(range(0, len(recipients), CHUNK)):
            commands.append(self._command(cc.AddRecipients, who, campaign_id, traceparent, chunk=chunk,
                                          recipients=recipients[start:start + CHUNK]))
        if schedule_at is not None:
            commands.append(self._command(cc.ScheduleCampaign, who, campaign_id, traceparent, at=iso(schedule_at)))
        elif body.start:
            commands.append(self._command(cc.StartCampaign, who, campaign_id, traceparent))
        await self._publish(campaign_id, commands)
        return s.CampaignAccepted(campaign_id=campaign_id, total=len(recipients),
                                  skipped=sum(1 for r in recipients if r.skip_reason), invalid=invalid[:1000])

    def _command(self, cls: type[cc.CampaignCommand], who: Principal, campaign_id: str, traceparent: str | None,
                 **fields: Any) -> cc.CampaignCommand:
        return cls(command_id=str(uuid.uuid4()), campaign_id=campaign_id, tenant_id=who.tenant_id,
                   issued_at=iso(datetime.now(UTC)), traceparent=child_of(traceparent), **fields)

    async def _publish(self, campaign_id: str, commands: list[cc.CampaignCommand]) -> None:
        """All on one key, so one partition keeps their order; 202 only once every record is acknowledged."""
        futures = [await self.ctx.producer.send(self.ctx.topics.campaign_commands, key=campaign_id.encode(),
                                                value=cmd.model_dump_json(by_alias=True).encode(),
                                                headers=command_headers(cmd, SOURCE))
                   for cmd in commands]
        await asyncio.gather(*futures)

    async def cancel_all(self, tenant_id: str) -> None:
        """A tenant's deletion: cancel every campaign of it not finished yet, so none starts (a scheduled one)
        or goes on writing rows after the tenant's purge. One command id per campaign, so a retried deletion
        sends recognisably the same commands; a cancel of a campaign already cancelled is refused by the runner."""
        for campaign_id in await self.repo.open_ids(tenant_id, TERMINAL):
            await self._publish(str(campaign_id), [cc.CancelCampaign(
                command_id=str(uuid.uuid5(TENANT_DELETED, str(campaign_id))), campaign_id=str(campaign_id),
                tenant_id=tenant_id, issued_at=iso(datetime.now(UTC)))])

    # ----- acting on one ------------------------------------------------------------------

    async def act(self, who: Principal, campaign_id: str, action: str, traceparent: str | None,
                  at: str | None = None) -> s.CommandAccepted:
        row = await self.repo.get(who.tenant_id, campaign_uuid(campaign_id))
        if row is None:
            raise Problem(404, "campaign not found")
        if action == "schedule":
            if row["status"] not in ("draft", "scheduled"):
                raise Problem(409, f"only a draft can be scheduled (status {row['status']})")
            try:
                when = parse_iso(at or "")
            except ValueError as exc:
                raise Problem(422, "at must be an ISO-8601 date-time") from exc
            command = self._command(cc.ScheduleCampaign, who, str(row["id"]), traceparent, at=iso(when))
        else:
            cls, allowed = ACTIONS[action]
            if row["status"] not in allowed:
                raise Problem(409, f"cannot {action} a campaign in status {row['status']}")
            if action == "retry-failed" and row["failed"] == 0:
                raise Problem(409, "no failed recipients to retry")
            command = self._command(cls, who, str(row["id"]), traceparent)
        await self._publish(str(row["id"]), [command])
        return s.CommandAccepted(campaign_id=str(row["id"]), action=action)

    # ----- reading -----------------------------------------------------------------------

    async def get(self, who: Principal, campaign_id: str) -> s.CampaignOut:
        row = await self.repo.get(who.tenant_id, campaign_uuid(campaign_id))
        if row is None:
            raise Problem(404, "campaign not found")
        return campaign_out(row)

    async def page(self, who: Principal, status: str | None, cursor: str | None, limit: int) -> s.CampaignPage:
        before = None
        if cursor:
            try:
                ts, cid = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
                before = (datetime.fromisoformat(ts), uuid.UUID(cid))
            except (ValueError, UnicodeDecodeError) as exc:
                raise Problem(422, "invalid cursor") from exc
        rows = await self.repo.page(who.tenant_id, status, before, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = None
        if more and rows:
            nxt = base64.urlsafe_b64encode(f"{rows[-1]['created_at'].isoformat()}|{rows[-1]['id']}".encode()).decode()
        return s.CampaignPage(campaigns=[campaign_out(r) for r in rows], next_cursor=nxt)

    async def recipients(self, who: Principal, campaign_id: str, status: str | None, cursor: str | None,
                         limit: int) -> s.RecipientPage:
        cid = campaign_uuid(campaign_id)
        if await self.repo.get(who.tenant_id, cid) is None:
            raise Problem(404, "campaign not found")
        try:
            after = int(cursor) if cursor else -1
        except ValueError as exc:
            raise Problem(422, "invalid cursor") from exc
        rows = await self.repo.recipients(who.tenant_id, cid, status, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return s.RecipientPage(recipients=[recipient_out(r) for r in rows],
                               next_cursor=str(rows[-1]["seq"]) if more and rows else None)

    async def recipients_csv(self, who: Principal, campaign_id: str, status: str | None) -> AsyncIterator[bytes]:
        cid = campaign_uuid(campaign_id)
        if await self.repo.get(who.tenant_id, cid) is None:
            raise Problem(404, "campaign not found")
        columns = list(s.RecipientOut.model_fields)

        async def rows() -> AsyncIterator[bytes]:
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(columns)
            after = -1
            while True:
                page = await self.repo.recipients(who.tenant_id, cid, status, after, 2000)
                for r in page:
                    out = recipient_out(r)
                    writer.writerow([getattr(out, c) if getattr(out, c) is not None else "" for c in columns])
                yield buf.getvalue().encode()
                buf.seek(0)
                buf.truncate()
                if len(page) < 2000:
                    return
                after = page[-1]["seq"]

        return rows()

    async def settings(self, who: Principal) -> s.SettingsIO:
        country, timezone, words = await self.book.tenant_settings(who.tenant_id)
        return s.SettingsIO(default_country=country, timezone=timezone, optout_keywords=words)

    async def save_settings(self, who: Principal, body: s.SettingsIO) -> s.SettingsIO:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        import phonenumbers

        try:
            ZoneInfo(body.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise Problem(422, f"unknown time zone {body.timezone[:64]!r}") from exc
        if phonenumbers.region_code_for_country_code(body.default_country) == "ZZ":
            raise Problem(422, f"unknown country calling code {body.default_country}")
        words = sorted({w.strip() for w in body.optout_keywords if w.strip()})
        await self.book.save_tenant_settings(who.tenant_id, body.default_country, body.timezone, words)
        return s.SettingsIO(default_country=body.default_country, timezone=body.timezone, optout_keywords=words)
