"""Address book routes under ``/address-book``, plus seed 004's ``/contacts`` aliases (thin handlers).

(No ``from __future__ import annotations``: FastAPI reads these signatures at runtime.)
"""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.datastructures import UploadFile

from command_api.address_book import schemas as s
from command_api.address_book.repository import AddressBookRepository
from command_api.address_book.service import AddressBookService
from command_api.campaigns.context import CampaignContext, Ctx, Who
from command_api.shared.problems import AUTHED, Problem, responses

router = APIRouter(tags=["address book"], responses=responses(*AUTHED, 403, 404))
MAX_CSV_BYTES = 64 * 1024 * 1024
CSV_BODY = {"requestBody": {"content": {
    "text/csv": {"schema": {"type": "string"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string",
                                                                                "format": "binary"}}}}}}}


def service(ctx: CampaignContext) -> AddressBookService:
    return AddressBookService(AddressBookRepository(ctx.pool))


async def csv_chunks(request: Request) -> AsyncIterator[bytes]:
    """The CSV's bytes as they arrive: a raw ``text/csv`` body, or the ``file`` part of a multipart form."""
    size = 0
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_files=1)
        upload = form.get("file") or form.get("csv") or form.get("csvFile")
        if not isinstance(upload, UploadFile):
            raise Problem(422, "multipart body needs a 'file' part with the CSV")
        while chunk := await upload.read(256 * 1024):
            size += len(chunk)
            if size > MAX_CSV_BYTES:
                raise Problem(413, f"CSV exceeds {MAX_CSV_BYTES} bytes")
            yield chunk
        return
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_CSV_BYTES:
            raise Problem(413, f"CSV exceeds {MAX_CSV_BYTES} bytes")
        yield chunk


@router.post("/address-book/contacts", status_code=201, responses=responses(409))
@router.post("/contacts", status_code=201, responses=responses(409))
async def create_contact(who: Who, ctx: Ctx, body: s.ContactIn) -> s.ContactOut:
    return await service(ctx).create(who.tenant_id, body)


@router.get("/address-book/contacts")
async def list_contacts(
    who: Who, ctx: Ctx,
    group: Annotated[str | None, Query(max_length=200, alias="grupo")] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> s.ContactPage:
    return await service(ctx).page(who.tenant_id, group, q, cursor, limit)


@router.get("/address-book/groups")
@router.get("/contacts/groups")
async def groups(who: Who, ctx: Ctx) -> s.Groups:
    return await service(ctx).groups(who.tenant_id)


@router.post("/address-book/import", status_code=201, openapi_extra=CSV_BODY)
@router.post("/contacts/import", status_code=201, openapi_extra=CSV_BODY)
async def import_csv(who: Who, ctx: Ctx, request: Request) -> s.ImportOut:
    """Import a CSV (``numero,sustantivo,nombre,grupo`` or a bare list); bad rows come back with line numbers."""
    return await service(ctx).import_csv(who.tenant_id, csv_chunks(request))


@router.get("/address-book/imports")
async def imports(who: Who, ctx: Ctx) -> s.ImportList:
    return await service(ctx).imports(who.tenant_id)


@router.get("/address-book/imports/{import_id}")
async def get_import(who: Who, ctx: Ctx, import_id: str) -> s.ImportOut:
    return await service(ctx).get_import(who.tenant_id, import_id)


@router.get("/address-book/contacts/{contact_id}")
async def get_contact(who: Who, ctx: Ctx, contact_id: str) -> s.ContactOut:
    return await service(ctx).get(who.tenant_id, contact_id)


@router.put("/address-book/contacts/{contact_id}", responses=responses(409))
@router.put("/contacts/{contact_id}", responses=responses(409))
async def update_contact(who: Who, ctx: Ctx, contact_id: str, body: s.ContactIn) -> s.ContactOut:
    return await service(ctx).update(who.tenant_id, contact_id, body)


@router.delete("/address-book/contacts/{contact_id}", status_code=204)
@router.delete("/contacts/{contact_id}", status_code=204)
async def delete_contact(who: Who, ctx: Ctx, contact_id: str) -> Response:
    await service(ctx).delete(who.tenant_id, contact_id)
    return Response(status_code=204)
