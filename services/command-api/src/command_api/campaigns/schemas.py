"""Request and response models of campaigns."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from zapstream_contracts.campaign_payloads import Counts, Pacing


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class PacingIn(Model):
    """Any subset of the pacing settings; the rest keep their defaults."""

    enabled: bool | None = None
    base_delay_s: float | None = Field(default=None, ge=0, le=3600)
    jitter_s: float | None = Field(default=None, ge=0, le=3600)
    typing: bool | None = None
    typing_chars_per_s: float | None = Field(default=None, gt=0, le=1000)
    typing_max_s: float | None = Field(default=None, ge=0, le=60)
    per_hour: int | None = Field(default=None, ge=1, le=100_000)
    per_day: int | None = Field(default=None, ge=1, le=1_000_000)
    warmup: list[int] | None = Field(default=None, max_length=60)
    quiet_start: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}$")
    quiet_end: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}$")
    quiet_hours: bool | None = None  # false: no quiet hours at all
    max_in_flight: int | None = Field(default=None, ge=1, le=1000)
    retry_base_s: float | None = Field(default=None, ge=0, le=86_400)

    def resolve(self) -> Pacing:
        fields = self.model_dump(exclude_none=True, exclude={"quiet_hours"})
        if not self.enabled and self.enabled is not None and "max_in_flight" not in fields:
            fields["max_in_flight"] = 50  # pacing off: keep a window of sends per number in flight
        pacing = Pacing(**fields)
        if self.quiet_hours is False:
            pacing = pacing.model_copy(update={"quiet_start": None, "quiet_end": None})
        return pacing


class RecipientIn(Model):
    phone: str = Field(min_length=3, max_length=40, validation_alias=AliasChoices("phone", "numero"))
    nombre: str | None = Field(default=None, max_length=200)
    sustantivo: str | None = Field(default=None, max_length=200)
    grupo: str | None = Field(default=None, max_length=200)


class Audience(Model):
    """Who receives it: address-book groups and/or contact ids (or everyone), explicit numbers, or a CSV text."""

    groups: list[str] = Field(default_factory=list, max_length=200)
    contact_ids: list[str] = Field(default_factory=list, max_length=100_000)
    all_contacts: bool = False
    recipients: list[RecipientIn] = Field(default_factory=list, max_length=100_000)
    csv: str | None = Field(default=None, max_length=32 * 1024 * 1024)


class MessageIn(Model):
    """Text (a template: ``{nombre}``, ``{sustantivo}``, ``{grupo}``), image ``mediaIds`` (caption = text), or a
    voice note (``voiceNoteMediaId``: an audio upload, converted to Opus)."""

    text: str | None = Field(default=None, max_length=4096, validation_alias=AliasChoices("text", "template", "message"))
    media_ids: list[str] = Field(default_factory=list, max_length=10)
    voice_note_media_id: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _something(self) -> MessageIn:
        if not self.text and not self.media_ids and not self.voice_note_media_id:
            raise ValueError("a message needs text, mediaIds or voiceNoteMediaId")
        if self.media_ids and self.voice_note_media_id:
            raise ValueError("send images or a voice note, not both")
        return self


class CreateCampaignIn(Model):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              json_schema_extra={"examples": [{"name": "Promo diciembre", "message": {"text": "Hola {sustantivo} {nombre}, tenemos novedades para {grupo}"}, "audience": {"groups": ["clientes"]}, "start": True}]})

    name: str = Field(default="Campaign", min_length=1, max_length=200)
    session_ids: list[str] = Field(default_factory=list, max_length=100)  # empty: all connected sessions
    message: MessageIn
    audience: Audience
    pacing: PacingIn = Field(default_factory=PacingIn)
    schedule_at: str | None = Field(default=None, max_length=40)
    start: bool = False  # start at once after creating (POST /send-messages does)


class PreviewItem(Model):
    phone: str
    nombre: str | None
    text: str
    skipped: str | None = None


class PreviewOut(Model):
    total: int
    skipped: int
    invalid: int
    items: list[PreviewItem]


class InvalidRow(Model):
    line: int
    reason: str


class CampaignAccepted(Model):
    campaign_id: str
    status: Literal["accepted"] = "accepted"
    total: int
    skipped: int
    invalid: list[InvalidRow]


class CommandAccepted(Model):
    campaign_id: str
    status: Literal["accepted"] = "accepted"
    action: str


class ScheduleIn(Model):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              json_schema_extra={"examples": [{"at": "2026-12-24T09:00:00-03:00"}]})

    at: str = Field(max_length=40)


class CancelIn(Model):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              json_schema_extra={"examples": [{"campaignId": "0b0c2f8e-8a39-4f3e-9d1b-3c2e7a6f5d41"}]})

    campaign_id: str = Field(max_length=64, validation_alias=AliasChoices("campaignId", "campaign_id", "id"))


class CampaignOut(Model):
    id: str
    name: str
    status: str
    status_reason: str | None
    session_ids: list[str]
    message: dict[str, object]
    pacing: dict[str, object]
    timezone: str
    counts: Counts
    progress: float  # share of recipients with nothing left to send, 0..1
    created_at: str
    scheduled_at: str | None
    started_at: str | None
    finished_at: str | None
    updated_at: str


class CampaignPage(Model):
    campaigns: list[CampaignOut]
    next_cursor: str | None


class RecipientOut(Model):
    recipient_id: str
    seq: int
    phone: str
    nombre: str | None
    sustantivo: str | None
    grupo: str | None
    session_id: str | None
    status: str
    code: str | None
    reason: str | None
    attempts: int
    message_id: str | None
    sent_at: str | None
    delivered_at: str | None
    read_at: str | None


class RecipientPage(Model):
    recipients: list[RecipientOut]
    next_cursor: str | None


class SettingsIO(Model):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              json_schema_extra={"examples": [{"defaultCountry": 595, "timezone": "America/Asuncion", "optoutKeywords": ["STOP", "BAJA", "SALIR"]}]})

    default_country: int = Field(default=595, ge=1, le=999)
    timezone: str = Field(default="America/Asuncion", max_length=64)
    optout_keywords: list[str] = Field(default_factory=list, max_length=50)
