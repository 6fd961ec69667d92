"""Campaign routes, plus seed 004's ``POST /send-messages`` and ``POST /cancel-campaign`` (thin handlers).

(No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.)
"""

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from command_api.campaigns import schemas as s
from command_api.campaigns.context import Ctx, Who
from command_api.campaigns.service import CampaignService
from command_api.shared.problems import AUTHED, Problem, responses

router = APIRouter(tags=["campaigns"], responses=responses(*AUTHED, 403, 404))
StatusFilter = Annotated[str | None, Query(max_length=20)]
MAX_FORM_CSV = 32 * 1024 * 1024


async def parse_body(request: Request, model: type[s.CreateCampaignIn]) -> s.CreateCampaignIn:
    """The JSON form of seed 004's request (the multipart form is read by ``_form_body``)."""
    raw = await request.body()
    if b"\\u0000" in raw:
        raise Problem(422, "NUL characters are not allowed")
    try:
        data = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise Problem(422, "body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise Problem(422, "body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise Problem(422, "request failed validation", errors=errors) from exc


def trace(request: Request) -> str | None:
    return request.headers.get("traceparent")


@router.get("/campaign-settings")
async def get_settings(who: Who, ctx: Ctx) -> s.SettingsIO:
    """The tenant's default country (for numbers), time zone (quiet hours, dashboards) and opt-out words."""
    return await CampaignService(ctx).settings(who)


@router.put("/campaign-settings")
async def put_settings(who: Who, ctx: Ctx, body: s.SettingsIO) -> s.SettingsIO:
    return await CampaignService(ctx).save_settings(who, body)


@router.post("/campaigns", status_code=202)
async def create_campaign(who: Who, ctx: Ctx, body: s.CreateCampaignIn, request: Request) -> s.CampaignAccepted:
    """Create a campaign (a draft unless ``start`` or ``scheduleAt``); recipients keep the order given."""
    return await CampaignService(ctx).create(who, body, trace(request))


@router.post("/campaigns/preview")
async def preview(who: Who, ctx: Ctx, body: s.CreateCampaignIn,
                  limit: Annotated[int, Query(ge=1, le=50)] = 5) -> s.PreviewOut:
    """The rendered message for the first recipients, without creating anything."""
    return await CampaignService(ctx).preview(who, body, limit)


async def _form_body(request: Request) -> s.CreateCampaignIn:
    form = await request.form(max_files=2)
    upload = form.get("file") or form.get("csv") or form.get("csvFile")
    csv_text = None
    if isinstance(upload, UploadFile):
        raw = await upload.read(MAX_FORM_CSV + 1)
        if len(raw) > MAX_FORM_CSV:
            raise Problem(413, f"CSV exceeds {MAX_FORM_CSV} bytes")
        csv_text = raw.decode("utf-8-sig", errors="replace")

    def field(*names: str) -> str | None:
        for n in names:
            v = form.get(n)
            if isinstance(v, str) and v.strip():
                return v
        return None

    def listed(*names: str) -> list[str]:
        v = field(*names)
        return [x.strip() for x in v.split(",") if x.strip()] if v else []

    try:
        return s.CreateCampaignIn.model_validate({
            "name": field("name") or "Campaign",
            "sessionIds": listed("sessionIds", "sessionId"),
            "message": {"text": field("message", "template", "text"), "mediaIds": listed("mediaIds", "images"),
                        "voiceNoteMediaId": field("voiceNoteMediaId", "audio")},
            "audience": {"csv": csv_text, "groups": listed("groups", "grupo")},
            "start": True,
        })
    except ValidationError as exc:
        errors = [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise Problem(422, "request failed validation", errors=errors) from exc


@router.post("/send-messages", status_code=202, openapi_extra={"requestBody": {"content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/CreateCampaignIn"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "string", "format": "binary"}, "message": {"type": "string"},
        "sessionIds": {"type": "string"}, "mediaIds": {"type": "string"}, "voiceNoteMediaId": {"type": "string"},
        "groups": {"type": "string"}, "name": {"type": "string"}}}}}}})
async def send_messages(who: Who, ctx: Ctx, request: Request) -> s.CampaignAccepted:
    """Seed 004: create **and start** a campaign from a CSV (multipart ``file``) or a JSON body."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        body = await _form_body(request)
    else:
        body = await parse_body(request, s.CreateCampaignIn)
        if "start" not in body.model_fields_set and body.schedule_at is None:
            body = body.model_copy(update={"start": True})
    return await CampaignService(ctx).create(who, body, trace(request))


@router.post("/cancel-campaign", status_code=202)
async def cancel_campaign_alias(who: Who, ctx: Ctx, body: s.CancelIn, request: Request) -> s.CommandAccepted:
    """Seed 004: cancel an active campaign by ``campaignId``."""
    return await CampaignService(ctx).act(who, body.campaign_id, "cancel", trace(request))


@router.get("/campaigns")
async def list_campaigns(who: Who, ctx: Ctx, status: StatusFilter = None,
                         cursor: Annotated[str | None, Query(max_length=300)] = None,
                         limit: Annotated[int, Query(ge=1, le=200)] = 50) -> s.CampaignPage:
    return await CampaignService(ctx).page(who, status, cursor, limit)


@router.get("/campaigns/{campaign_id}")
async def get_campaign(who: Who, ctx: Ctx, campaign_id: str) -> s.CampaignOut:
    """Status and progress counts."""
    return await CampaignService(ctx).get(who, campaign_id)


@router.get("/campaigns/{campaign_id}/recipients", response_model=s.RecipientPage)
async def recipients(who: Who, ctx: Ctx, campaign_id: str, status: StatusFilter = None,
                     cursor: Annotated[str | None, Query(max_length=20)] = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                     format: Annotated[Literal["json", "csv"], Query()] = "json") -> object:
    """Per-recipient results (pending, sending, sent, delivered, read, failed/skipped/cancelled with a reason);
    ``format=csv`` exports them all."""
    service = CampaignService(ctx)
    if format == "csv":
        body = await service.recipients_csv(who, campaign_id, status)
        return StreamingResponse(body, media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="campaign-{campaign_id}.csv"'})
    return await service.recipients(who, campaign_id, status, cursor, limit)


@router.post("/campaigns/{campaign_id}/schedule", status_code=202)
async def schedule(who: Who, ctx: Ctx, campaign_id: str, body: s.ScheduleIn, request: Request) -> s.CommandAccepted:
    return await CampaignService(ctx).act(who, campaign_id, "schedule", trace(request), at=body.at)


@router.post("/campaigns/{campaign_id}/start", status_code=202)
async def start(who: Who, ctx: Ctx, campaign_id: str, request: Request) -> s.CommandAccepted:
    return await CampaignService(ctx).act(who, campaign_id, "start", trace(request))


@router.post("/campaigns/{campaign_id}/pause", status_code=202)
async def pause(who: Who, ctx: Ctx, campaign_id: str, request: Request) -> s.CommandAccepted:
    return await CampaignService(ctx).act(who, campaign_id, "pause", trace(request))


@router.post("/campaigns/{campaign_id}/resume", status_code=202)
async def resume(who: Who, ctx: Ctx, campaign_id: str, request: Request) -> s.CommandAccepted:
    return await CampaignService(ctx).act(who, campaign_id, "resume", trace(request))


@router.post("/campaigns/{campaign_id}/cancel", status_code=202)
async def cancel(who: Who, ctx: Ctx, campaign_id: str, request: Request) -> s.CommandAccepted:
    return await CampaignService(ctx).act(who, campaign_id, "cancel", trace(request))


@router.post("/campaigns/{campaign_id}/retry-failed", status_code=202)
async def retry_failed(who: Who, ctx: Ctx, campaign_id: str, request: Request) -> s.CommandAccepted:
    """Re-run only the recipients that failed (each gets a fresh budget of three retries)."""
    return await CampaignService(ctx).act(who, campaign_id, "retry-failed", trace(request))
