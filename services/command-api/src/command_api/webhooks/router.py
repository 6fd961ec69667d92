"""``/webhooks``: a tenant's webhook endpoints, their delivery log, dead letters, re-drive and replay.

Wiring (composition root): ``bind(app, WebhooksService(WebhooksRepository(pool), settings.webhooks),
tenant)`` where ``tenant`` is a dependency resolving the caller's tenant through the app's authentication
(owners and admins only). Unwired, every route answers 401 / 503, never someone else's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response

from command_api.shared.problems import AUTHED, responses
from command_api.shared.security import Admin
from command_api.webhooks.schemas import (
    AttemptList,
    DeliveryList,
    EndpointCreate,
    EndpointCreated,
    EndpointList,
    EndpointUpdate,
    EndpointView,
    Redrive,
    Redriven,
    Replay,
    ReplayAccepted,
    RotateSecret,
    SecretRotated,
)
from command_api.webhooks.service import WebhooksService
from zapstream_platform.http import JsonResponse

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=responses(*AUTHED, 403, 404))


async def current_tenant(who: Admin) -> str:
    """The caller's tenant: webhooks are managed by the tenant's owner or an admin."""
    return who.tenant_id


def service(request: Request) -> WebhooksService:
    svc: WebhooksService | None = getattr(request.app.state, "webhooks", None)
    if svc is None:
        raise HTTPException(503, "webhooks are not configured on this server")
    return svc


def bind(app: FastAPI, service_: WebhooksService, tenant: Callable[..., Any]) -> None:
    """Give the routes their service; ``tenant`` replaces the app's authentication (tests)."""
    app.state.webhooks = service_
    app.dependency_overrides[current_tenant] = tenant


Tenant = Annotated[str, Depends(current_tenant)]
Service = Annotated[WebhooksService, Depends(service)]
Limit = Annotated[int, Query(ge=1, le=500)]


@router.post("", status_code=201, response_model=EndpointCreated)
async def create_endpoint(body: EndpointCreate, tenant: Tenant, svc: Service) -> JsonResponse:
    """Register an endpoint. The answer carries its signing secret; it is not shown again."""
    return JsonResponse(EndpointCreated.model_validate(await svc.create(tenant, body)).model_dump(
        mode="json", by_alias=True), status_code=201)


@router.get("", response_model=EndpointList)
async def list_endpoints(tenant: Tenant, svc: Service) -> EndpointList:
    return EndpointList.model_validate(await svc.list(tenant))


@router.get("/{endpoint_id}", response_model=EndpointView)
async def get_endpoint(endpoint_id: uuid.UUID, tenant: Tenant, svc: Service) -> EndpointView:
    return EndpointView.model_validate(await svc.get(tenant, endpoint_id))


@router.patch("/{endpoint_id}", response_model=EndpointView)
async def update_endpoint(endpoint_id: uuid.UUID, body: EndpointUpdate, tenant: Tenant, svc: Service) -> EndpointView:
    return EndpointView.model_validate(await svc.update(tenant, endpoint_id, body))


@router.delete("/{endpoint_id}", status_code=204)
async def delete_endpoint(endpoint_id: uuid.UUID, tenant: Tenant, svc: Service) -> Response:
    await svc.delete(tenant, endpoint_id)
    return Response(status_code=204)


@router.post("/{endpoint_id}/pause", response_model=EndpointView)
async def pause_endpoint(endpoint_id: uuid.UUID, tenant: Tenant, svc: Service) -> EndpointView:
    """Stop sending; events keep being queued and go out on resume."""
    return EndpointView.model_validate(await svc.set_status(tenant, endpoint_id, "paused"))


@router.post("/{endpoint_id}/resume", response_model=EndpointView)
async def resume_endpoint(endpoint_id: uuid.UUID, tenant: Tenant, svc: Service) -> EndpointView:
    """Send again (also re-enables an endpoint that was disabled after repeated failures)."""
    return EndpointView.model_validate(await svc.set_status(tenant, endpoint_id, "active"))


@router.post("/{endpoint_id}/rotate-secret", response_model=SecretRotated)
async def rotate_secret(endpoint_id: uuid.UUID, tenant: Tenant, svc: Service,
                        body: RotateSecret | None = None) -> SecretRotated:
    """A new secret; the old one keeps signing too (a second ``v1,`` signature) for ``graceSeconds``."""
    return SecretRotated.model_validate(await svc.rotate(tenant, endpoint_id, body or RotateSecret()))


@router.get("/{endpoint_id}/deliveries", response_model=DeliveryList)
async def list_deliveries(endpoint_id: uuid.UUID, tenant: Tenant, svc: Service, limit: Limit = 100,
                          status: Literal["pending", "delivered", "dead"] | None = None) -> DeliveryList:
    return DeliveryList.model_validate(await svc.deliveries(tenant, endpoint_id, status, limit))


@router.get("/{endpoint_id}/attempts", response_model=AttemptList)
async def list_attempts(endpoint_id: uuid.UUID, tenant: Tenant, svc: Service, limit: Limit = 100) -> AttemptList:
    """The delivery log: every attempt with its status code, error and latency, newest first."""
    return AttemptList.model_validate(await svc.attempts(tenant, endpoint_id, limit))


@router.get("/{endpoint_id}/dead-letters", response_model=DeliveryList)
async def list_dead_letters(endpoint_id: uuid.UUID, tenant: Tenant, svc: Service, limit: Limit = 100) -> DeliveryList:
    return DeliveryList.model_validate(await svc.deliveries(tenant, endpoint_id, "dead", limit))


@router.post("/{endpoint_id}/dead-letters/redrive", response_model=Redriven)
async def redrive_dead_letters(endpoint_id: uuid.UUID, tenant: Tenant, svc: Service,
                               body: Redrive | None = None) -> Redriven:
    """Send dead letters again from attempt one (all of them, or the ``ids`` given)."""
    return Redriven.model_validate(await svc.redrive(tenant, endpoint_id, body or Redrive()))


@router.post("/{endpoint_id}/replay", status_code=202, response_model=ReplayAccepted)
async def replay_events(endpoint_id: uuid.UUID, body: Replay, tenant: Tenant, svc: Service) -> JsonResponse:
    """Re-send every event since ``from`` that the endpoint's filters want, read again from the event log."""
    answer = ReplayAccepted.model_validate(await svc.replay(tenant, endpoint_id, body.from_))
    return JsonResponse(answer.model_dump(mode="json", by_alias=True), status_code=202)
