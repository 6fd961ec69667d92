"""Campaign commands: imperative, one record each on the campaign command topic, keyed by campaignId."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, TypeAdapter

from . import campaign_payloads as cp
from .payloads import Wire


class CampaignCommand(Wire):
    TYPE: ClassVar[str]
    command_id: str
    campaign_id: str
    tenant_id: str
    issued_at: str
    traceparent: str | None = None


class CreateCampaign(CampaignCommand):
    TYPE: ClassVar[str] = "campaign.create"
    type: Literal["campaign.create"] = "campaign.create"
    name: str = Field(min_length=1, max_length=200)
    message: cp.CampaignMessage
    sessions: list[cp.CampaignSession] = Field(min_length=1, max_length=100)
    pacing: cp.Pacing = Field(default_factory=cp.Pacing)
    timezone: str = "UTC"
    expected_recipients: int = Field(ge=0)


class AddRecipients(CampaignCommand):
    """One chunk of the recipient list (records stay small; a 100k list is 200 chunks)."""

    TYPE: ClassVar[str] = "campaign.add_recipients"
    type: Literal["campaign.add_recipients"] = "campaign.add_recipients"
    chunk: int = Field(ge=0)
    recipients: list[cp.Recipient] = Field(max_length=2000)


class ScheduleCampaign(CampaignCommand):
    TYPE: ClassVar[str] = "campaign.schedule"
    type: Literal["campaign.schedule"] = "campaign.schedule"
    at: str


class StartCampaign(CampaignCommand):
    TYPE: ClassVar[str] = "campaign.start"
    type: Literal["campaign.start"] = "campaign.start"


class PauseCampaign(CampaignCommand):
    TYPE: ClassVar[str] = "campaign.pause"
    type: Literal["campaign.pause"] = "campaign.pause"


class ResumeCampaign(CampaignCommand):
    TYPE: ClassVar[str] = "campaign.resume"
    type: Literal["campaign.resume"] = "campaign.resume"


class CancelCampaign(CampaignCommand):
    TYPE: ClassVar[str] = "campaign.cancel"
    type: Literal["campaign.cancel"] = "campaign.cancel"


class RetryFailed(CampaignCommand):
    TYPE: ClassVar[str] = "campaign.retry_failed"
    type: Literal["campaign.retry_failed"] = "campaign.retry_failed"


class RecordOutcomes(CampaignCommand):
    """Written by the campaign runner's outcome router from the session event topic."""

    TYPE: ClassVar[str] = "campaign.record_outcomes"
    type: Literal["campaign.record_outcomes"] = "campaign.record_outcomes"
    outcomes: list[cp.Outcome]


AnyCampaignCommand = Annotated[
    CreateCampaign
    | AddRecipients
    | ScheduleCampaign
    | StartCampaign
    | PauseCampaign
    | ResumeCampaign
    | CancelCampaign
    | RetryFailed
    | RecordOutcomes,
    Field(discriminator="type"),
]
CAMPAIGN_COMMAND_ADAPTER: TypeAdapter[AnyCampaignCommand] = TypeAdapter(AnyCampaignCommand)
CAMPAIGN_COMMAND_TYPES: tuple[type[CampaignCommand], ...] = (
    CreateCampaign,
    AddRecipients,
    ScheduleCampaign,
    StartCampaign,
    PauseCampaign,
    ResumeCampaign,
    CancelCampaign,
    RetryFailed,
    RecordOutcomes,
)


def parse_campaign_command(raw: bytes) -> AnyCampaignCommand:
    return CAMPAIGN_COMMAND_ADAPTER.validate_json(raw)
